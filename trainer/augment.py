"""DiffAugment: differentiable augmentation for data-efficient GAN training.

Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN
Training" (arXiv:2006.10738); a TensorFlow port of the reference implementation's
``DiffAugment_tf.py`` (colour: brightness, saturation, contrast; translation by up to 1/8 of
the image with zero padding; cutout of a square half the image's side). The same policy is
applied to real and generated images before the discriminator, and every op is
differentiable, so the generator's gradients flow through it.

Randomness is stateless: each call takes a ``seed`` ([2] int32 tensor), so a resumed run
draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import tensorflow as tf


def _uniform(shape, seed, salt: int, minval=0.0, maxval=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(
        shape,
        seed=seed + tf.constant([0, salt], seed.dtype),
        minval=minval,
        maxval=maxval,
        dtype=dtype,
    )


def color(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    n = tf.shape(x)[0]
    x = x + (_uniform([n, 1, 1, 1], seed, 1) - 0.5)  # brightness
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_uniform([n, 1, 1, 1], seed, 2) * 2.0) + mean  # saturation
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_uniform([n, 1, 1, 1], seed, 3) + 0.5) + mean  # contrast


def translation(x: tf.Tensor, seed: tf.Tensor, ratio: float = 0.125) -> tf.Tensor:
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    sh = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    sw = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    ty = _uniform([n, 1], seed, 4, -sh, sh + 1, tf.int32)
    tx = _uniform([n, 1], seed, 5, -sw, sw + 1, tf.int32)
    gy = tf.clip_by_value(tf.range(h)[None, :] + ty + 1, 0, h + 1)  # [n, h] indices into padded
    gx = tf.clip_by_value(tf.range(w)[None, :] + tx + 1, 0, w + 1)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.gather(padded, gy, axis=1, batch_dims=1)  # [n, h, w+2, c]
    return tf.gather(rows, gx, axis=2, batch_dims=1)  # [n, h, w, c]


def cutout(x: tf.Tensor, seed: tf.Tensor, ratio: float = 0.5) -> tf.Tensor:
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ch = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    cw = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    cy = _uniform([n, 1, 1], seed, 6, 0, h + (1 - ch % 2), tf.int32)
    cx = _uniform([n, 1, 1], seed, 7, 0, w + (1 - cw % 2), tf.int32)
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = (
        (ys >= cy - ch // 2)
        & (ys < cy - ch // 2 + ch)
        & (xs >= cx - cw // 2)
        & (xs < cx - cw // 2 + cw)
    )
    mask = 1.0 - tf.cast(inside, x.dtype)
    return x * mask[..., None]


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: tf.Tensor, policies: tuple[str, ...], seed: tf.Tensor) -> tf.Tensor:
    """Apply ``policies`` (in the reference order color, translation, cutout) to ``x``."""
    for i, name in enumerate(p for p in ("color", "translation", "cutout") if p in policies):
        x = POLICIES[name](x, seed + tf.constant([0, 100 * (i + 1)], seed.dtype))
    return x
