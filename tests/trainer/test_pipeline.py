"""tf.data pipeline: per-epoch seeded shuffling that a resumed run reproduces exactly, rows
streamed from an image source a batch at a time, and each input pipeline of a multi-worker run
reading only its own rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest


class CountingSource:
    """An image source over an array that records every read (the rows, per call)."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.count = len(array)
        self.image_shape = array.shape[1:]
        self.calls: list[list[int]] = []
        self._lock = threading.Lock()

    def read(self, indices: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls.append([int(i) for i in indices])
        return self._array[indices]


def numbered(n: int, size: int = 2) -> np.ndarray:
    """Image i has every pixel equal to i (n <= 256)."""
    return np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3), np.uint8)


def ids(ds) -> list[list[int]]:
    return [np.round((b.numpy()[:, 0, 0, 0] + 1.0) * 127.5).astype(int).tolist() for b in ds]


def test_epochs_are_shuffled_reproducibly():
    from trainer.pipeline import ImagePipeline

    images = numbered(10)
    pipe = ImagePipeline(images, batch_size=4, seed=3)
    assert pipe.steps_per_epoch == 2

    full = ids(pipe.batches(1, 3))
    assert len(full) == 6 and all(len(b) == 4 for b in full)
    epochs = [sum(full[i : i + 2], []) for i in (0, 2, 4)]
    assert all(len(set(e)) == 8 for e in epochs)  # no image twice within an epoch
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    assert ids(pipe.batches(2, 3)) == full[2:]  # a resumed run sees the same order
    assert ids(ImagePipeline(images, 4, seed=4).batches(1, 1)) != full[:2]
    batch = next(iter(pipe.batches(1, 1))).numpy()
    assert batch.dtype == np.float32 and batch.min() >= -1.0 and batch.max() <= 1.0
    # an image source gives exactly the batches of the in-memory array
    assert ids(ImagePipeline(CountingSource(images), 4, seed=3).batches(1, 3)) == full


def test_rows_are_read_a_batch_at_a_time_and_only_a_few_batches_ahead():
    from trainer.pipeline import PREFETCH, READS, ImagePipeline

    source = CountingSource(numbered(200))
    pipe = ImagePipeline(source, batch_size=8, seed=1)
    assert source.calls == []  # building the pipeline reads nothing
    it = iter(pipe.batches(1, 3))
    first = [next(it).numpy() for _ in range(2)]
    assert len(first) == 2
    # bounded by the pipeline's buffers, not by N (200 rows = 25 batches per epoch)
    assert 2 <= len(source.calls) <= 2 + READS + PREFETCH + 2
    rest = list(it)
    assert len(rest) == 3 * 25 - 2
    assert len(source.calls) == 3 * 25 and all(len(c) == 8 for c in source.calls)
    rows = sorted(sum(source.calls, []))  # (parallel reads: calls in any order)
    assert rows == sorted(list(range(200)) * 3)  # each row once per epoch


@pytest.mark.parametrize("workers,replicas_per_worker", [(2, 1), (2, 2), (1, 2)])
def test_each_input_pipeline_reads_only_its_share_of_the_global_batch(workers, replicas_per_worker):
    import tensorflow as tf

    from trainer.pipeline import ImagePipeline

    images, batch = numbered(40), 8
    single = ids(ImagePipeline(images, batch, seed=5).batches(1, 2))
    replicas = workers * replicas_per_worker
    per_replica = batch // replicas
    got, reads = [], []
    for w in range(workers):
        source = CountingSource(images)
        context = tf.distribute.InputContext(workers, w, replicas)
        got.append(ids(ImagePipeline(source, batch, seed=5).batches(1, 2, context)))
        reads.append(source.calls)
    steps = len(single)
    for w in range(workers):
        assert len(got[w]) == steps * replicas_per_worker
        assert all(len(b) == per_replica for b in got[w])
        assert sorted(reads[w]) == sorted(got[w])  # it read exactly the rows it yields
    for step, global_batch in enumerate(single):
        # replica r of worker w holds rows [(w * R + r) * b, ...) of the single-worker batch
        parts = [
            got[w][step * replicas_per_worker + r]
            for w in range(workers)
            for r in range(replicas_per_worker)
        ]
        assert sum(parts, []) == global_batch


def test_a_wrong_source_is_refused():
    from trainer.pipeline import ImagePipeline

    with pytest.raises(ValueError, match="uint8"):
        ImagePipeline(np.zeros((4, 2, 2, 3), np.float32), 2, 0)

    class Bad(CountingSource):
        def read(self, indices):
            return super().read(indices)[:, :1]

    with pytest.raises(Exception, match="image source returned"):
        list(ImagePipeline(Bad(numbered(8)), 4, 0).batches(1, 1))


@pytest.mark.slow
def test_training_from_a_pack_equals_training_from_the_array_bit_for_bit(tmp_path):
    import tensorflow as tf

    from common.image_cache import ImageCache, prepare
    from common.image_pack import PackReader
    from tests.trainer.helpers import DEMO, demo_rows
    from trainer.gan import DCGAN
    from trainer.inputs import policy
    from trainer.pipeline import ImagePipeline

    tf.config.experimental.enable_op_determinism()
    paths = [DEMO / f"{r['isic_id']}.jpg" for r in demo_rows()[:24]]
    prepared = prepare(paths, policy(32), cache=ImageCache(tmp_path / "cache"), progress=False)
    images = prepared.load_all()  # the in-memory array
    pack = PackReader(prepared.write_pack(tmp_path / "train.pack"))  # the same rows on disk
    assert images.shape == (24, 32, 32, 3) and pack.count == 24

    def trained(source) -> list[np.ndarray]:
        gan = DCGAN(resolution=32, latent_dim=16, width=8, seed=2, ema_decay=0.9)
        pipe = ImagePipeline(source, batch_size=8, seed=2)
        for i, batch in enumerate(pipe.batches(1, 2)):
            gan.step(batch, regularize=gan.r1_due(i))
        assert gan.step_count == 6
        return [np.asarray(v) for v in gan.generator.weights + gan.discriminator.weights]

    from_array, from_pack = trained(images), trained(pack)
    assert len(from_array) > 10
    assert all(a.tobytes() == b.tobytes() for a, b in zip(from_array, from_pack))
