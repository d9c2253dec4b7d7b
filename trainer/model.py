"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015, arXiv:1511.06434).

Generator: a dense projection of the latent to 4x4 feature maps, then stride-2 transposed
convolutions with batch norm and ReLU, doubling the resolution each time, and a tanh output in
[-1, 1] (NHWC). Discriminator: stride-2 convolutions with LeakyReLU(0.2), batch norm on all
but the first layer, down to 4x4, then one logit. Channel widths halve/double per stage from
``width`` at the highest resolution, as in the paper's architecture guidelines.

Weights start from the paper's N(0, 0.02). Each layer gets its own initializer: with ``seed``,
one seeded by (seed, network, layer index), so two processes build bit-identical networks;
without, one seeded from Python's ``random`` (``keras.utils.set_random_seed`` makes it
repeatable). A shared module-level initializer would draw its seed once at import, from
unseeded ``random`` (different in every process), and give every layer the same stream.

Every layer with weights has a fixed name (``project``, ``up0``, ``down1_bn``, ...): checkpoints
store variables under these names (trainer.checkpoints), so renaming one makes old checkpoints
refuse to load, naming the variable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

RESOLUTIONS = (32, 64, 128)
_GENERATOR, _DISCRIMINATOR = 1, 2  # salts: the two networks draw from different streams


def _initializers(seed: int | None, network: int) -> Callable[[], keras.initializers.Initializer]:
    """A factory of fresh N(0, 0.02) initializers, one per layer (the paper's init)."""
    count = itertools.count()

    def make() -> keras.initializers.Initializer:
        layer_seed = None
        if seed is not None:
            state = np.random.SeedSequence([seed, network, next(count)]).generate_state(1)
            layer_seed = int(state[0] & 0x7FFFFFFF)
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=layer_seed)

    return make


def _stages(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return int(math.log2(resolution)) - 2  # 4x4 -> resolution in this many stride-2 steps


def build_generator(
    resolution: int,
    latent_dim: int,
    *,
    width: int = 64,
    seed: int | None = None,
    dtype: str | None = None,
) -> keras.Model:
    """latent [N, latent_dim] float32 -> images [N, resolution, resolution, 3] in [-1, 1].

    ``dtype``: the layers' Keras dtype policy (None: the global one, float32 unless changed;
    "mixed_bfloat16"/"mixed_float16": float32 variables, low-precision compute). The output
    layer is always float32, so images are float32 whatever the policy."""
    init = _initializers(seed, _GENERATOR)
    stages = _stages(resolution)
    channels = width * 2 ** (stages - 1)
    z = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(
        4 * 4 * channels, use_bias=False, kernel_initializer=init(), name="project", dtype=dtype
    )(z)
    x = layers.Reshape((4, 4, channels), dtype=dtype)(x)
    x = layers.BatchNormalization(name="project_bn", dtype=dtype)(x)
    x = layers.ReLU(dtype=dtype)(x)
    for i in range(stages - 1):
        channels //= 2
        x = layers.Conv2DTranspose(
            channels,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=init(),
            name=f"up{i}",
            dtype=dtype,
        )(x)
        x = layers.BatchNormalization(name=f"up{i}_bn", dtype=dtype)(x)
        x = layers.ReLU(dtype=dtype)(x)
    x = layers.Conv2DTranspose(
        3, 4, strides=2, padding="same", kernel_initializer=init(), name="to_rgb", dtype=dtype
    )(x)
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(
    resolution: int, *, width: int = 64, seed: int | None = None, dtype: str | None = None
) -> keras.Model:
    """images [N, resolution, resolution, 3] in [-1, 1] -> one real/fake logit per image.

    ``dtype`` as in :func:`build_generator`; the logit layer is always float32, so the losses
    are computed in float32 whatever the policy."""
    init = _initializers(seed, _DISCRIMINATOR)
    stages = _stages(resolution)
    img = keras.Input(shape=(resolution, resolution, 3), name="images")
    x = img
    channels = width
    for i in range(stages):
        x = layers.Conv2D(
            channels,
            4,
            strides=2,
            padding="same",
            use_bias=i == 0,
            kernel_initializer=init(),
            name=f"down{i}",
            dtype=dtype,
        )(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"down{i}_bn", dtype=dtype)(x)
        x = layers.LeakyReLU(0.2, dtype=dtype)(x)
        channels *= 2
    x = layers.Flatten(dtype=dtype)(x)
    logit = layers.Dense(1, kernel_initializer=init(), name="logit", dtype="float32")(x)
    return keras.Model(img, logit, name="discriminator")
