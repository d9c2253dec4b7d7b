"""Training-step throughput against a plain loop and against the machine's peak, in one run.

Variants, each built once, then timed in alternating rounds (so load drifts hit all alike; the
best round counts), fed by trainer.pipeline.ImagePipeline (tf.data) from the bundled images:
  * reference: trainer.model's networks and Adam settings in a plain tf.function
    GradientTape loop over NumPy batches (no DiffAugment, EMA, R1; no tf.data);
  * dermsynth plain: DCGAN.step with DiffAugment, EMA and R1 off (the reference's work);
  * dermsynth float32, no XLA: the full step (DiffAugment + EMA + lazy R1 at the trainer's
    defaults) as the trainer ran it before --jit-compile/--precision (the previous default,
    "vs prev");
  * the same with XLA (--jit-compile on), with mixed_bfloat16 (--precision), and both.
The row marked * is what `--jit-compile auto --precision auto` (the trainer's defaults) picks
on this machine (trainer/throughput.py).

Utilisation: model FLOPs per image, counted from the layer shapes (convolutions and dense
layers; batch norm, activations, DiffAugment, R1, Adam and EMA not counted), backward = 2x
forward (input and weight gradients), 1x where only input gradients are needed. Per real image
the D update runs G forward (1 G) and D forward + backward on 2 images (6 D); the G update
runs G forward + backward (3 G) and D forward + input gradients (2 D): 8 D + 4 G.
Model FLOP/s = that x images/s; utilisation = model FLOP/s / peak, the peak being the best
of a 4096^2 matmul (tf.linalg.matmul, 2n^3 FLOPs) timed in this run, in float32 (bfloat16
rows: in bfloat16). The generation server's inference is measured the same way: the float32
generator exported to ONNX (trainer.export.to_onnx), ONNX Runtime on the server's fixed batch
(16) with all cores, G forward FLOPs x images/s / the float32 peak.
Where the rest of the step goes: each part of the step timed alone (its own tf.function,
no XLA) in the default precision.

Usage: .venv/bin/python bench/train_bench.py [--resolution 64 --batch-size 64 --width 64]
(default: the trainer's defaults; the demo trains at --resolution 32 --batch-size 16)
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

FULL = {"augmentations": ("color", "translation", "cutout"), "ema_decay": 0.999, "r1_gamma": 0.1}


def forward_flops(model) -> int:
    """Multiply-adds x 2 of the convolutions and dense layers, per image."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):  # each input pixel scatters a kernel
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * cin * kh * kw * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * cout * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total


def peak_flops(dtype: str, n: int = 4096, rounds: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.stateless_normal([n, n], seed=[1, 2], dtype=dtype)
    b = tf.random.stateless_normal([n, n], seed=[3, 4], dtype=dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b)[0, :1], tf.float32)))
    float(matmul())
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        float(matmul())
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def reference_step(args):
    import keras
    import tensorflow as tf

    from trainer.model import build_discriminator, build_generator

    g = build_generator(args.resolution, args.latent_dim, width=args.width, seed=0)
    d = build_discriminator(args.resolution, width=args.width, seed=0)
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(real):
        n = tf.shape(real)[0]
        z = tf.random.normal([n, args.latent_dim])
        with tf.GradientTape() as tape:
            logits = d(tf.concat([real, g(z, training=True)], 0), training=True)
            d_loss = bce(tf.concat([tf.ones([n, 1]), tf.zeros([n, 1])], 0), logits)
        d_opt.apply_gradients(
            zip(tape.gradient(d_loss, d.trainable_variables), d.trainable_variables)
        )
        z = tf.random.normal([n, args.latent_dim])
        with tf.GradientTape() as tape:
            g_loss = bce(tf.ones([n, 1]), d(g(z, training=True), training=True))
        g_opt.apply_gradients(
            zip(tape.gradient(g_loss, g.trainable_variables), g.trainable_variables)
        )
        return d_loss

    return lambda real: float(step(real))


def dermsynth_gan(args, work: dict, jit: bool, precision: str):
    from trainer.gan import DCGAN

    return DCGAN(
        resolution=args.resolution,
        latent_dim=args.latent_dim,
        width=args.width,
        seed=0,
        r1_interval=4,
        jit_compile=jit,
        precision=precision,
        **work,
    )


def dermsynth_step(gan):
    return lambda real: float(gan.step(real, regularize=gan.r1_due(gan.step_count))["d_loss"])


