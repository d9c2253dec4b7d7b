"""Release bundle benchmark: time ``python -m validator release`` and ``verify`` on N images.

    .venv/bin/python bench/release_bench.py [--count 1000] [--resolution 64] [--keep DIR]

Set-up (not timed): a generator made directly in ONNX (latent 100 -> MatMul -> Tanh -> N x R x R
x 3; random weights: image content does not change the cost of a release) with a model.json
whose training data are the 96 benign images of data/isic-demo, served by the real gRPC server
on a free port and fetched with the real client (seed 0, N PNG images), then validated by the
real pipeline (``dcr`` only, a small ONNX feature model labelled random weights: the release
reads the report, not the features). Timed, each as a subprocess: ``release`` (with
``--allow-fail --allow-random-weights``), ``verify`` of the folder, ``verify`` of the .tar.gz.
Prints the exact commands and seconds. Bounded: one run of each.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "data" / "isic-demo"
LATENT = 100


def _training(dst: Path) -> Path:
    dst.mkdir(parents=True)
    with open(DEMO / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["benign_malignant"] == "benign"]
    for r in rows:
        shutil.copy(DEMO / f"{r['isic_id']}.jpg", dst)
    with open(dst / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


def _model(dst: Path, resolution: int, train: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from common.datasets import scan
    from common.hashing import sha256_file
    from common.manifest import ModelManifest, created_now

    side = resolution * resolution * 3
    weights = np.random.default_rng(0).normal(0, 0.15, (LATENT, side)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["latent", "w"], ["flat"]),
            helper.make_node("Tanh", ["flat"], ["act"]),
            helper.make_node("Reshape", ["act", "shape"], ["images"]),
        ],
        "bench_generator",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", LATENT])],
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["N", resolution, resolution, 3]
            )
        ],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([-1, resolution, resolution, 3], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    dst.mkdir(parents=True)
    onnx.save(model, dst / "model.onnx")
    index = scan(train, progress=False, benign_malignant="benign")
    ModelManifest(
        onnx_sha256=sha256_file(dst / "model.onnx"),
        latent_dim=LATENT,
        resolution=resolution,
        training_data={
            "fingerprint": index.fingerprint,
            "image_count": len(index.records),
            "layout": index.layout,
            "filters": {"benign_malignant": "benign", "diagnosis": None},
        },
        epochs=0,
        seed=0,
        ema=False,
        opset=17,
        parity_max_abs_diff=0.0,
        versions={"dermsynth": "bench"},
        created=created_now(),
    ).write(dst)
    return dst


def _fetch(model: Path, out: Path, count: int) -> None:
    from serving.client import fetch
    from serving.config import ServeConfig
    from serving.server import create_server

    server, port = create_server(
        ServeConfig(model=model, host="127.0.0.1", port=0, metrics_port=None, grace_seconds=0)
    )
    server.start()
    try:
        fetch(f"127.0.0.1:{port}", seed=0, count=count, out_dir=out, progress=False)
    finally:
        server.stop(0).wait(10)


def _validate(train: Path, synthetic: Path, model: Path, out: Path, work: Path) -> str:
    from tests.validator.validator_server import tiny_feature_model
    from validator.config import ValidateConfig
    from validator.pipeline import run_validation

    config = ValidateConfig(
        real=train,
        synthetic=synthetic,
        model_dir=model,
        features_model=tiny_feature_model(work / "features"),
        out=out,
        checks=("dcr",),
        benign_malignant="benign",
        cache=False,
        tsne=False,
        progress=False,
        allow_random_weights=True,
    )
    return run_validation(config).verdict.decision


def _timed(args: list[str]) -> float:
    print("$ " + " ".join(args), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        sys.exit(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="release-bench-"))
    try:
        start = time.perf_counter()
        train = _training(work / "train")
        model = _model(work / "model", args.resolution, train)
        _fetch(model, work / "synthetic", args.count)
        verdict = _validate(train, work / "synthetic", model, work / "report", work)
        print(
            f"set-up: {args.count} images at {args.resolution} px fetched and validated "
            f"({verdict}) in {time.perf_counter() - start:.1f} s (not timed below)"
        )
        py = sys.executable
        subprocess.run(
            [py, "-m", "validator", "keygen", "--out", str(work / "key")],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        release = _timed(
            [
                py,
                "-m",
                "validator",
                "release",
                "--report",
                str(work / "report"),
                "--synthetic",
                str(work / "synthetic"),
                "--model-dir",
                str(model),
                "--real",
                str(train),
                "--key",
                str(work / "key"),
                "--out",
                str(work / "bundles"),
                "--allow-fail",
                "--allow-random-weights",
            ]
        )
        (folder,) = [p for p in (work / "bundles").iterdir() if p.is_dir()]
        pub = str(work / "key.pub")
        verify_dir = _timed([py, "-m", "validator", "verify", str(folder), "--public-key", pub])
        verify_tar = _timed(
            [py, "-m", "validator", "verify", f"{folder}.tar.gz", "--public-key", pub]
        )
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        tar_size = Path(f"{folder}.tar.gz").stat().st_size
        print(
            f"\n{args.count} images, {args.resolution} px: bundle {size / 1e6:.1f} MB, "
            f"tar.gz {tar_size / 1e6:.1f} MB"
        )
        print(f"release (build folder + tar.gz, incl. process start): {release:.2f} s")
        print(f"verify folder:                                      {verify_dir:.2f} s")
        print(f"verify tar.gz (streamed, not extracted):            {verify_tar:.2f} s")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
