"""The training loop: data -> tf.data -> distributed DCGAN steps -> per-epoch artifacts.

``train(config)`` is resumable: it restores the last complete checkpoint in the run directory
and continues from the next epoch, with the same shuffling and latent noise an uninterrupted
run would have used (trainer/determinism.py says under which conditions that is bit for bit).
Each epoch ends with: sample grid, metrics row, TensorBoard scalars and image, then the
checkpoint (atomic). A crash loses at most the epoch in progress.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer import checkpoints, data, determinism, quality
from trainer.config import TrainConfig

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class TrainResult:
    run: Path
    start_epoch: int  # epochs already done when this invocation started
    epochs: int  # epochs done when it finished
    image_count: int
    skipped: int
    fingerprint: str
    last_metrics: dict


def _sample_latents(config: TrainConfig) -> np.ndarray:
    rng = np.random.default_rng([config.seed, 0x5A17])
    return rng.standard_normal((config.sample_count, config.latent_dim)).astype(np.float32)


def _quality_tracker(config: TrainConfig, run, images: np.ndarray, start: int):
    """The run's quality tracker (history restored up to epoch ``start``), or None when off."""
    if not config.quality_every:
        return None
    if len(images) < 4 or images.shape[1] < 16:
        log.warning("quality tracking needs at least 4 training images of 16+ px: off")
        return None
    t0 = time.perf_counter()
    tracker = quality.QualityTracker(images, latent_dim=config.latent_dim, seed=config.seed,
                                     count=config.quality_count, path=run.quality_file)
    tracker.restore(start)
    log.info("quality tracking every %d epochs, %d images per set (real vs real: SWD %.2f, "
             "Lab W1 %.2f, background Delta E %.2f; %.1f s); best epoch so far: %s",
             config.quality_every, tracker.m, tracker.reference["swd_avg"],
             tracker.reference["lab_w1"], tracker.reference["background_delta_e"],
             time.perf_counter() - t0, tracker.best_epoch)
    return tracker


def _measure_quality(tracker, gan, epoch: int, run) -> dict:
    """Measure, then save quality.json (before the epoch's checkpoint) and the curve."""
    t0 = time.perf_counter()
    row = tracker.evaluate(gan.export_generator, epoch)
    tracker.save()
    if not tracker.plot(run.quality_png) and epoch == tracker.history[0]["epoch"]:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)",
                    run.quality_png)
    log.info("quality at epoch %d: SWD %.2f, Lab W1 %.2f, background Delta E %.2f (RGB %s), "
             "score %.3f; best epoch %s (%.1f s)", epoch, row["swd_avg"], row["lab_w1"],
             row["background_delta_e"], row["background_rgb"], row["quality_score"],
             tracker.best_epoch, time.perf_counter() - t0)
    return row


def train(config: TrainConfig) -> TrainResult:
    from trainer.rundir import RunDir

    run = RunDir(config.run)
    existing = checkpoints.latest(run.checkpoints)
    run.check_resume(config, existing is not None)
    index = data.scan(config.data, benign_malignant=config.benign_malignant,
                      diagnosis=config.diagnosis, layout=config.layout, progress=config.progress)
    run.check_data(index, existing is not None)
    handler = run.attach_log()
    try:
        return _train(config, run, existing, index)
    finally:
        logging.getLogger("trainer").removeHandler(handler)
        handler.close()


