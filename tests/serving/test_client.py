"""The fetch client end to end: files and manifest, resume, refusal of a mismatched folder,
server errors keeping what was written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.cli import run_cli
from serving import client
from serving.client import FolderMismatch, fetch, manifest_indices, missing_ranges


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def run_client(*args: str) -> int:
    return run_cli(client.main, ["--no-progress", *args], prog="serving.client")


def test_cli_writes_pngs_and_manifest(make_server, tiny_model_dir, tmp_path):
    _, target = make_server()
    out = tmp_path / "seed7"
    assert (
        run_client(
            "--target",
            target,
            "--seed",
            "7",
            "--count",
            "12",
            "--start-index",
            "5",
            "--batch-size",
            "5",
            "--out",
            str(out),
        )
        == 0
    )
    assert names(out) == [f"{i:08d}.png" for i in range(5, 17)]
    image = np.asarray(Image.open(out / "00000005.png"))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    manifest = json.loads((out / "manifest.json").read_text())
    model = json.loads((tiny_model_dir / "model.json").read_text())
    assert manifest["seed"] == 7 and manifest_indices(manifest) == list(range(5, 17))
    assert manifest["complete"] is True
    assert manifest["model_sha256"] == model["onnx_sha256"]
    assert manifest["model"]["latent_dim"] == 16
    assert not list(out.glob(".*tmp*"))


def test_resume_fetches_only_what_is_missing(make_server, tmp_path):
    srv, target = make_server()
    whole = fetch(target, seed=3, count=60, out_dir=tmp_path / "whole", progress=False)
    assert (whole.written, whole.skipped) == (60, 0)

    part = tmp_path / "part"
    first = fetch(target, seed=3, count=25, out_dir=part, progress=False)
    assert first.written == 25
    for i in (3, 4, 10):  # holes, as if those writes had been lost
        (part / f"{i:08d}.png").unlink()
    generated_before = srv.metrics.registry.get_sample_value(
        "dermsynth_images_generated_total", {"encoding": "png"}
    )
    second = fetch(target, seed=3, count=60, out_dir=part, batch_size=7, progress=False)
    assert (second.written, second.skipped) == (38, 22)
    generated = (
        srv.metrics.registry.get_sample_value(
            "dermsynth_images_generated_total", {"encoding": "png"}
        )
        - generated_before
    )
    assert generated == 38  # the server was asked only for the missing images
    assert second.indices == tuple(range(60))
    for name in names(tmp_path / "whole"):
        assert (part / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    again = fetch(target, seed=3, count=60, out_dir=part, progress=False)
    assert (again.written, again.skipped) == (0, 60)


def test_interrupted_run_keeps_its_images_and_resumes(make_server, tmp_path):
    _, target = make_server(inference_batch=4)
    out = tmp_path / "out"
    code = run_client(
        "--target",
        target,
        "--seed",
        "1",
        "--count",
        "3000",
        "--batch-size",
        "4",
        "--timeout",
        "0.2",
        "--out",
        str(out),
    )
    assert code == 1  # DEADLINE_EXCEEDED: a server-side failure, not a usage error
    kept = names(out)
    assert 0 < len(kept) < 3000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest_indices(manifest) == list(range(len(kept))) and not manifest["complete"]
    assert run_client("--target", target, "--seed", "1", "--count", "3000", "--out", str(out)) == 0
    assert len(names(out)) == 3000


def test_refuses_a_folder_of_another_seed_or_model(make_server, tmp_path, capsys):
    _, target = make_server()
    out = tmp_path / "out"
    fetch(target, seed=1, count=3, out_dir=out, progress=False)
    with pytest.raises(FolderMismatch, match="seed 1, not 2"):
        fetch(target, seed=2, count=3, out_dir=out, progress=False)
    assert run_client("--target", target, "--seed", "2", "--count", "3", "--out", str(out)) == 2
    assert "seed 1, not 2" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["model_sha256"] = "0" * 64  # as if fetched from another model
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert run_client("--target", target, "--seed", "1", "--count", "5", "--out", str(out)) == 2
    assert "another folder" in capsys.readouterr().err
    assert len(names(out)) == 3  # nothing was added or removed
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "00000000.png").write_bytes(b"x")
    with pytest.raises(FolderMismatch, match="no manifest.json"):
        fetch(target, seed=1, count=1, out_dir=stray, progress=False)


def test_server_errors_are_reported(make_server, tmp_path, capsys):
    _, target = make_server(token="t0k")
    assert (
        run_client("--target", target, "--seed", "1", "--count", "2", "--out", str(tmp_path / "o"))
        == 1
    )
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert (
        run_client(
            "--target",
            target,
            "--seed",
            "1",
            "--count",
            "2",
            "--token",
            "t0k",
            "--out",
            str(tmp_path / "o"),
        )
        == 0
    )


def test_out_that_cannot_be_a_folder_exits_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "sub"):  # refused before any connection is made
        assert (
            run_client("--target", "localhost:1", "--seed", "1", "--count", "2", "--out", str(out))
            == 2
        )
        assert "cannot create the output folder" in capsys.readouterr().err


def test_missing_ranges():
    assert list(missing_ranges(10, 10, {12, 13, 17}, 100)) == [(10, 2), (14, 3), (18, 2)]
    assert list(missing_ranges(0, 5, set(), 2)) == [(0, 2), (2, 2), (4, 1)]
    assert list(missing_ranges(0, 3, {0, 1, 2}, 2)) == []


def test_kill_9_leaves_a_manifest_at_most_one_batch_behind(make_server, tmp_path):
    """A client process killed with SIGKILL mid-fetch: its manifest lists every image on disk
    but at most the batch in flight, and a re-run completes the set."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, target = make_server(inference_batch=4)
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "serving.client",
        "--no-progress",
        "--target",
        target,
        "--seed",
        "5",
        "--count",
        "100000",
        "--batch-size",
        "8",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        args,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.is_dir() or len(names(out)) < 80):
            time.sleep(0.05)
        assert len(names(out)) >= 80, "the client wrote too few images to test"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    on_disk = {int(n[:8]) for n in names(out)}
    listed = set(manifest_indices(json.loads((out / "manifest.json").read_text())))
    assert listed <= on_disk
    assert len(on_disk - listed) <= 8  # the batch whose files were renamed, manifest not yet
    done = fetch(target, seed=5, count=len(on_disk) + 20, out_dir=out, progress=False)
    assert done.written == 20 and not list(out.glob(".*.tmp-*"))


def test_foreign_folder_is_refused_before_anything_is_deleted(make_server, tmp_path):
    """Nothing in a folder that is not ours is touched, temporary-looking names included, and
    odd entries (a folder named like a temporary file) do not crash the client."""
    _, target = make_server()
    out = tmp_path / "out"
    fetch(target, seed=1, count=3, out_dir=out, progress=False)
    (out / ".00000009.png.tmp-123").write_bytes(b"half")
    (out / ".cache.tmp-1").mkdir()
    (out / ".notes.tmp-7").write_text("someone else's")
    with pytest.raises(FolderMismatch):
        fetch(target, seed=2, count=3, out_dir=out, progress=False)
    assert (out / ".00000009.png.tmp-123").exists()  # refused folder: nothing deleted
    again = fetch(target, seed=1, count=4, out_dir=out, progress=False)
    assert again.written == 1
    assert not (out / ".00000009.png.tmp-123").exists()  # our stale temporary: removed
    assert (out / ".cache.tmp-1").is_dir() and (out / ".notes.tmp-7").exists()
