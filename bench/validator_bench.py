"""Validator benchmark: Xception feature extraction through ONNX Runtime vs Keras predict (same
random-weight model, same batch of real images, 299 px), and exact nearest-neighbour search for
10,000 x 10,000 2048-d features (chunked BLAS products vs scikit-learn brute force vs a naive
per-query loop, extrapolated). Figures measured side by side in one run.

    .venv/bin/python bench/validator_bench.py [--size 299] [--batch 32] [--n 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def images(n: int, size: int) -> np.ndarray:
    from common.datasets import scan
    from common.images import load_images

    for folder in (ROOT.parent / "shared/data/isic-sample", ROOT / "data/isic-demo"):
        if folder.is_dir():
            return load_images(scan(folder, progress=False).records[:n], size, progress=False)
    raise SystemExit("no image folder found")


def bench_features(size: int, batch: int) -> list[tuple[str, str]]:
    from trainer.xception_export import export_xception, load_xception
    from validator.features import FeatureModel

    x = images(batch, size)
    with tempfile.TemporaryDirectory() as tmp:
        # as `python -m trainer export-xception` does: in a child process (pure-Python protobuf)
        t_export, _ = timed(lambda: export_xception("random", size, Path(tmp) / "x.onnx"))
        ort_model = FeatureModel(Path(tmp) / "x.onnx")
        model, _, _ = load_xception("random", size)  # the same seeded random weights
        ort_model(x[:2])  # warm-up
        model.predict(x[:2].astype(np.float32) / 127.5 - 1, verbose=0)
        t_ort, f_ort = timed(lambda: ort_model(x), 2)
        t_keras, f_keras = timed(
            lambda: model.predict(x.astype(np.float32) / 127.5 - 1, batch_size=batch, verbose=0), 2
        )
    diff = float(np.abs(f_ort - f_keras).max() / max(np.abs(f_keras).max(), 1e-30))
    return [
        ("feature model", f"Xception {size}px, random weights, batch {batch} real images"),
        ("export-xception, child process (s)", f"{t_export:.1f}"),
        ("ONNX Runtime (img/s)", f"{batch / t_ort:.1f}"),
        ("Keras predict (img/s)", f"{batch / t_keras:.1f}"),
        ("ONNX Runtime / Keras speed", f"{t_keras / t_ort:.2f}x"),
        ("max |ORT - Keras| / max |Keras|", f"{diff:.1e}"),
    ]


def bench_neighbours(n: int, dim: int = 2048, naive_queries: int = 200) -> list[tuple[str, str]]:
    from sklearn.neighbors import NearestNeighbors

    from validator.neighbours import nearest, unit_rows

    rng = np.random.default_rng(0)
    ref = np.abs(rng.normal(size=(n, dim))).astype(np.float32)
    query = np.abs(rng.normal(size=(n, dim))).astype(np.float32)
    t_ours, (dist, idx) = timed(lambda: nearest(query, ref, 2))
    t_sk, (_, sk_idx) = timed(
        lambda: (
            NearestNeighbors(n_neighbors=2, algorithm="brute", metric="cosine")
            .fit(ref)
            .kneighbors(query)
        )
    )
    r = unit_rows(ref)

    def naive():
        return np.array([np.argmin(1 - r @ (q / np.linalg.norm(q))) for q in query[:naive_queries]])

    t_naive, naive_idx = timed(naive)
    t_naive_all = t_naive * n / naive_queries
    agree = float(np.mean(naive_idx == idx[:naive_queries, 0]))
    agree_sk = float(np.mean(sk_idx[:, 0] == idx[:, 0]))
    return [
        (f"NN search {n} x {n}, {dim}-d, k=2", "exact cosine"),
        ("chunked BLAS (validator) (s)", f"{t_ours:.2f}"),
        ("sklearn brute cosine (s)", f"{t_sk:.2f}"),
        (f"naive per-query loop (s, from {naive_queries})", f"{t_naive_all:.1f}"),
        ("validator vs sklearn", f"{t_sk / t_ours:.2f}x"),
        ("validator vs naive", f"{t_naive_all / t_ours:.1f}x"),
        ("agreement (naive, sklearn)", f"{agree:.3f}, {agree_sk:.3f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    rows = bench_features(args.size, args.batch) + bench_neighbours(args.n)
    width = max(len(k) for k, _ in rows)
    print("\nvalidator benchmark (one run, same machine)")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
