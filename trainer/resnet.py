"""``resnet1d``: a compact residual 1D CNN for Raman spectra, sized for a 2-core CPU.

Why this shape:

- A strided stem (kernel 7, stride 2) halves the 1 cm^-1 grid at once: Raman bands are 5-20
  cm^-1 wide, so 2 cm^-1 per step still resolves them, and every later layer costs half.
- Five residual stages (two kernel-5 convolutions with BatchNorm, identity or 1x1 shortcut),
  each after the first halving the length: 785 -> 393 -> 197 -> 99 -> 50 steps of ~32 cm^-1.
- A position-keeping head. Which bands sit *where* names a mineral, and a global-average-pooling
  head throws absolute position away (a compact GAP network that did well on RRUFF did far worse
  than the paper's network on fair-quality field spectra). A 1x1 convolution squeezes the channels
  to 16 per position; the 50 x 16 map is flattened into 256 units whose activation is the
  layer named ``embedding`` (the penultimate layer, which library matching uses), then the softmax.

About 0.7 M parameters besides the softmax and 0.13 GFLOP per spectrum (the paper's network:
17.8 M and 1.1 GFLOP). ``width`` scales every channel count. Backend-agnostic Keras 3.
"""

from __future__ import annotations

import keras
from keras import layers

from ramancore.preprocessing import GRID_SIZE

STEM = 32
STAGES = (32, 64, 96, 128, 160)  #: channels per stage; stages after the first halve the length
KERNEL = 5
HEAD_CHANNELS = 16
EMBEDDING = 256
DROPOUT = 0.3
EMBEDDING_LAYER = "embedding"


def _scaled(n: int, width: float) -> int:
    return max(4, round(n * width))


def _residual_block(x, filters: int, stride: int, name: str, bn_momentum: float):
    shortcut = x
    y = layers.Conv1D(filters, KERNEL, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv1D(filters, KERNEL, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv1D(filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut")(shortcut)
        shortcut = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_shortcut_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_model(n_classes: int, width: float = 1.0, bn_momentum: float = 0.9, input_length: int = GRID_SIZE) -> keras.Model:
    """Build (uncompiled) ``resnet1d`` for ``n_classes`` minerals; input (input_length, 1)."""
    inputs = keras.Input(shape=(input_length, 1), name="spectrum")
    x = layers.Conv1D(_scaled(STEM, width), 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stage, filters in enumerate(STAGES, start=1):
        x = _residual_block(x, _scaled(filters, width), 1 if stage == 1 else 2, f"stage{stage}", bn_momentum)
    x = layers.Conv1D(_scaled(HEAD_CHANNELS, width), 1, use_bias=False, name="head_squeeze")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="head_bn")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(DROPOUT, name="flatten_dropout")(x)
    x = layers.Dense(_scaled(EMBEDDING, width), name="embedding_dense")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="embedding_bn")(x)
    x = layers.Activation("relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(DROPOUT, name="embedding_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet1d" if width == 1.0 else f"resnet1d_w{width:g}")
