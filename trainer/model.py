"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Generator: a dense projection of the latent to 4x4 feature maps, then stride-2 transposed
convolutions with batch norm and ReLU, doubling the resolution each time, and a tanh output in
[-1, 1] (NHWC). Discriminator: stride-2 convolutions with LeakyReLU(0.2), batch norm on all
but the first layer, down to 4x4, then one logit. Channel widths halve/double per stage from
``width`` at the highest resolution, as in the paper's architecture guidelines.
"""

from __future__ import annotations

import math

import keras
from keras import layers

RESOLUTIONS = (32, 64, 128)
_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02)  # the paper's N(0, 0.02)


def _stages(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return int(math.log2(resolution)) - 2  # 4x4 -> resolution in this many stride-2 steps


def build_generator(resolution: int, latent_dim: int, *, width: int = 64) -> keras.Model:
    """latent [N, latent_dim] float32 -> images [N, resolution, resolution, 3] in [-1, 1]."""
    stages = _stages(resolution)
    channels = width * 2 ** (stages - 1)
    z = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(4 * 4 * channels, use_bias=False, kernel_initializer=_INIT, name="project")(z)
    x = layers.Reshape((4, 4, channels))(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU()(x)
    for i in range(stages - 1):
        channels //= 2
        x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_INIT, name=f"up{i}")(x)
        x = layers.BatchNormalization(name=f"up{i}_bn")(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", kernel_initializer=_INIT,
                               name="to_rgb")(x)
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(resolution: int, *, width: int = 64) -> keras.Model:
    """images [N, resolution, resolution, 3] in [-1, 1] -> one real/fake logit per image."""
    stages = _stages(resolution)
    img = keras.Input(shape=(resolution, resolution, 3), name="images")
    x = img
    channels = width
    for i in range(stages):
        x = layers.Conv2D(channels, 4, strides=2, padding="same", use_bias=i == 0,
                          kernel_initializer=_INIT, name=f"down{i}")(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"down{i}_bn")(x)
        x = layers.LeakyReLU(0.2)(x)
        channels *= 2
    x = layers.Flatten()(x)
    logit = layers.Dense(1, kernel_initializer=_INIT, name="logit")(x)
    return keras.Model(img, logit, name="discriminator")