def run_rounds(variants: dict, feeds: dict, args) -> dict[str, list[tuple[float, float]]]:
    """Warm up each variant, then ``args.repeats`` rounds of ``args.steps`` timed steps each,
    variants alternating; per round (images/s, share of time waiting for the input)."""
    for name, step in variants.items():
        for _ in range(args.warmup):
            step(next(feeds[name]))
    out: dict[str, list] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in variants.items():
            wait = total = 0.0
            for _ in range(args.steps):
                t0 = time.perf_counter()
                real = next(feeds[name])
                t1 = time.perf_counter()
                step(real)
                t2 = time.perf_counter()
                wait, total = wait + t1 - t0, total + t2 - t0
            out[name].append((args.steps * args.batch_size / total, wait / total))
    return out


def breakdown(gan, real, repeats: int = 5) -> dict[str, float]:
    """Milliseconds of each part of one training step, each timed alone (no XLA)."""
    import tensorflow as tf

    from trainer.augment import diff_augment

    g, d, n = gan.generator, gan.discriminator, real.shape[0]
    z = tf.random.stateless_normal([n, gan.latent_dim], seed=[5, 6])
    seed = tf.constant([0, 9], tf.int64)
    two = tf.concat([real, real], 0)

    def d_update():  # gradients of the D loss w.r.t. D's weights, on 2n images
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(d(two, training=True))
        return tape.gradient(loss, d.trainable_variables)

    def g_update():  # G forward + backward through D, on n images
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(d(g(z, training=True), training=True))
        return tape.gradient(loss, g.trainable_variables)

    zeros = [tf.zeros_like(v) for v in d.trainable_variables + g.trainable_variables]
    k = len(d.trainable_variables)

    def adam():
        gan.d_optimizer.apply_gradients(zip(zeros[:k], d.trainable_variables))
        gan.g_optimizer.apply_gradients(zip(zeros[k:], g.trainable_variables))
        return 0

    parts = {
        "DiffAugment (3 calls: real, fake, fake)": lambda: [
            diff_augment(real, gan.augmentations, seed + i) for i in range(3)
        ],
        "G forward (the D update's fakes)": lambda: g(z, training=True),
        "D forward + backward, 2 x batch (D update)": d_update,
        "G forward + backward through D (G update)": g_update,
        "Adam updates, D and G": adam,
        "EMA update": lambda: gan._update_ema() or 0,
    }
    fns = {name: tf.function(fn) for name, fn in parts.items()}
    fns["whole step (as trained)"] = lambda: gan.step(real)["d_loss"]
    fetch = lambda out: tf.nest.map_structure(lambda t: np.asarray(t), out)  # noqa: E731
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fetch(fn())
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fetch(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: 1000 * t for name, t in best.items()}


