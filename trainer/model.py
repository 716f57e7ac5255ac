"""The paper's VGG-style 1D CNN (Sang et al. 2021, Table 2), in backend-agnostic Keras 3.

Five blocks of 2/2/4/4/4 Conv1D (kernel 3, valid, ReLU) with 64/128/256/512/512 filters, each
closed by MaxPool(2, 2); Flatten; twice Dense 512 -> BatchNorm -> ReLU -> Dropout 0.5; softmax.
``width`` scales every filter and unit count (1.0 is the paper's network); smaller widths are
for CPU runs and tests. The same code trains with ``KERAS_BACKEND=jax`` or ``tensorflow``.
"""

from __future__ import annotations

import keras
from keras import layers

from ramancore.preprocessing import GRID_SIZE
from trainer.errors import ConfigError

BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
DENSE_UNITS = 512
DROPOUT = 0.5
#: Keras' default BatchNorm momentum (0.99) leaves the moving statistics far from the batch
#: statistics after the few hundred steps an RRUFF-sized run takes; inference-mode accuracy
#: then collapses. 0.9 tracks them; every run records the value it used.
BN_MOMENTUM = 0.9


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


def build_model(
    n_classes: int,
    width: float = 1.0,
    bn_momentum: float = BN_MOMENTUM,
    input_length: int = GRID_SIZE,
) -> keras.Model:
    """Build (uncompiled) the Table 2 network for ``n_classes`` minerals."""
    model = keras.Sequential(name="sang2021_cnn" if width == 1.0 else f"sang2021_cnn_w{width:g}")
    model.add(keras.Input(shape=(input_length, 1), name="spectrum"))
    for block, (n_conv, filters) in enumerate(BLOCKS, start=1):
        for i in range(1, n_conv + 1):
            model.add(layers.Conv1D(_scaled(filters, width), 3, activation="relu", name=f"block{block}_conv{i}"))
        model.add(layers.MaxPooling1D(2, strides=2, name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    for i in (1, 2):
        model.add(layers.Dense(_scaled(DENSE_UNITS, width), name=f"fc{i}"))
        model.add(layers.BatchNormalization(momentum=bn_momentum, name=f"fc{i}_bn"))
        model.add(layers.Activation("relu", name=f"fc{i}_relu"))
        model.add(layers.Dropout(DROPOUT, name=f"fc{i}_dropout"))
    model.add(layers.Dense(n_classes, activation="softmax", name="predictions"))
    return model


def expected_parameter_count(n_classes: int, width: float = 1.0, input_length: int = GRID_SIZE) -> int:
    """Parameters of :func:`build_model` counted from Table 2's shapes, independently of Keras."""
    total, channels, length = 0, 1, input_length
    for n_conv, filters in BLOCKS:
        f = _scaled(filters, width)
        for _ in range(n_conv):
            total += 3 * channels * f + f
            channels, length = f, length - 2
        length //= 2
    features, units = channels * length, _scaled(DENSE_UNITS, width)
    for _ in range(2):
        total += features * units + units + 4 * units  # Dense + BatchNorm (gamma, beta, mean, var)
        features = units
    return total + features * n_classes + n_classes


#: ``trainer fit --arch``: the paper's network (the reproduction default), our compact one, and
#: the other CNNs of the paper's Table 3 (trainer/liu_fan_cnns.py).
ARCHITECTURES = ("sang2021", "resnet1d", "liu2017", "fan2019")


def make_model(arch: str, n_classes: int, width: float = 1.0, bn_momentum: float = BN_MOMENTUM) -> keras.Model:
    """Build (uncompiled) the named architecture for ``n_classes`` minerals."""
    if arch == "sang2021":
        return build_model(n_classes, width, bn_momentum)
    if arch == "resnet1d":
        from trainer import resnet

        return resnet.build_model(n_classes, width, bn_momentum)
    if arch in ("liu2017", "fan2019"):
        from trainer import liu_fan_cnns

        return getattr(liu_fan_cnns, arch)(n_classes, width, bn_momentum)
    raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def compile_model(
    model: keras.Model,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-4,
    label_smoothing: float = 0.0,
) -> keras.Model:
    """Adam(learning_rate, 0.9, 0.999) and categorical cross-entropy; the paper's is 1e-4, no smoothing."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model
