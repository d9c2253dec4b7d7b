"""DiffAugment ops: shapes, determinism per seed, differentiability, what each op does."""

from __future__ import annotations

import numpy as np


def test_diffaugment_ops():
    import tensorflow as tf

    from trainer.augment import cutout, diff_augment, translation

    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = diff_augment(x, ("color", "translation", "cutout"), seed)
        loss = tf.reduce_sum(y)
    assert y.shape == x.shape
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    again = diff_augment(x, ("color", "translation", "cutout"), seed)
    assert np.array_equal(y.numpy(), again.numpy())
    other = diff_augment(x, ("color", "translation", "cutout"), seed + 1)
    assert not np.array_equal(y.numpy(), other.numpy())
    ones = tf.ones((8, 16, 16, 3))
    cut = cutout(ones, seed).numpy()
    zero_share = (cut == 0).all(axis=-1).mean(axis=(1, 2))
    assert np.all(zero_share > 0) and np.all(zero_share <= 0.25 + 1e-6)  # up to an 8x8 hole
    moved = translation(ones, seed).numpy()
    assert moved.shape == ones.shape and moved.min() == 0.0  # zero padding shifted in
    assert np.array_equal(diff_augment(x, (), seed).numpy(), x.numpy())