def serving_inference(args, seconds: float = 3.0) -> float:
    """Images/s of the exported float32 generator in ONNX Runtime, the server's batch (16)."""
    import onnxruntime as ort

    from trainer.export import to_onnx
    from trainer.model import build_generator

    generator = build_generator(args.resolution, args.latent_dim, width=args.width, seed=0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    proto = to_onnx(generator, args.latent_dim)
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    z = np.random.default_rng(0).standard_normal((16, args.latent_dim)).astype(np.float32)
    session.run(None, {"latent": z})
    best = 0.0
    for _ in range(3):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            session.run(None, {"latent": z})
            count += 16
        best = max(best, count / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/isic-demo")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="rounds (variants alternate)")
    parser.add_argument("--no-xla", action="store_true", help="leave out the XLA variants")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from common.datasets import scan
    from common.images import load_images
    from trainer import throughput
    from trainer.pipeline import ImagePipeline

    tf.config.experimental.enable_op_determinism()  # as the trainer's --deterministic default
    keras.utils.set_random_seed(0)  # the reference loop's stateful random ops need a seed
    images = load_images(scan(args.data, progress=False).records, args.resolution, progress=False)
    auto = throughput.resolve("auto", "auto")
    native, why = throughput.native_bf16()
    peak32, peak16 = peak_flops("float32"), peak_flops("bfloat16")

    gans = {
        "dermsynth plain (no DiffAugment/EMA/R1), float32": dermsynth_gan(
            args, {}, False, "float32"
        )
    }
    old_default = "dermsynth float32, no XLA (the previous default)"
    combos = [
        (False, "float32"),
        (True, "float32"),
        (False, "mixed_bfloat16"),
        (True, "mixed_bfloat16"),
    ]
    for jit, precision in combos:
        if jit and args.no_xla:
            continue
        name = (
            old_default
            if (jit, precision) == (False, "float32")
            else (f"dermsynth {precision}{', XLA' if jit else ', no XLA'}")
        )
        if (jit, precision) == (auto.jit_compile, auto.precision):
            name += " *"
        gans[name] = dermsynth_gan(args, FULL, jit, precision)
    variants = {"reference (GradientTape loop, numpy batches)": reference_step(args)}
    variants.update({name: dermsynth_step(gan) for name, gan in gans.items()})
    pipeline = ImagePipeline(images, args.batch_size, seed=0)
    epochs = -(-(args.warmup + args.steps * args.repeats) // pipeline.steps_per_epoch) + 1
    unit = images.astype(np.float32) / 127.5 - 1.0
    numpy_batches = [
        unit[i : i + args.batch_size]
        for i in range(0, len(unit) - args.batch_size + 1, args.batch_size)
    ]
    feeds = {name: iter(pipeline.batches(1, epochs)) for name in gans}
    feeds["reference (GradientTape loop, numpy batches)"] = (
        numpy_batches[i % len(numpy_batches)] for i in range(10**9)
    )
    rounds = run_rounds(variants, feeds, args)

    probe = (
        gans[next(n for n in gans if n.endswith("*"))]
        if any(n.endswith("*") for n in gans)
        else gans[old_default]
    )
    g_f, d_f = forward_flops(probe.generator), forward_flops(probe.discriminator)
    step_flops = 8 * d_f + 4 * g_f
    print(
        f"\ntrain step at {args.resolution} px, batch {args.batch_size}, width {args.width}, "
        f"{len(images)} images; {args.steps} timed steps x {args.repeats} alternating rounds "
        f"(best round), TF {tf.__version__}, {os.cpu_count()} CPUs; op determinism on"
    )
    print(
        f"peak (4096^2 matmul, this run): float32 {peak32 / 1e9:.0f} GFLOP/s, bfloat16 "
        f"{peak16 / 1e9:.0f} GFLOP/s; native bfloat16: {'yes' if native else 'no'} ({why})"
    )
    print(
        f"model FLOPs per image: G forward {g_f / 1e6:.1f} M, D forward {d_f / 1e6:.1f} M; "
        f"per trained image 8 D + 4 G = {step_flops / 1e6:.0f} M"
    )
    print(f"auto picks: {auto.reason}  (* below)\n")
    old = max(r[0] for r in rounds[old_default])
    ref = max(r[0] for r in rounds["reference (GradientTape loop, numpy batches)"])
    print(
        f"{'variant':<52} {'img/s':>7} {'rounds':>13} {'vs ref':>7} {'vs prev':>7} {'wait':>5} "
        f"{'GFLOP/s':>8} {'util':>6}"
    )
    for name, rs in rounds.items():
        ips = max(r[0] for r in rs)
        wait = float(np.mean([r[1] for r in rs]))
        shown = "/".join(f"{r[0]:.0f}" for r in rs)
        gflops = step_flops * ips / 1e9
        peak = peak16 if "bfloat16" in name else peak32
        print(
            f"{name:<52} {ips:>7.1f} {shown:>13} {ips / ref:>7.2f} {ips / old:>7.2f} "
            f"{wait:>5.1%} {gflops:>8.1f} {gflops * 1e9 / peak:>6.1%}"
        )
    ort_ips = serving_inference(args)
    print(
        f"{'serving: ONNX Runtime, float32 generator, batch 16':<52} {ort_ips:>7.1f} "
        f"{'':>13} {'':>7} {'':>7} {'':>5} {g_f * ort_ips / 1e9:>8.1f} "
        f"{g_f * ort_ips / peak32:>6.1%}"
    )
    print("(util: model FLOP/s / the matmul peak of the row's compute type, bfloat16 or float32)\n")
    parts = breakdown(probe, next(feeds[old_default]))
    whole = parts.pop("whole step (as trained)")
    print(f"where a step's time goes ({probe.precision}, no XLA, each part timed alone; ms):")
    flops = {
        "G forward (the D update's fakes)": g_f * args.batch_size,
        "D forward + backward, 2 x batch (D update)": 3 * d_f * 2 * args.batch_size,
        "G forward + backward through D (G update)": (3 * g_f + 2 * d_f) * args.batch_size,
    }
    for name, ms in parts.items():
        rate = f"{flops[name] / ms / 1e6:7.1f} GFLOP/s" if name in flops else ""
        print(f"  {name:<46} {ms:7.1f} {ms / whole:6.1%}  {rate}")
    print(
        f"  {'sum of the parts':<46} {sum(parts.values()):7.1f} {sum(parts.values()) / whole:6.1%}"
    )
    print(f"  {'whole step, measured (without R1)':<46} {whole:7.1f}")


if __name__ == "__main__":
    main()
