"""A validation run's features and pixels on disk (validator/rowfile.py): a RowFile reads as
the array it holds, every check and view gives the same result on RowFiles as on in-memory
arrays without ever reading a whole set, and a run's scratch folder goes when the run does."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from validator import checks as registry
from validator.checks import CheckInputs
from validator.rowfile import RowFile, Scratch, WholeRead
from validator.views import draw_views

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def array() -> np.ndarray:
    return np.random.default_rng(0).random((37, 5), dtype=np.float32)


def test_a_rowfile_reads_as_the_array_it_holds(array, tmp_path):
    rows = RowFile.from_array(array, tmp_path / "x", chunk=8)
    assert (len(rows), rows.shape, rows.dtype, rows.ndim) == (37, (37, 5), np.float32, 2)
    assert rows.nbytes == array.nbytes == (tmp_path / "x").stat().st_size
    picks = [
        slice(None),
        slice(3, 11),
        slice(-5, None),
        slice(30, 99),
        slice(20, 10),
        slice(1, 30, 4),
        np.array([5, 2, 2, 36, 0, 5]),  # any order, repeats
        np.array([-1, -37]),
        np.arange(37) % 3 == 0,  # a mask
        [4, 9],
        np.array([], dtype=np.int64),
    ]
    for key in picks:
        np.testing.assert_array_equal(rows[key], array[key], err_msg=str(key))
    np.testing.assert_array_equal(rows[7], array[7])
    np.testing.assert_array_equal(rows[-2], array[-2])
    np.testing.assert_array_equal(np.stack(list(rows)), array)


def test_a_rowfile_writes_by_row_slice_and_index_list(array, tmp_path):
    rows = RowFile.create(tmp_path / "y", 37, (5,), np.float32)
    np.testing.assert_array_equal(rows[:], np.zeros_like(array))  # created zero-filled
    rows[0:20] = array[0:20]
    rows[[36, 20, 25]] = array[[36, 20, 25]]
    rows[np.arange(21, 25)] = array[21:25]
    for i in range(26, 36):
        rows[i] = array[i]
    np.testing.assert_array_equal(rows[:], array)
    rows[[1, 3]] = 7.0  # a scalar reaches every row asked for
    assert (rows[1] == 7).all() and (rows[3] == 7).all() and (rows[2] == array[2]).all()


def test_a_rowfile_refuses_to_become_one_array_and_bad_indices(array, tmp_path):
    rows = RowFile.from_array(array, tmp_path / "z")
    with pytest.raises(WholeRead, match="read a chunk at a time"):
        np.asarray(rows)
    with pytest.raises(WholeRead):
        np.mean(rows, axis=0)
    for bad in (37, -38):
        with pytest.raises(IndexError):
            rows[bad]
    with pytest.raises(IndexError):
        rows[np.array([0, 37])]
    with pytest.raises(IndexError):
        rows[np.zeros((2, 2), np.int64)]
    with pytest.raises(IndexError):
        rows[np.ones(5, bool)]  # a mask of another length
    with pytest.raises(FileExistsError):
        RowFile.create(tmp_path / "z", 3, (5,), np.float32)
    (tmp_path / "short").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="expected 20"):
        RowFile(tmp_path / "short", 1, (5,), np.float32)
    rows.close()
    assert not (tmp_path / "z").exists()  # owned: removed on close


def _structured(rng, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    pick = rng.integers(0, len(centres), n)
    return (centres[pick] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


def _sets(seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Clustered features and smooth random pixels for real, holdout and synthetic sets, with
    two synthetic images copied from training images (so dcr flags something)."""
    rng = np.random.default_rng(seed)
    dim, side = 48, 16
    centres = rng.standard_normal((6, dim)) * 2
    out = {}
    for name, n in (("real", 150), ("holdout", 40), ("synthetic", 110)):
        feats = _structured(rng, n, dim, centres)
        base = rng.integers(40, 200, (n, 1, 1, 3))
        noise = rng.integers(-30, 30, (n, side, side, 3))
        out[name] = (feats, np.clip(base + noise, 0, 255).astype(np.uint8))
    for i, j in ((3, 10), (50, 77)):
        out["synthetic"][0][i] = out["real"][0][j]
        out["synthetic"][1][i] = out["real"][1][j]
    return out


def _inputs(sets, memory_mb: float = 1024) -> CheckInputs:
    paths = {n: [f"{n}/{i}.png" for i in range(len(sets[n][0]))] for n in sets}
    return CheckInputs(
        real=sets["real"][0],
        synthetic=sets["synthetic"][0],
        holdout=sets["holdout"][0],
        real_pixels=sets["real"][1],
        synthetic_pixels=sets["synthetic"][1],
        holdout_pixels=sets["holdout"][1],
        real_paths=paths["real"],
        synthetic_paths=paths["synthetic"],
        holdout_paths=paths["holdout"],
        memory_mb=memory_mb,
    )


def _on_disk(sets, folder: Path) -> dict[str, tuple[RowFile, RowFile]]:
    return {
        n: (RowFile.from_array(f, folder / f"{n}.f"), RowFile.from_array(p, folder / f"{n}.p"))
        for n, (f, p) in sets.items()
    }


