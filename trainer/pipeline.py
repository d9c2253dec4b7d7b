"""tf.data input pipeline that streams uint8 rows from an image source (a pack on disk).

An image source is any object with ``.count``, ``.image_shape`` (S, S, 3) and
``.read(indices) -> uint8 [k, S, S, 3]`` (``common.image_pack.PackReader`` reads rows of the
run's pack file with ``os.pread``; ``ArraySource`` wraps an in-memory array). Memory does not
grow with N: only the per-epoch order (N int64) is held; rows are read batch by batch.

One dataset spans all remaining epochs, so prefetching runs across epoch boundaries and the
step never waits for a pipeline restart. Per epoch: a stateless shuffle of the row indices
seeded by (run seed, epoch), so a resumed run sees exactly the order an uninterrupted one would
-> global batches of indices (drop remainder: every step has the global batch) -> this input
pipeline's share of each global batch (multi-worker: worker w reads only the rows of its
replicas) -> read the rows (``READS`` in parallel, order kept) -> float32 [-1, 1] -> prefetch.
At most ``(READS + PREFETCH + 1)`` batches of rows exist at any time, whatever N is.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np
import tensorflow as tf

from common.image_pack import ArraySource

READS = 4  # batches read in parallel (os.pread releases the GIL)
PREFETCH = 2  # batches ready ahead of the step


class ImageSource(Protocol):
    count: int
    image_shape: tuple[int, int, int]

    def read(self, indices: np.ndarray) -> np.ndarray: ...


def as_source(images) -> ImageSource:
    """``images`` itself when it is an image source; a uint8 array wrapped as one."""
    if isinstance(images, np.ndarray):
        return ArraySource(images)  # checks uint8 [N, H, W, 3]
    shape = tuple(images.image_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"expected an image source of [S, S, 3] rows, got {shape}")
    return images


def _to_unit(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 127.5 - 1.0


class ImagePipeline:
    """Batches for epochs ``first..last`` (1-based) from an image source (or a uint8 array)."""

    def __init__(self, source, batch_size: int, seed: int):
        self.source = as_source(source)
        self.count = int(self.source.count)
        self.image_shape = tuple(int(d) for d in self.source.image_shape)
        self.batch_size = batch_size
        self.seed = seed
        self.rows_read = 0  # by this process's input pipeline(s), so far
        self._lock = threading.Lock()

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.batch_size

    def _read(self, indices: np.ndarray) -> np.ndarray:
        rows = np.asarray(self.source.read(indices))
        if rows.dtype != np.uint8 or rows.shape != (len(indices), *self.image_shape):
            raise ValueError(
                f"image source returned {rows.dtype} {rows.shape} for {len(indices)} rows of "
                f"{self.image_shape}"
            )
        with self._lock:
            self.rows_read += len(rows)
        return rows

    def _order(self, epoch: tf.Tensor) -> tf.Tensor:
        return tf.random.experimental.stateless_shuffle(
            tf.range(self.count, dtype=tf.int64),
            seed=tf.stack([tf.constant(self.seed, tf.int64), epoch]),
        )

    def _layout(self, context) -> tuple[int, int, int]:
        """(rows of each global batch this pipeline reads, its part number, rows per batch)."""
        if context is None:
            return self.batch_size, 0, self.batch_size
        if self.batch_size % context.num_input_pipelines:
            raise ValueError(
                f"batch size {self.batch_size} is not divisible by the "
                f"{context.num_input_pipelines} input pipelines"
            )
        share = self.batch_size // context.num_input_pipelines
        return share, context.input_pipeline_id, context.get_per_replica_batch_size(self.batch_size)

    def indices(self, first: int, last: int, context=None) -> tf.data.Dataset:
        """The index batches :meth:`batches` reads, one per replica step of this pipeline."""
        share, part, rows = self._layout(context)
        global_batch = self.batch_size

        def epoch(e: tf.Tensor) -> tf.data.Dataset:
            ds = tf.data.Dataset.from_tensor_slices(self._order(e))
            ds = ds.batch(global_batch, drop_remainder=True)
            if share != global_batch:  # this worker's contiguous share of the global batch
                ds = ds.map(lambda idx: idx[part * share : (part + 1) * share])
            if rows != share:  # one batch per local replica, in replica order
                ds = ds.flat_map(
                    lambda idx: tf.data.Dataset.from_tensor_slices(tf.reshape(idx, [-1, rows]))
                )
            return ds

        return tf.data.Dataset.range(first, last + 1).flat_map(epoch)

    def batches(self, first: int, last: int, context=None) -> tf.data.Dataset:
        """``steps_per_epoch`` batches for each epoch in ``first..last``, in order.

        Without ``context``: global batches. With a ``tf.distribute.InputContext`` (from
        ``strategy.distribute_datasets_from_function``): per-replica batches of this input
        pipeline's share of every global batch; the global order is the single-worker one.
        """
        shape = [self._layout(context)[2], *self.image_shape]

        def read(idx: tf.Tensor) -> tf.Tensor:
            rows = tf.numpy_function(self._read, [idx], tf.uint8, stateful=False)
            rows.set_shape(shape)
            return _to_unit(rows)

        ds = self.indices(first, last, context).map(
            read, num_parallel_calls=READS, deterministic=True
        )
        return ds.prefetch(PREFETCH)

    def distribute(self, strategy, first: int, last: int):
        """The strategy's distributed dataset: each input pipeline reads only its rows."""
        return strategy.distribute_datasets_from_function(
            lambda context: self.batches(first, last, context)
        )
