"""Reproducible training across processes: the same command twice gives bit-identical weights,
and a run resumed in a new process equals an uninterrupted one (trainer/determinism.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.helpers import PYTHON, REPO, isic_cli_folder

PY = str(PYTHON) if PYTHON.exists() else sys.executable
ARGS = [
    "--resolution",
    "32",
    "--batch-size",
    "8",
    "--width",
    "8",
    "--latent-dim",
    "16",
    "--no-progress",
    "--no-tensorboard",
    "--keep-checkpoints",
    "3",
    "--seed",
    "3",
    "--quality-every",
    "1",
    "--quality-count",
    "8",
]


def train(data: Path, run: Path, epochs: int, env: dict | None = None) -> None:
    result = subprocess.run(
        [
            PY,
            "-m",
            "trainer",
            "train",
            "--data",
            str(data),
            "--run",
            str(run),
            *ARGS,
            "--epochs",
            str(epochs),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    assert result.returncode == 0, result.stderr


def arrays(checkpoint: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint, by name: the three networks' weights and both optimizers'
    state (trainer.checkpoints)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint / "checkpoint"))
    return {
        k: np.asarray(reader.get_tensor(k))
        for k in reader.get_variable_to_shape_map()
        if k.endswith("/VARIABLE_VALUE")
    }


def assert_identical(a: Path, b: Path) -> None:
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y) and len(x) > 40
    groups = {k.split("/")[0] for k in x}
    assert groups == {"generator", "discriminator", "ema_generator", "g_optimizer", "d_optimizer"}
    differ = [k for k in x if x[k].tobytes() != y[k].tobytes()]
    assert not differ, f"{len(differ)} of {len(x)} arrays differ, e.g. {differ[:3]}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isic_cli_folder(tmp_path_factory.mktemp("det-data") / "isic", 16, 0, corrupt=False)


@pytest.mark.slow
def test_two_processes_train_identical_weights_and_resume_across_processes(dataset, tmp_path):
    straight, other = tmp_path / "straight", tmp_path / "other"
    train(dataset, straight, 3)
    train(dataset, other, 2)  # a second process, same command up to epoch 2
    assert_identical(straight / "checkpoints" / "epoch_0002", other / "checkpoints" / "epoch_0002")
    # a third process resumes `other` to epoch 3, asked to use one thread: --deterministic pins
    # the thread counts the run recorded, so the result equals the uninterrupted run
    train(dataset, other, 3, env={"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"})
    assert "resumed from" in (other / "run.log").read_text()
    assert_identical(straight / "checkpoints" / "epoch_0003", other / "checkpoints" / "epoch_0003")
    # the quality tracker's history survives the resume: the same measurements, the same best
    quality = [json.loads((r / "quality.json").read_text()) for r in (straight, other)]
    assert [h["epoch"] for h in quality[1]["history"]] == [1, 2, 3]
    assert quality[0]["history"] == quality[1]["history"]
    assert quality[0]["best"] == quality[1]["best"]
    state = json.loads((straight / "checkpoints" / "epoch_0003" / "state.json").read_text())
    assert {"tensorflow", "cpu", "intra_op_threads", "onednn"} <= set(state["environment"])
    # the step's settings that auto chose (trainer.throughput), kept by the resume
    assert {"jit_compile", "precision"} <= set(state["environment"])
    assert "training step: XLA" in (other / "run.log").read_text()
    assert "determinism on" in (straight / "run.log").read_text()


def test_initial_weights_depend_on_the_seed_only():
    from trainer.model import build_discriminator, build_generator

    def weights(model):
        return [w for w in model.get_weights() if w.ndim > 1]  # the kernels (N(0, 0.02))

    g0, g0b, g1 = (weights(build_generator(32, 16, width=8, seed=s)) for s in (0, 0, 1))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(g0, g0b))
    assert all(a.tobytes() != b.tobytes() for a, b in zip(g0, g1))
    d0 = weights(build_discriminator(32, width=8, seed=0))
    # every layer draws its own stream: no kernel starts with another's values
    firsts = [w.ravel()[:8].tobytes() for w in g0 + d0]
    assert len(set(firsts)) == len(firsts)
    assert all(abs(float(w.std()) - 0.02) < 0.006 for w in g0 + d0 if w.size >= 500)


def test_resume_in_another_environment_names_the_difference():
    from trainer.determinism import differences, environment

    now = environment()
    assert differences(now, now) == []
    saved = {**now, "intra_op_threads": now["intra_op_threads"] + 7, "onednn": "elsewhere"}
    found = differences(saved, now)
    assert len(found) == 2 and any(f.startswith("intra_op_threads:") for f in found)