def _same(a, b, where: str = "") -> None:
    """Equal results: floats within 1e-4 relative (BLAS may add a block's products in another
    order), everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k != "seconds":
                _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), where
    else:
        assert a == b, where


@pytest.mark.parametrize("memory_mb", [1024, 0.05])  # one block; many small ones
def test_every_check_gives_the_same_result_on_rowfiles(tmp_path, memory_mb):
    """The whole registry, in the pipeline's order, on in-memory arrays and on RowFiles (which
    raise if a stage asks for a whole set): the same results, none of them an error."""
    sets = _sets()
    in_memory, on_disk = _inputs(sets, memory_mb), _inputs(_on_disk(sets, tmp_path), memory_mb)
    for name in registry.names():
        want = registry.run_check(name, in_memory).to_dict()
        got = registry.run_check(name, on_disk).to_dict()
        assert want["error"] is None and got["error"] is None, (name, got["error"])
        _same(want, got, name)
    dcr = in_memory.memo("dcr", lambda: None)
    assert dcr.flagged[[3, 50]].all()  # the planted copies: the comparison is not vacuous


def test_views_draw_the_same_from_rowfiles(tmp_path):
    sets = _sets(2)
    disk = _on_disk(sets, tmp_path)
    want = draw_views(sets, tmp_path / "a", label="t", memory_mb=0.05, tsne_max_per_source=60)
    got = draw_views(disk, tmp_path / "b", label="t", memory_mb=0.05, tsne_max_per_source=60)
    assert want.samples == got.samples and want.samples["tsne_scatter"]["subsampled"]
    assert sorted(p.name for p in got.files.values()) == sorted(p.name for p in want.files.values())


_HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from validator.rowfile import Scratch
s = Scratch({parent!r})
s.rows("x.features", 4, (3,), "float32")
print(s.path, flush=True)
time.sleep(120)
"""


def test_a_scratch_folder_goes_with_its_run_and_a_dead_runs_is_cleared(tmp_path):
    with Scratch(tmp_path) as scratch:
        rows = scratch.rows("real.features", 3, (2,), np.float32)
        rows[:] = 1.0
        assert scratch.path.parent == tmp_path and scratch.path.name.startswith(".scratch-")
    assert not scratch.path.exists()
    with pytest.raises(RuntimeError), Scratch(tmp_path) as scratch:  # an error: removed too
        raise RuntimeError("stop")
    assert not scratch.path.exists()
    # another process's scratch: kept while it lives (its lock held), removed once it is killed
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.format(root=str(ROOT), parent=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        theirs = Path(holder.stdout.readline().strip())
        assert (theirs / "x.features").is_file()
        Scratch(tmp_path).close()
        assert theirs.is_dir()  # a live run's folder is never touched
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 10
        while theirs.exists() and time.monotonic() < deadline:
            Scratch(tmp_path).close()
        assert not theirs.exists()
    finally:
        holder.kill()
        holder.wait()
    assert not list(tmp_path.glob(".scratch-*"))


def _run_config(split, xception_onnx, tmp_path):
    import shutil

    from validator.config import ValidateConfig

    sets = {}
    for name, src, n in (("real", split.train, 12), ("synthetic", split.other, 8)):
        sets[name] = tmp_path / name
        sets[name].mkdir()
        for path in sorted(src.iterdir())[:n]:
            shutil.copy(path, sets[name])
    return ValidateConfig(
        real=sets["real"],
        synthetic=sets["synthetic"],
        features_model=xception_onnx,
        out=tmp_path / "report",
        cache_dir=tmp_path / "cache",
        checks=["fid", "prdc", "dcr"],
        tsne=False,
        progress=False,
    )


def test_a_validation_run_keeps_its_features_and_pixels_on_disk(split, xception_onnx, tmp_path):
    """While the checks run, the features and pixels are RowFiles in the report folder's
    scratch folder; it is gone after the run, and after a run stopped half-way."""
    from validator.pipeline import run_validation

    config = _run_config(split, xception_onnx, tmp_path)
    seen = {}

    def watch(stage, done, total, message):
        if stage == "checks" and not seen:
            seen.update({p.name: p.stat().st_size for p in config.out.glob(".scratch-*/*")})

    outcome = run_validation(config, on_progress=watch)
    dim, side = outcome.report["feature_model"]["feature_dim"], config.pixel_size
    assert seen["real.features"] == 12 * dim * 4 and seen["synthetic.features"] == 8 * dim * 4
    assert seen["real.pixels"] == 12 * side * side * 3
    assert not list(config.out.glob(".scratch-*"))

    def stop(stage, done, total, message):
        if stage == "checks":
            raise KeyboardInterrupt  # what a cancelled service run raises through

    with pytest.raises(KeyboardInterrupt):
        run_validation(config, on_progress=stop)
    assert not list(config.out.glob(".scratch-*"))


def test_a_run_that_would_fill_the_disk_is_refused_first(tmp_path, monkeypatch):
    """The RowFiles are sparse until written: the free space is checked before anything is.
    (The disk's size is the one thing faked here: a real full disk is not at hand.)"""
    import shutil
    from collections import namedtuple

    from common.errors import UserError

    usage = namedtuple("usage", "total used free")
    with Scratch(tmp_path) as scratch:
        scratch.require(10 * 2**20, "the features and pixels")  # this disk has 10 MiB
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
        with pytest.raises(UserError, match=r"10 MiB, but only 1 MiB are free; free some space"):
            scratch.require(10 * 2**20, "the features and pixels")
