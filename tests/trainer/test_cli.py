"""The real CLI in subprocesses: refused inputs, resume after SIGKILL, mirrored and multi-worker
strategies."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.trainer.helpers import PYTHON, REPO, isic_cli_folder

PY = str(PYTHON) if PYTHON.exists() else sys.executable
TINY = [
    "--resolution",
    "32",
    "--batch-size",
    "8",
    "--width",
    "8",
    "--latent-dim",
    "16",
    "--no-progress",
]


def cli(*args, timeout=120, env=None):
    return subprocess.run(
        [PY, "-m", "trainer", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isic_cli_folder(tmp_path_factory.mktemp("cli-data") / "isic", 16, 0, corrupt=False)


def test_help_has_examples():
    result = cli("train", "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--benign-malignant" in result.stdout
    assert "examples:" in cli("export", "--help").stdout


@pytest.mark.parametrize(
    "case", ["missing", "empty", "resolution", "env", "export", "run-under-file"]
)
def test_bad_inputs_exit_2_with_a_message(case, tmp_path, dataset):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "afile").write_text("not a folder")
    args, env, message = {
        "missing": (
            ["train", "--data", tmp_path / "nope", "--run", tmp_path / "r"],
            None,
            "does not exist",
        ),
        "empty": (["train", "--data", empty, "--run", tmp_path / "r"], None, "no usable images"),
        "resolution": (
            ["train", "--data", dataset, "--run", tmp_path / "r", "--resolution", "48"],
            None,
            "--resolution: 48 is not one of 32, 64, 128",
        ),
        "env": (
            ["train", "--data", dataset, "--run", tmp_path / "r"],
            {"DERMSYNTH_TRAIN_EPOCS": "3"},
            "unknown environment variable",
        ),
        "export": (["export", "--run", empty, "--out", tmp_path / "m"], None, "no config.json"),
        "run-under-file": (
            ["train", "--data", dataset, "--run", tmp_path / "afile" / "r", *TINY],
            None,
            "cannot create the run directory",
        ),
    }[case]
    result = cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()  # nothing half-made for refused input


@pytest.mark.slow
def test_resume_after_sigkill(dataset, tmp_path):
    run = tmp_path / "run"
    args = [
        PY,
        "-m",
        "trainer",
        "train",
        "--data",
        str(dataset),
        "--run",
        str(run),
        *TINY,
        "--epochs",
        "60",
        "--keep-checkpoints",
        "2",
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "epoch_0001").exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = max(int(p.name.split("_")[1]) for p in (run / "checkpoints").glob("epoch_*"))
    assert 1 <= done < 60, "the kill must land mid-run"
    args[args.index("--epochs") + 1] = str(done + 2)
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"epochs {done + 1}..{done + 2} done" in result.stdout
    assert (
        f"resumed from {run / 'checkpoints' / f'epoch_{done:04d}'}" in (run / "run.log").read_text()
    )
    with open(run / "metrics.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, done + 3))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == [f"epoch_{done + 1:04d}", f"epoch_{done + 2:04d}"]  # kept 2, no temp left


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from common.cli import run_cli
from trainer.cli import main
sys.exit(run_cli(main, sys.argv[1:], prog="trainer"))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(dataset, tmp_path):
    run = tmp_path / "mirrored"
    result = subprocess.run(
        [
            PY,
            "-c",
            MIRRORED,
            "train",
            "--data",
            str(dataset),
            "--run",
            str(run),
            *TINY,
            "--epochs",
            "1",
            "--strategy",
            "mirrored",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    log = (run / "run.log").read_text()
    assert "2 replica(s)" in log
    assert "input: 16 rows read by this process for 2 steps of 8 images" in log
    assert (run / "checkpoints" / "epoch_0001" / "state.json").is_file()
    assert (run / "samples" / "epoch_0001.png").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multiworker_strategy_with_two_local_workers(dataset, tmp_path):
    """Two processes on 127.0.0.1 (TF_CONFIG): the strategy is made before anything starts
    TensorFlow's runtime (collective ops are configured at startup); only the chief writes."""
    import json

    run = tmp_path / "multiworker"
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "trainer",
                "train",
                "--data",
                str(dataset),
                "--run",
                str(run),
                *TINY,
                "--epochs",
                "1",
                "--strategy",
                "multiworker",
                "--quality-every",
                "0",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
                ),
            },
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    log = (run / "run.log").read_text()
    assert "2 replica(s)" in log
    # each worker read only its half of every global batch: 2 steps x 8 images / 2 workers
    assert log.count("input: 8 rows read by this process for 2 steps of 8 images") == 2
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch_0001"]
    assert (run / "checkpoints" / "epoch_0001" / "checkpoint.index").is_file()
