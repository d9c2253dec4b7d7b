"""Training-step throughput: dermsynth's DCGAN step vs a plain reference loop, same run.

Measures, at one resolution and batch size, on the bundled demo images:
  * dermsynth: trainer.gan.DCGAN.step (D + G update + EMA, compiled with tf.function through
    tf.distribute), fed by trainer.pipeline.ImagePipeline (tf.data);
    once with the default DiffAugment + EMA, once with both off (the same work as the reference);
  * reference: the same generator/discriminator (trainer.model) and Adam settings in a
    straightforward tf.function GradientTape loop over pre-made NumPy batches, no tf.data.
Reports images/s, the ratio to the reference, and the share of wall time spent waiting in the
input iterator's next() (the rest is the step itself). Steps are timed to completion (the
loss is fetched each step). Usage: .venv/bin/python bench/train_bench.py [--steps 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def reference(images, batch, steps, warmup, latent_dim, width, resolution):
    import keras
    import tensorflow as tf

    from trainer.model import build_discriminator, build_generator

    keras.utils.set_random_seed(0)
    g, d = (
        build_generator(resolution, latent_dim, width=width),
        build_discriminator(resolution, width=width),
    )
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    unit = images.astype(np.float32) / 127.5 - 1.0
    batches = [unit[i : i + batch] for i in range(0, len(unit) - batch + 1, batch)]

    @tf.function
    def step(real):
        n = tf.shape(real)[0]
        z = tf.random.normal([n, latent_dim])
        with tf.GradientTape() as tape:
            logits = d(tf.concat([real, g(z, training=True)], 0), training=True)
            d_loss = bce(tf.concat([tf.ones([n, 1]), tf.zeros([n, 1])], 0), logits)
        d_opt.apply_gradients(
            zip(tape.gradient(d_loss, d.trainable_variables), d.trainable_variables)
        )
        z = tf.random.normal([n, latent_dim])
        with tf.GradientTape() as tape:
            g_loss = bce(tf.ones([n, 1]), d(g(z, training=True), training=True))
        g_opt.apply_gradients(
            zip(tape.gradient(g_loss, g.trainable_variables), g.trainable_variables)
        )
        return d_loss

    wait = total = 0.0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        real = batches[i % len(batches)]
        t1 = time.perf_counter()
        float(step(real))
        t2 = time.perf_counter()
        if i >= warmup:
            wait, total = wait + t1 - t0, total + t2 - t0
    return steps * batch / total, wait / total


def dermsynth(images, batch, steps, warmup, latent_dim, width, resolution, augment, ema):
    import keras
    import tensorflow as tf

    from trainer.gan import DCGAN
    from trainer.pipeline import ImagePipeline

    keras.utils.set_random_seed(0)
    gan = DCGAN(
        resolution=resolution,
        latent_dim=latent_dim,
        width=width,
        seed=0,
        augmentations=augment,
        ema_decay=ema,
        strategy=tf.distribute.get_strategy(),
    )
    step = gan.step
    pipeline = ImagePipeline(images, batch, seed=0)
    epochs = -(-(warmup + steps) // pipeline.steps_per_epoch)
    it = iter(pipeline.batches(1, epochs))
    wait = total = 0.0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        real = next(it)
        t1 = time.perf_counter()
        float(step(real)["d_loss"])
        t2 = time.perf_counter()
        if i >= warmup:
            wait, total = wait + t1 - t0, total + t2 - t0
    return steps * batch / total, wait / total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/isic-demo")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from common.datasets import scan
    from common.images import load_images

    index = scan(args.data, progress=False)
    images = load_images(index.records, args.resolution, progress=False)
    import tensorflow as tf

    common = (
        images,
        args.batch_size,
        args.steps,
        args.warmup,
        args.latent_dim,
        args.width,
        args.resolution,
    )
    runs = {
        "reference (GradientTape loop, numpy batches)": [],
        "dermsynth step, no DiffAugment/EMA": [],
        "dermsynth step, DiffAugment + EMA": [],
    }
    for _ in range(args.repeats):  # interleaved, so load drifts hit all variants alike
        runs["reference (GradientTape loop, numpy batches)"].append(reference(*common))
        runs["dermsynth step, no DiffAugment/EMA"].append(dermsynth(*common, (), 0.0))
        runs["dermsynth step, DiffAugment + EMA"].append(
            dermsynth(*common, ("color", "translation", "cutout"), 0.999)
        )
    best = {k: (max(r[0] for r in v), float(np.mean([r[1] for r in v]))) for k, v in runs.items()}
    ref = best["reference (GradientTape loop, numpy batches)"][0]
    print(
        f"\ntrain step at {args.resolution} px, batch {args.batch_size}, width {args.width}, "
        f"{len(images)} images, {args.steps} timed steps x {args.repeats} repeats "
        f"(best), TF {tf.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"{'variant':<48} {'images/s':>9} {'vs ref':>7} {'input wait':>11}")
    for name, (ips, wait) in best.items():
        print(f"{name:<48} {ips:>9.1f} {ips / ref:>7.2f} {wait:>10.1%}")


if __name__ == "__main__":
    main()
