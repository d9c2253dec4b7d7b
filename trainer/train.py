"""The training loop: data -> tf.data -> distributed DCGAN steps -> per-epoch hooks.

``train(config)`` is resumable: it restores the last complete checkpoint in the run directory
and continues from the next epoch, with the same shuffling and latent noise an uninterrupted
run would have used (trainer/determinism.py says under which conditions that is bit for bit).
The loop only runs steps (``DCGAN.step``) and averages their metrics; each epoch's end goes to
the hooks of trainer.hooks: sample grid, quality, metrics row, TensorBoard, then the checkpoint
(atomic). A crash loses at most the epoch in progress.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from common import datasets
from trainer import checkpoints, determinism, hooks, inputs, throughput
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


def train(config: TrainConfig) -> TrainResult:
    from trainer.rundir import RunDir

    run = RunDir(config.run)
    existing = checkpoints.latest(run.checkpoints)
    run.check_resume(config, existing is not None)
    index = inputs.scan(config)  # and prepares the images into the cache (one read per file)
    handler = run.attach_log()
    try:
        return _train(config, run, existing, index)
    finally:
        logging.getLogger("trainer").removeHandler(handler)
        handler.close()


def _epoch_hooks(config: TrainConfig, run, source, start: int, state: dict) -> list:
    """The chief's per-epoch duties, in the order they run (trainer.hooks)."""
    quality = hooks.Quality.create(config, run, source, start)
    tensorboard = hooks.TensorBoard.create(run.tensorboard) if config.tensorboard else None
    out = [
        hooks.SampleGrid(
            run, seed=config.seed, count=config.sample_count, latent_dim=config.latent_dim
        ),
        quality,
        hooks.MetricsCsv(run),
        tensorboard,
        hooks.Checkpoint(
            run.checkpoints, keep=config.keep_checkpoints, state=state, quality_hook=quality
        ),
    ]
    return [h for h in out if h is not None]


