"""The validator's checks at scale: seconds per stage and peak RSS on random features.

``measure(n_synthetic, n_real, dim=2048, memory_mb=1024, checks=...)`` runs, in a child process
(so that its peak RSS is its own), every check (the feature-space ones: dcr with its pixel
space, nndr, data_copying, holdout_share, prdc, fid, kid, c2st; the weight-free ones on pixels:
colour, pixel_c2st, swd) and the views (PCA on all, t-SNE on the stated subsample) on seeded
random float32 features (random vectors are fine for timing) and random pixels of
``pixel_side`` (16) px, held as a validation run holds them (RowFiles on disk, read a chunk at a
time: validator/rowfile.py), and returns {"seconds": {stage: s}, "peak_rss_mb": ..., ...}. CLI:

    python bench/validator_scale.py --synthetic 100000 --real 30000 [--memory-mb 1024]

Peak RSS is the child's own (``ru_maxrss`` before the stages, Linux: KiB, reported in MiB; then
the largest stage peak, as resetting the peak for a stage resets ``ru_maxrss``); the features
alone are (Ns + Nr + Nh) x dim x 4 bytes. Per stage (Linux), the peak is reset before the stage
(``/proc/self/clear_refs`` 5) and read after it (``VmHWM``): ``stage_peak_mb`` is the stage's own
peak RSS, ``stage_working_mb`` that peak minus the RSS before the stage (the inputs, held
throughout): the working memory the ``--memory-mb`` rule bounds (validator/budget.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURE_CHECKS = ("dcr", "nndr", "data_copying", "holdout_share", "prdc", "fid", "kid", "c2st")
WEIGHT_FREE_CHECKS = ("colour", "pixel_c2st", "swd")  # pixels only
ALL_CHECKS = FEATURE_CHECKS + WEIGHT_FREE_CHECKS
PIXEL_SIDE = 16  # pixels per image side given to the checks (dcr's pixel space is 16 px)


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: reset VmHWM to VmRSS
        return True
    except OSError:
        return False


class _Stage:
    """Seconds, peak RSS and working memory (peak minus the RSS before) of one stage."""

    def __init__(self, seconds: dict, peaks: dict, working: dict):
        self.seconds, self.peaks, self.working = seconds, peaks, working

    def run(self, name: str, fn) -> None:
        import gc

        gc.collect()
        reset = _reset_peak()
        before = _status_mb("VmRSS")
        t = time.perf_counter()
        fn()
        self.seconds[name] = time.perf_counter() - t
        peak = _status_mb("VmHWM") if reset else None
        if peak is not None and before is not None:
            self.peaks[name] = round(peak)
            self.working[name] = round(peak - before)
        print(
            f"validator_scale: {name} {self.seconds[name]:.1f} s, peak {self.peaks.get(name)} MB, "
            f"working {self.working.get(name)} MB",
            file=sys.stderr,
            flush=True,
        )


def _child(
    n_synthetic, n_real, dim, memory_mb, checks, views, blas_threads, pixel_side, queue
) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from validator import checks as registry
    from validator.checks import CheckInputs
    from validator.views import draw_views

    for name in checks:  # imported before any stage: a stage's working memory is its arrays
        importlib.import_module(f"validator.checks.{name}")
    if views:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
        import sklearn.manifold  # noqa: F401
    from validator.rowfile import Scratch

    rng = np.random.default_rng(0)
    n_hold = max(10, n_real // 10)
    t0 = time.perf_counter()
    # as a validation run holds them (validator/pipeline.py): RowFiles in a scratch folder,
    # written a chunk at a time, read a chunk at a time by every stage
    scratch_parent = tempfile.TemporaryDirectory(prefix="validator-scale-")
    scratch = Scratch(scratch_parent.name)
    feats, pixels = {}, {}
    for name, n in (("real", n_real), ("holdout", n_hold), ("synthetic", n_synthetic)):
        feats[name] = scratch.rows(f"{name}.features", n, (dim,), np.float32)
        pixels[name] = scratch.rows(f"{name}.pixels", n, (pixel_side, pixel_side, 3), np.uint8)
        for start in range(0, n, 4096):
            m = min(4096, n - start)
            feats[name][start : start + m] = rng.random((m, dim), dtype=np.float32)
            pixels[name][start : start + m] = rng.integers(
                0, 256, (m, pixel_side, pixel_side, 3), dtype=np.uint8
            )
    paths = {name: [f"{name}/{i}.png" for i in range(len(f))] for name, f in feats.items()}
    seconds = {"make_data": time.perf_counter() - t0}
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    inputs = CheckInputs(
        real=feats["real"],
        synthetic=feats["synthetic"],
        holdout=feats["holdout"],
        real_pixels=pixels["real"],
        synthetic_pixels=pixels["synthetic"],
        holdout_pixels=pixels["holdout"],
        real_paths=paths["real"],
        synthetic_paths=paths["synthetic"],
        holdout_paths=paths["holdout"],
        memory_mb=memory_mb,
    )
    errors, peaks, working, views_info = {}, {}, {}, {}
    stage = _Stage(seconds, peaks, working)

    def check(name):
        result = registry.run_check(name, inputs)
        if result.error:
            errors[name] = result.error

    def draw():
        with tempfile.TemporaryDirectory() as tmp:
            views_info["samples"] = draw_views(
                {n: (feats[n], pixels[n]) for n in feats},
                Path(tmp),
                label="random features",
                memory_mb=memory_mb,
            ).samples

    with threadpool_limits(blas_threads or None):
        for name in checks:
            stage.run(name, lambda name=name: check(name))
        if views:
            stage.run("views", draw)
    queue.put(
        {
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "rss_after_data_mb": round(rss_data),
            "errors": errors,
            "stage_peak_mb": peaks,
            "stage_working_mb": working,
            "view_samples": views_info.get("samples", {}),
            "inputs": "RowFiles on disk (validator/rowfile.py), as a validation run holds them",
            # the child's own peak (RUSAGE_CHILDREN would keep an earlier child's maximum)
            # resetting VmHWM resets ru_maxrss too: the whole run's peak is the largest of the
            # stages' peaks and of the peak before the first stage
            "peak_rss_mb": round(max([rss_data, *peaks.values()])),
        }
    )
    scratch.close()
    scratch_parent.cleanup()


def measure(
    n_synthetic: int,
    n_real: int,
    dim: int = 2048,
    memory_mb: int = 1024,
    checks: tuple[str, ...] = ALL_CHECKS,
    views: bool = True,
    blas_threads: int = 1,
    pixel_side: int = PIXEL_SIDE,
) -> dict:
    """Run the checks in a fresh child process; seconds per stage and the child's peak RSS."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (
        n_synthetic,
        n_real,
        dim,
        memory_mb,
        tuple(checks),
        views,
        blas_threads,
        pixel_side,
        queue,
    )
    proc = ctx.Process(target=_child, args=args)
    start = time.perf_counter()
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"validator_scale child exited with {proc.exitcode}")
    n_hold = max(10, n_real // 10)
    return {
        "synthetic": n_synthetic,
        "real": n_real,
        "holdout": n_hold,
        "dim": dim,
        "memory_mb": memory_mb,
        "blas_threads": blas_threads,
        "pixel_side": pixel_side,
        "pixels_mb": round((n_synthetic + n_real + n_hold) * pixel_side**2 * 3 / 2**20),
        "features_mb": round((n_synthetic + n_real + n_hold) * dim * 4 / 2**20),
        **result,
        "total_seconds": round(time.perf_counter() - start, 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--blas-threads", type=int, default=1, help="0: the library default")
    parser.add_argument("--checks", default=",".join(ALL_CHECKS))
    parser.add_argument("--no-views", action="store_true")
    parser.add_argument("--pixel-side", type=int, default=PIXEL_SIDE, help="px per image side")
    args = parser.parse_args(argv)
    checks = tuple(c for c in args.checks.split(",") if c)
    print(
        json.dumps(
            measure(
                args.synthetic,
                args.real,
                args.dim,
                args.memory_mb,
                checks,
                not args.no_views,
                args.blas_threads,
                args.pixel_side,
            ),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
