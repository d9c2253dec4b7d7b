"""Fixtures of the validator tests: a random-weight Xception exported to ONNX at 71 px (once per
session, in a subprocess so TensorFlow stays out of the test process), real ISIC images split
into disjoint train / holdout / "other" folders, planted near-copies of training images, and
their features and pixels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "isic-sample"
DEMO = ROOT / "data" / "isic-demo"
SIZE = 71
PLANTED_SOURCES = 20


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """As the pipeline does by default (ValidateConfig.blas_threads = 1): multi-threaded
    OpenBLAS stalls (measured 40 s instead of 0.7 s for one C2ST) when the 2 cores are shared."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def xception_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xception") / f"xception{SIZE}_random.onnx"
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "export-xception",
            "--weights",
            "random",
            "--size",
            str(SIZE),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\n[xception export {SIZE}px random: {time.perf_counter() - start:.1f} s]")
    return out


@dataclass(frozen=True)
class Split:
    train: Path
    holdout: Path
    other: Path
    planted: Path
    planted_sources: dict  # planted file name -> training image path


@pytest.fixture(scope="session")
def split(tmp_path_factory) -> Split:
    """Disjoint real sets copied from isic-sample (401 images; isic-demo's 128 if absent),
    split by lesion where the metadata has lesion_id (else patient_id; else at random)."""
    from common.datasets import scan
    from tests.validator.planting import plant
    from validator.lesions import Groups, grouping_column, split_by_group

    source = SAMPLE if SAMPLE.is_dir() else DEMO
    records = list(scan(source, progress=False).records)
    n = len(records)
    groups = Groups.read([r.path for r in records])
    column = grouping_column(groups)
    keys = groups.column(column) if column else [None] * n
    sizes = [n // 2, 3 * n // 4 - n // 2, n - 3 * n // 4]
    parts = dict(
        zip(("train", "holdout", "other"), split_by_group(keys, sizes, np.random.default_rng(0)))
    )
    root = tmp_path_factory.mktemp("sets")
    seen: set[str] = set()
    for name, idx in parts.items():
        (root / name).mkdir()
        for i in idx:
            if records[i].sha256 in seen:  # isic-sample holds byte-identical duplicates
                continue
            seen.add(records[i].sha256)
            shutil.copy(records[i].path, root / name)
    sources = sorted((root / "train").iterdir())[:PLANTED_SOURCES]
    planted = plant(sources, root / "planted")
    return Split(root / "train", root / "holdout", root / "other", root / "planted", planted)


@dataclass
class Encoded:
    features: np.ndarray
    pixels: np.ndarray
    paths: list


@pytest.fixture(scope="session")
def encoded(split, xception_onnx, tmp_path_factory) -> dict[str, Encoded]:
    """Features (71 px random-weight Xception) and 64 px pixels of every set."""
    from common.datasets import scan
    from common.images import load_images
    from validator.features import FeatureCache, FeatureModel, extract

    model = FeatureModel(xception_onnx)
    cache = FeatureCache(tmp_path_factory.mktemp("cache"))
    out = {}
    for name in ("train", "holdout", "other", "planted"):
        records = scan(getattr(split, name), progress=False).records
        out[name] = Encoded(
            extract(model, records, cache=cache, progress=False).features,
            load_images(records, 64, progress=False),
            [str(r.path) for r in records],
        )
    return out


def make_inputs(enc, synthetic, *, holdout=True, holdout_count=None, **threshold_overrides):
    """CheckInputs with the train set as real and ``synthetic`` (names of sets) as synthetic;
    ``holdout_count``: only the first N held-out images."""
    from validator.checks import CheckInputs
    from validator.thresholds import load_thresholds

    syn = [enc[s] for s in synthetic]
    h = slice(None, holdout_count)
    return CheckInputs(
        real=enc["train"].features,
        real_pixels=enc["train"].pixels,
        real_paths=enc["train"].paths,
        synthetic=np.concatenate([s.features for s in syn]),
        synthetic_pixels=np.concatenate([s.pixels for s in syn]),
        synthetic_paths=sum((s.paths for s in syn), []),
        holdout=enc["holdout"].features[h] if holdout else None,
        holdout_pixels=enc["holdout"].pixels[h] if holdout else None,
        holdout_paths=enc["holdout"].paths[h] if holdout else None,
        thresholds=load_thresholds(None, threshold_overrides),
    )