def _train(config: TrainConfig, run, existing, index: datasets.DatasetIndex) -> TrainResult:
    # decode + resize once (shared cache), then stream rows from the pack (trainer.inputs); the
    # data check runs on the files actually prepared
    source, index = inputs.open_images(
        config, index, check=lambda final: run.check_data(final, existing is not None)
    )
    log.info(
        "data %s: layout %s, %d usable images, %d skipped, fingerprint %s",
        index.root,
        index.layout,
        len(index.records),
        len(index.skipped),
        index.fingerprint,
    )
    for s in index.skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    if len(index.records) < config.batch_size:
        raise datasets.DataError(
            f"only {len(index.records)} usable images in {index.root}, "
            f"fewer than --batch-size {config.batch_size}; lower the "
            "batch size"
        )
    run.write_config(config)
    run.write_data(index, config)

    import keras

    from trainer.distribute import is_chief, make_strategy
    from trainer.gan import DCGAN
    from trainer.pipeline import ImagePipeline

    saved_environment = existing.state.get("environment") if existing is not None else None
    determinism.pin_threads(config.deterministic, saved_environment)
    strategy = make_strategy(config.strategy)  # both before TensorFlow's runtime starts
    environment = determinism.configure(config.deterministic, saved_environment)
    speed = throughput.resolve(
        config.jit_compile, config.precision, saved_environment, strategy=config.strategy
    )
    log.info("training step: %s", speed.reason)
    environment.update(speed.record())
    determinism.warn_differences(saved_environment, speed.record())
    keras.utils.set_random_seed(config.seed)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise datasets.DataError(
            f"--batch-size {config.batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas of --strategy "
            f"{config.strategy}"
        )
    gan = DCGAN(
        resolution=config.resolution,
        latent_dim=config.latent_dim,
        width=config.width,
        seed=config.seed,
        augmentations=config.augmentations,
        ema_decay=config.ema,
        label_smoothing=config.label_smoothing,
        learning_rate=config.learning_rate,
        beta1=config.beta1,
        d_learning_rate=config.d_learning_rate,
        r1_gamma=config.r1_gamma,
        r1_interval=config.r1_interval,
        strategy=strategy,
        jit_compile=speed.jit_compile,
        precision=speed.precision,
    )
    start = 0
    if existing is not None:
        checkpoints.restore(existing, gan)
        start = existing.epoch
        log.info(
            "resumed from %s (epoch %d, step %d%s)",
            existing.path,
            start,
            gan.step_count,
            ", old checkpoint format" if existing.legacy else "",
        )
    chief = is_chief()
    if chief:
        run.truncate_metrics(start)
    if start >= config.epochs:
        log.info("run already has %d of %d epochs; nothing to do", start, config.epochs)
        return TrainResult(
            run.path, start, start, len(index.records), len(index.skipped), index.fingerprint, {}
        )
    epoch_hooks: list[hooks.EpochHook] = []
    if chief:
        state = {
            "fingerprint": index.fingerprint,
            "image_count": len(index.records),
            "environment": environment,
        }
        epoch_hooks = _epoch_hooks(config, run, source, start, state)
    pipeline = ImagePipeline(source, config.batch_size, config.seed)
    log.info(
        "training %s for epochs %d..%d: %d images, %d steps/epoch, batch %d, %d replica(s)",
        config.run,
        start + 1,
        config.epochs,
        pipeline.count,
        pipeline.steps_per_epoch,
        config.batch_size,
        strategy.num_replicas_in_sync,
    )
    if config.strategy == "default":
        dataset = pipeline.batches(start + 1, config.epochs)
    else:  # each worker's input pipeline reads only the rows of its replicas
        dataset = pipeline.distribute(strategy, start + 1, config.epochs)
    try:
        metrics = _run_epochs(config, gan, pipeline, iter(dataset), start, epoch_hooks)
    finally:
        for hook in epoch_hooks:
            hook.close()
    log.info(
        "input: %d rows read by this process for %d steps of %d images",
        pipeline.rows_read,
        (config.epochs - start) * pipeline.steps_per_epoch,
        config.batch_size,
    )
    return TrainResult(
        run.path,
        start,
        config.epochs,
        len(index.records),
        len(index.skipped),
        index.fingerprint,
        metrics,
    )


def _run_epochs(config: TrainConfig, gan, pipeline, batches, start: int, epoch_hooks: list) -> dict:
    """Epochs ``start + 1 .. config.epochs``; the last epoch's metrics row."""
    from tqdm import tqdm

    metrics: dict = {}
    steps = pipeline.steps_per_epoch
    for epoch in range(start + 1, config.epochs + 1):
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="step",
            disable=not config.progress,
            leave=False,
        )
        for i in bar:
            global_step = (epoch - 1) * steps + i  # R1 is a function of the step: resumes
            out = gan.step(next(batches), regularize=gan.r1_due(global_step))
            values = {k: float(v) for k, v in out.items() if k != "r1"}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(d=f"{values['d_loss']:.3f}", g=f"{values['g_loss']:.3f}")
        seconds = time.perf_counter() - t0
        metrics = {
            "epoch": epoch,
            "step": gan.step_count,
            "seconds": round(seconds, 3),
            "images_per_s": round(steps * config.batch_size / max(seconds, 1e-9), 2),
            **{k: round(v / max(steps, 1), 5) for k, v in sums.items()},
        }
        end = hooks.EpochEnd(epoch, config.epochs, gan, metrics)
        for hook in epoch_hooks:
            hook.on_epoch_end(end)
        log.info(
            "epoch %d/%d: d_loss %.4f g_loss %.4f D(real) %.3f D(fake) %.3f, %.1f img/s",
            epoch,
            config.epochs,
            metrics["d_loss"],
            metrics["g_loss"],
            metrics["d_real"],
            metrics["d_fake"],
            metrics["images_per_s"],
        )
    return metrics
