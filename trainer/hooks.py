"""What happens at the end of each training epoch, one small object per duty.

trainer.train runs the steps; after each epoch it hands an :class:`EpochEnd` to its hooks, in
order (on the chief only; other workers of a multi-worker run only train):

1. :class:`SampleGrid`: a grid from a fixed latent batch, ``RUN/samples/epoch_XXXX.png``;
2. :class:`Quality`: every ``--quality-every`` epochs and at the last, the weight-free quality
   (trainer.quality), ``quality.json`` + ``quality.png``; adds its columns to the metrics row;
3. :class:`MetricsCsv`: the epoch's row in ``metrics.csv``;
4. :class:`TensorBoard`: scalars, quality and the sample grid;
5. :class:`Checkpoint`: the checkpoint, last, so that everything above exists for every epoch
   a resume starts after (a crash loses at most the epoch in progress).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from trainer import checkpoints, quality

log = logging.getLogger("trainer")


@dataclass
class EpochEnd:
    """One finished epoch, as the hooks see it; hooks add what later hooks use."""

    epoch: int
    last_epoch: int  # the run's --epochs
    gan: object  # trainer.gan.DCGAN
    metrics: dict  # the metrics.csv row (quality columns added by Quality)
    samples: np.ndarray | None = None  # [N, H, W, 3] in [-1, 1], set by SampleGrid
    quality: dict = field(default_factory=dict)  # the quality row, when measured this epoch


class EpochHook:
    def on_epoch_end(self, end: EpochEnd) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SampleGrid(EpochHook):
    def __init__(self, run, *, seed: int, count: int, latent_dim: int):
        self.run = run
        rng = np.random.default_rng([seed, 0x5A17])
        self.latents = rng.standard_normal((count, latent_dim)).astype(np.float32)

    def on_epoch_end(self, end: EpochEnd) -> None:
        end.samples = np.asarray(end.gan.export_generator(self.latents, training=False))
        self.run.write_samples(end.epoch, end.samples)


class Quality(EpochHook):
    """Measures the exported generator; saves quality.json (before the epoch's checkpoint)."""

    def __init__(self, tracker: quality.QualityTracker, run, every: int):
        self.tracker, self.run, self.every = tracker, run, every

    @classmethod
    def create(cls, config, run, images, start: int) -> Quality | None:
        """The run's hook (history restored up to epoch ``start``), or None when off.
        ``images``: the training images' source (trainer.pipeline), or a uint8 array."""
        if not config.quality_every:
            return None
        count, shape = (
            (len(images), images.shape[1:])
            if isinstance(images, np.ndarray)
            else (images.count, tuple(images.image_shape))
        )
        if count < 4 or shape[0] < 16:
            log.warning("quality tracking needs at least 4 training images of 16+ px: off")
            return None
        t0 = time.perf_counter()
        tracker = quality.QualityTracker(
            images,
            latent_dim=config.latent_dim,
            seed=config.seed,
            count=config.quality_count,
            path=run.quality_file,
        )
        tracker.restore(start)
        ref = tracker.reference
        log.info(
            "quality tracking every %d epochs, %d images per set (real vs real: SWD %.2f, "
            "Lab W1 %.2f, background Delta E %.2f; %.1f s); best epoch so far: %s",
            config.quality_every,
            tracker.m,
            ref["swd_avg"],
            ref["lab_w1"],
            ref["background_delta_e"],
            time.perf_counter() - t0,
            tracker.best_epoch,
        )
        return cls(tracker, run, config.quality_every)

    @property
    def best_epoch(self) -> int | None:
        return self.tracker.best_epoch

    def on_epoch_end(self, end: EpochEnd) -> None:
        if end.epoch % self.every and end.epoch != end.last_epoch:
            return
        t0 = time.perf_counter()
        tracker = self.tracker
        row = tracker.evaluate(end.gan.export_generator, end.epoch)
        tracker.save()
        if not tracker.plot(self.run.quality_png) and end.epoch == tracker.history[0]["epoch"]:
            log.warning(
                "matplotlib is not installed: no %s (pip install matplotlib)", self.run.quality_png
            )
        log.info(
            "quality at epoch %d: SWD %.2f, Lab W1 %.2f, background Delta E %.2f (RGB %s), "
            "score %.3f; best epoch %s (%.1f s)",
            end.epoch,
            row["swd_avg"],
            row["lab_w1"],
            row["background_delta_e"],
            row["background_rgb"],
            row["quality_score"],
            tracker.best_epoch,
            time.perf_counter() - t0,
        )
        end.quality = row
        end.metrics.update({k: row[k] for k in quality.CSV_KEYS})


class MetricsCsv(EpochHook):
    def __init__(self, run):
        self.run = run

    def on_epoch_end(self, end: EpochEnd) -> None:
        self.run.append_metrics(end.metrics)


class TensorBoard(EpochHook):
    SCALARS = ("d_loss", "g_loss", "d_real", "d_fake", "images_per_s")

    def __init__(self, writer):
        self.writer = writer

    @classmethod
    def create(cls, folder) -> TensorBoard | None:
        """A hook writing to ``folder``, or None (with a warning) without tensorboard."""
        try:
            import tensorboard  # noqa: F401  (tf.summary's ops live there)
        except ImportError:
            log.warning(
                "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)"
            )
            return None
        import tensorflow as tf

        return cls(tf.summary.create_file_writer(str(folder)))

    def on_epoch_end(self, end: EpochEnd) -> None:
        import tensorflow as tf

        with self.writer.as_default(step=end.epoch):
            for k in self.SCALARS:
                tf.summary.scalar(k, end.metrics[k])
            for k, v in end.quality.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    tf.summary.scalar(f"quality/{k}", v)
            if end.samples is not None:
                tf.summary.image("samples", (end.samples[:16] + 1.0) / 2.0, max_outputs=16)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Checkpoint(EpochHook):
    """The epoch's checkpoint (trainer.checkpoints), keeping the best snapshot from pruning."""

    def __init__(self, folder, *, keep: int, state: dict, quality_hook: Quality | None = None):
        self.folder, self.keep, self.state = folder, keep, state
        self.quality_hook = quality_hook

    def on_epoch_end(self, end: EpochEnd) -> None:
        best = self.quality_hook.best_epoch if self.quality_hook is not None else None
        checkpoints.save(
            self.folder,
            end.epoch,
            end.gan,
            keep=self.keep,
            state={**self.state, "step": end.metrics["step"]},
            protect=(best,),
        )