def _train(config: TrainConfig, run, existing, index: data.DatasetIndex) -> TrainResult:
    log.info("data %s: layout %s, %d usable images, %d skipped, fingerprint %s", index.root,
             index.layout, len(index.records), len(index.skipped), index.fingerprint)
    for s in index.skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    if len(index.records) < config.batch_size:
        raise data.DataError(f"only {len(index.records)} usable images in {index.root}, fewer "
                             f"than --batch-size {config.batch_size}; lower the batch size")
    run.write_config(config)
    run.write_data(index, config)
    images = data.load_images(index.records, config.resolution, progress=config.progress)

    import keras
    import tensorflow as tf

    from trainer.distribute import is_chief, make_strategy
    from trainer.gan import DCGAN, make_step
    from trainer.pipeline import ImagePipeline

    environment = determinism.configure(
        config.deterministic, existing.state.get("environment") if existing is not None else None)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise data.DataError(f"--batch-size {config.batch_size} is not divisible by the "
                             f"{strategy.num_replicas_in_sync} replicas of --strategy "
                             f"{config.strategy}")
    with strategy.scope():
        gan = DCGAN(resolution=config.resolution, latent_dim=config.latent_dim,
                    width=config.width, seed=config.seed, augmentations=config.augmentations,
                    ema_decay=config.ema, label_smoothing=config.label_smoothing,
                    learning_rate=config.learning_rate, beta1=config.beta1,
                    d_learning_rate=config.d_learning_rate, r1_gamma=config.r1_gamma,
                    r1_interval=config.r1_interval)
    start = 0
    if existing is not None:
        checkpoints.restore(existing, gan)
        start = existing.epoch
        log.info("resumed from %s (epoch %d, step %d)", existing.path, start,
                 int(gan.d_optimizer.iterations.numpy()))
    chief = is_chief()
    tracker = None
    if chief:
        run.truncate_metrics(start)
        tracker = _quality_tracker(config, run, images, start)
    if start >= config.epochs:
        log.info("run already has %d of %d epochs; nothing to do", start, config.epochs)
        return TrainResult(run.path, start, start, len(index.records), len(index.skipped),
                           index.fingerprint, {})
    pipeline = ImagePipeline(images, config.batch_size, config.seed)
    step_fn = make_step(gan, strategy)
    r1_step_fn = make_step(gan, strategy, regularize=True) if config.r1_gamma > 0 else None
    latents = _sample_latents(config)
    writer = None
    if config.tensorboard and chief:
        try:
            import tensorboard  # noqa: F401  (tf.summary's ops live there)
            writer = tf.summary.create_file_writer(str(run.tensorboard))
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    log.info("training %s for epochs %d..%d: %d images, %d steps/epoch, batch %d, %d replica(s)",
             config.run, start + 1, config.epochs, pipeline.count, pipeline.steps_per_epoch,
             config.batch_size, strategy.num_replicas_in_sync)
    metrics: dict = {}
    from tqdm import tqdm
    dataset = pipeline.batches(start + 1, config.epochs)
    if config.strategy != "default":
        dataset = strategy.experimental_distribute_dataset(dataset)
    batches = iter(dataset)
    for epoch in range(start + 1, config.epochs + 1):
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(range(pipeline.steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}",
                   unit="step", disable=not config.progress, leave=False)
        for i in bar:
            global_step = (epoch - 1) * pipeline.steps_per_epoch + i  # a function of the step:
            lazy_r1 = r1_step_fn is not None and global_step % config.r1_interval == 0  # resumes
            out = (r1_step_fn if lazy_r1 else step_fn)(next(batches))
            values = {k: float(v) for k, v in out.items() if k != "r1"}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(d=f"{values['d_loss']:.3f}", g=f"{values['g_loss']:.3f}")
        steps = pipeline.steps_per_epoch
        seconds = time.perf_counter() - t0
        step_count = int(gan.d_optimizer.iterations.numpy())
        metrics = {"epoch": epoch, "step": step_count, "seconds": round(seconds, 3),
                   "images_per_s": round(steps * config.batch_size / max(seconds, 1e-9), 2),
                   **{k: round(v / max(steps, 1), 5) for k, v in sums.items()}}
        if chief:
            samples = np.asarray(gan.export_generator(latents, training=False))
            run.write_samples(epoch, samples)
            measured = {}
            if tracker is not None and (epoch % config.quality_every == 0
                                        or epoch == config.epochs):
                measured = _measure_quality(tracker, gan, epoch, run)
                metrics.update({k: measured[k] for k in quality.CSV_KEYS})
            run.append_metrics(metrics)
            if writer is not None:
                with writer.as_default(step=epoch):
                    for k in ("d_loss", "g_loss", "d_real", "d_fake", "images_per_s"):
                        tf.summary.scalar(k, metrics[k])
                    for k, v in measured.items():
                        if k != "epoch" and isinstance(v, (int, float)):
                            tf.summary.scalar(f"quality/{k}", v)
                    tf.summary.image("samples", (samples[:16] + 1.0) / 2.0, max_outputs=16)
                writer.flush()
            checkpoints.save(run.checkpoints, epoch, gan, keep=config.keep_checkpoints,
                             state={"step": step_count, "fingerprint": index.fingerprint,
                                    "image_count": len(index.records),
                                    "environment": environment},
                             protect=(tracker.best_epoch if tracker is not None else None,))
        log.info("epoch %d/%d: d_loss %.4f g_loss %.4f D(real) %.3f D(fake) %.3f, %.1f img/s",
                 epoch, config.epochs, metrics["d_loss"], metrics["g_loss"], metrics["d_real"],
                 metrics["d_fake"], metrics["images_per_s"])
    if writer is not None:
        writer.close()
    return TrainResult(run.path, start, config.epochs, len(index.records), len(index.skipped),
                       index.fingerprint, metrics)

