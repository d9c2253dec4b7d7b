"""The validator's checks at scale: seconds per stage and peak RSS on random features.

``measure(n_synthetic, n_real, dim=2048, memory_mb=1024, checks=...)`` runs, in a child process
(so that its peak RSS is its own), the feature-space checks (dcr with its pixel space, nndr,
data_copying, holdout_share, prdc, fid, kid, c2st) and the views (PCA on all, t-SNE on the
stated subsample) on seeded random float32 features (random vectors are fine for timing) and
small random pixels, and returns {"seconds": {stage: s}, "peak_rss_mb": ..., ...}. CLI:

    python bench/validator_scale.py --synthetic 100000 --real 30000 [--memory-mb 1024]

Peak RSS is the child's own ``ru_maxrss`` (Linux: KiB, reported in MiB); the features alone are
(Ns + Nr + Nh) x dim x 4 bytes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEATURE_CHECKS = ("dcr", "nndr", "data_copying", "holdout_share", "prdc", "fid", "kid", "c2st")
PIXEL_SIDE = 16  # pixels per image side given to the checks (dcr's pixel space is 16 px)


def _child(n_synthetic, n_real, dim, memory_mb, checks, views, blas_threads, queue) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from validator import checks as registry
    from validator.checks import CheckInputs
    from validator.views import draw_views

    rng = np.random.default_rng(0)
    n_hold = max(10, n_real // 10)
    t0 = time.perf_counter()
    feats = {
        name: rng.random((n, dim), dtype=np.float32)
        for name, n in (("real", n_real), ("holdout", n_hold), ("synthetic", n_synthetic))
    }
    pixels = {
        name: rng.integers(0, 256, (len(f), PIXEL_SIDE, PIXEL_SIDE, 3), dtype=np.uint8)
        for name, f in feats.items()
    }
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
    errors = {}
    with threadpool_limits(blas_threads or None):
        for name in checks:
            t = time.perf_counter()
            result = registry.run_check(name, inputs)
            seconds[name] = time.perf_counter() - t
            print(f"validator_scale: {name} {seconds[name]:.1f} s", file=sys.stderr, flush=True)
            if result.error:
                errors[name] = result.error
        if views:
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                draw_views(
                    {n: (feats[n], pixels[n]) for n in feats},
                    Path(tmp),
                    label="random features",
                    memory_mb=memory_mb,
                )
            seconds["views"] = time.perf_counter() - t
            print(f"validator_scale: views {seconds['views']:.1f} s", file=sys.stderr, flush=True)
    queue.put(
        {
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "rss_after_data_mb": round(rss_data),
            "errors": errors,
            # the child's own peak (RUSAGE_CHILDREN would keep an earlier child's maximum)
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    )


def measure(
    n_synthetic: int,
    n_real: int,
    dim: int = 2048,
    memory_mb: int = 1024,
    checks: tuple[str, ...] = FEATURE_CHECKS,
    views: bool = True,
    blas_threads: int = 1,
) -> dict:
    """Run the checks in a fresh child process; seconds per stage and the child's peak RSS."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (n_synthetic, n_real, dim, memory_mb, tuple(checks), views, blas_threads, queue)
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
    parser.add_argument("--checks", default=",".join(FEATURE_CHECKS))
    parser.add_argument("--no-views", action="store_true")
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
            ),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
