"""tf.data input pipeline over the decoded uint8 images (from ``trainer.data``).

cache -> shuffle (seeded by the run seed and the epoch, so a resumed run sees the same order
it would have seen) -> map to float32 [-1, 1] -> batch (drop remainder, so every step has the
global batch) -> prefetch. The whole image array is small enough to live in memory (2,000
images at 128 px are 98 MB), so decoding happens once, before training.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible shuffle seed for each (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2 ** 31 - 1)


def _to_unit(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 127.5 - 1.0


class ImagePipeline:
    """Builds one epoch's ``tf.data.Dataset`` from a uint8 [N, H, W, 3] array."""

    def __init__(self, images_uint8: np.ndarray, batch_size: int, seed: int):
        if images_uint8.ndim != 4 or images_uint8.shape[-1] != 3 or images_uint8.dtype != np.uint8:
            raise ValueError(f"expected uint8 [N, H, W, 3], got {images_uint8.dtype} "
                             f"{images_uint8.shape}")
        self.count = int(images_uint8.shape[0])
        self.batch_size = batch_size
        self.seed = seed
        self._base = tf.data.Dataset.from_tensor_slices(images_uint8).cache()

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.batch_size

    def epoch(self, epoch: int) -> tf.data.Dataset:
        ds = self._base.shuffle(self.count, seed=epoch_seed(self.seed, epoch),
                                reshuffle_each_iteration=False)
        ds = ds.map(_to_unit, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(self.batch_size, drop_remainder=True)
        return ds.prefetch(tf.data.AUTOTUNE)
