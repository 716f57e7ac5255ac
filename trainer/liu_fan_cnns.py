"""The other 1D CNNs of the paper's Table 3, rebuilt for its protocol (``trainer fit --arch liu2017|fan2019``).

Both take the shared preprocessed spectrum (1570 points, min-max) and end in a softmax over the
minerals, as Sang et al. retrained them; ``width`` scales every filter and unit count.

``liu2017`` — Liu, Osadchy, Ashton, Foster, Solomon & Gibson 2017, *Analyst* 142:4067 ("Deep
convolutional neural networks for Raman spectrum recognition: a unified solution"), a LeNet-style
network evaluated on RRUFF: three convolutions of 16/32/64 filters with kernels 21/11/5, each
followed by batch normalisation, leaky ReLU and max pooling by 2, then a 2048-unit dense layer,
dropout 0.5 and the softmax. Chosen where the description we could check leaves it open: valid
padding, leaky-ReLU slope 0.01 (also after the dense layer), dropout 0.5.

``fan2019`` — Fan, Ming, Zeng, Zhang & Lu 2019, *Analyst* 144:1789 (DeepCID), from the authors'
public training script (``one_component_model.py``): two convolutions of 32 and 64 filters with
kernel 3 and stride 2 ("same" padding), each with ReLU and max pooling by 2 ("same"), then a
1024-unit ReLU dense layer, dropout 0.5 and the output layer. DeepCID trains one two-way model
per compound on standardised inputs; here, as in Sang et al.'s comparison, one softmax over all
minerals on the shared min-max input.

Zhang et al. 2019 (*J Raman Spectrosc* 51:176, transfer learning) is not rebuilt: its layer
structure could not be looked up from this project's sources, and a guessed network would be a
Table 3 row that is not Zhang's.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from ramancore.preprocessing import GRID_SIZE

LIU_CONVS = ((16, 21), (32, 11), (64, 5))
LIU_DENSE = 2048
FAN_CONVS = (32, 64)
FAN_DENSE = 1024
DROPOUT = 0.5
LEAKY_SLOPE = 0.01


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


def liu2017(n_classes: int, width: float = 1.0, bn_momentum: float = 0.9) -> keras.Model:
    """Liu et al. 2017's LeNet-style network for ``n_classes`` minerals (uncompiled)."""
    model = keras.Sequential(name="liu2017" if width == 1.0 else f"liu2017_w{width:g}")
    model.add(keras.Input(shape=(GRID_SIZE, 1), name="spectrum"))
    for i, (filters, kernel) in enumerate(LIU_CONVS, start=1):
        model.add(layers.Conv1D(_scaled(filters, width), kernel, name=f"conv{i}"))
        model.add(layers.BatchNormalization(momentum=bn_momentum, name=f"conv{i}_bn"))
        model.add(layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"conv{i}_leaky"))
        model.add(layers.MaxPooling1D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(_scaled(LIU_DENSE, width), name="fc"))
    model.add(layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="fc_leaky"))
    model.add(layers.Dropout(DROPOUT, name="fc_dropout"))
    model.add(layers.Dense(n_classes, activation="softmax", name="predictions"))
    return model


def fan2019(n_classes: int, width: float = 1.0, bn_momentum: float = 0.9) -> keras.Model:
    """DeepCID's network (Fan et al. 2019) with one softmax over ``n_classes`` minerals (uncompiled)."""
    del bn_momentum  # DeepCID has no batch normalisation
    model = keras.Sequential(name="fan2019" if width == 1.0 else f"fan2019_w{width:g}")
    model.add(keras.Input(shape=(GRID_SIZE, 1), name="spectrum"))
    for i, filters in enumerate(FAN_CONVS, start=1):
        model.add(layers.Conv1D(_scaled(filters, width), 3, strides=2, padding="same", activation="relu", name=f"conv{i}"))
        model.add(layers.MaxPooling1D(2, padding="same", name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(_scaled(FAN_DENSE, width), activation="relu", name="fc"))
    model.add(layers.Dropout(DROPOUT, name="fc_dropout"))
    model.add(layers.Dense(n_classes, activation="softmax", name="predictions"))
    return model


def expected_parameters(arch: str, n_classes: int, width: float = 1.0) -> int:
    """Parameters counted from the papers' layer shapes, independently of Keras."""
    total, channels, length = 0, 1, GRID_SIZE
    if arch == "liu2017":
        for filters, kernel in LIU_CONVS:
            f = _scaled(filters, width)
            total += kernel * channels * f + f + 4 * f  # conv + BatchNorm (gamma, beta, mean, var)
            channels, length = f, (length - kernel + 1) // 2
        units = _scaled(LIU_DENSE, width)
    elif arch == "fan2019":
        for filters in FAN_CONVS:
            f = _scaled(filters, width)
            total += 3 * channels * f + f
            length = math.ceil(math.ceil(length / 2) / 2)  # stride 2, then pooling by 2, both "same"
            channels = f
        units = _scaled(FAN_DENSE, width)
    else:
        raise ValueError(arch)
    return total + channels * length * units + units + units * n_classes + n_classes
