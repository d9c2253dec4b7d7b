"""The training step's speed switches (trainer.throughput, trainer.gan): XLA and mixed precision
train, stay float32 where they must, resume exactly, and repeat bit for bit in two processes;
the options are validated and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common.config import ConfigError, resolve
from tests.trainer.helpers import PYTHON, REPO, batch, variable_bytes

PY = str(PYTHON) if PYTHON.exists() else sys.executable
SMALL = {
    "resolution": 32,
    "latent_dim": 8,
    "width": 4,
    "seed": 1,
    "augmentations": ("color", "translation", "cutout"),
    "ema_decay": 0.9,
    "r1_gamma": 0.1,
    "r1_interval": 2,
}


def _gan(**overrides):
    from trainer.gan import DCGAN

    return DCGAN(**{**SMALL, **overrides})


def _steps(gan, first: int, last: int) -> dict:
    out = {}  # every metric of the steps (r1 only from the regularised ones)
    for i in range(first, last):
        out.update(gan.step(batch(i), regularize=gan.r1_due(gan.step_count)))
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize(
    "jit, precision",
    [(True, "float32"), (False, "mixed_bfloat16"), (False, "mixed_float16")],
)
def test_step_trains_keeps_float32_where_it_must_and_resumes_exactly(jit, precision, tmp_path):
    """Train 3 steps == train 2, checkpoint, restore (into a fresh model; XLA: into the same
    one, rewound), train 1: the same bytes in every variable (weights, EMA, optimizer moments,
    loss scale)."""
    import tensorflow as tf

    from trainer import checkpoints

    tf.config.experimental.enable_op_determinism()
    # XLA compiles slowly (~10 s a graph on 2 busy cores): there, R1 every step (one graph,
    # the one with the double backward pass) and the restore rewinds the same model
    extra = {"r1_interval": 1} if jit else {}
    straight = _gan(jit_compile=jit, precision=precision, **extra)
    metrics = _steps(straight, 0, 2)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "r1"} <= set(metrics)
    # mixed_float16: the first R1 steps overflow at Keras' initial loss scale (2^15), r1 is
    # NaN, and the LossScaleOptimizer skips that D update and halves the scale (below)
    finite = {k: v for k, v in metrics.items() if k != "r1" or precision != "mixed_float16"}
    assert all(np.isfinite(v) for v in finite.values()), metrics
    assert all(np.isfinite(v.numpy()).all() for v in straight.generator.variables)
    compute = "float32" if precision == "float32" else precision.split("_")[1]
    layers = {layer.name: layer for layer in straight.discriminator.layers}
    assert layers["down1"].compute_dtype == compute and layers["down1"].kernel.dtype == "float32"
    assert layers["logit"].compute_dtype == "float32"  # logits and losses in float32
    assert all(v.dtype == "float32" for v in straight.generator.trainable_variables)
    assert straight.ema_generator.compute_dtype == "float32"  # the exported one
    images = straight.export_generator(np.zeros((2, 8), np.float32), training=False)
    assert images.dtype == "float32" and tuple(images.shape) == (2, 32, 32, 3)
    logits = straight.discriminator(batch(9), training=False)
    assert logits.dtype == "float32" and tuple(logits.shape) == (4, 1)
    if precision == "mixed_float16":
        stored = checkpoints.named_variables(straight)["d_optimizer"]
        assert any(name.endswith("dynamic_scale") for name in stored), sorted(stored)
        assert float(straight.d_optimizer.dynamic_scale) < 2.0**15  # scaled down after NaN

    checkpoints.save(tmp_path, 1, straight, state={"step": straight.step_count}, keep=1)
    before = variable_bytes(straight)
    _steps(straight, 2, 3)
    after = variable_bytes(straight)
    fresh = straight if jit else _gan(jit_compile=jit, precision=precision, **extra)
    assert variable_bytes(fresh) != before
    checkpoints.restore(checkpoints.latest(tmp_path), fresh)
    assert variable_bytes(fresh) == before
    _steps(fresh, 2, 3)
    assert variable_bytes(fresh) == after != before


def test_mixed_precision_changes_the_numbers_not_the_variables():
    """The switches change how the step computes, not what is stored: same variable names and
    shapes (a checkpoint of one loads into another), other values after a step."""
    from trainer.checkpoints import named_variables

    plain, bf16 = _gan(), _gan(precision="mixed_bfloat16")
    shapes = [
        {f"{g}/{n}": tuple(v.shape) for g, vs in named_variables(m).items() for n, v in vs.items()}
        for m in (plain, bf16)
    ]
    assert shapes[0] == shapes[1]
    assert variable_bytes(plain) == variable_bytes(bf16)  # the same initial weights
    for gan in (plain, bf16):
        gan.step(batch(0))
    assert variable_bytes(plain) != variable_bytes(bf16)


PROBE = """
import hashlib, json, sys
import numpy as np
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
from tests.trainer.helpers import variable_bytes
from tests.trainer.test_throughput import _gan, _steps
out = {}
variants = {"xla": {"jit_compile": True, "r1_interval": 1}, "bf16": {"precision": "mixed_bfloat16"}}
for name, kw in variants.items():
    gan = _gan(**kw)
    _steps(gan, 0, 3)
    state = variable_bytes(gan)
    out[name] = hashlib.sha256(b"".join(state[k] for k in sorted(state))).hexdigest()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_xla_and_bf16_steps_are_bit_identical_in_two_processes():
    """The claim trainer.determinism makes, for the compiled and the bfloat16 step: the same
    seed in two processes (run at the same time) gives the same bytes in every variable."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [
        subprocess.Popen(
            [PY, "-c", PROBE], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        outs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    assert outs[0] == outs[1] and set(outs[0]) == {"xla", "bf16"}
    assert outs[0]["xla"] != outs[0]["bf16"]


def test_auto_follows_the_hardware_and_a_resume_keeps_the_runs_settings():
    from trainer import throughput

    native, why = throughput.native_bf16()
    if not throughput.gpus():  # on any CPU-only machine: the rule as the flags say
        flags = throughput.cpu_flags()
        assert native == bool({"amx_bf16", "avx512_bf16"} & flags), why
    new = throughput.resolve("auto", "auto")
    assert new.jit_compile == bool(throughput.gpus())
    assert new.precision == ("mixed_bfloat16" if native else "float32")
    # explicit values win; a resumed run with auto keeps what it recorded
    assert throughput.resolve("on", "mixed_float16").record() == {
        "jit_compile": True,
        "precision": "mixed_float16",
    }
    saved = {"jit_compile": True, "precision": "mixed_float16"}
    assert throughput.resolve("auto", "auto", saved).record() == saved
    old_run = {"cpu": "x"}  # a checkpoint from before the options: no XLA, float32
    assert throughput.resolve("auto", "auto", old_run).record() == {
        "jit_compile": False,
        "precision": "float32",
    }
    assert throughput.resolve("auto", "auto", strategy="mirrored").jit_compile is False


def _config(**values):
    from trainer.config import TrainConfig

    return resolve(TrainConfig, {"data": "d", "run": "r", **values}, env={})


def test_options_are_validated_and_saved_with_the_config():
    from common.config import to_dict
    from trainer.config import ENV_PREFIX, TrainConfig

    saved = to_dict(_config(jit_compile="off", precision="mixed_bfloat16"))
    assert (saved["jit_compile"], saved["precision"]) == ("off", "mixed_bfloat16")
    assert to_dict(_config())["jit_compile"] == "auto" and to_dict(_config())["precision"] == "auto"
    with pytest.raises(ConfigError, match="--precision: 'fp8' is not one of auto, float32"):
        _config(precision="fp8")
    with pytest.raises(ConfigError, match="--jit-compile: 'yes' is not one of auto, on, off"):
        _config(jit_compile="yes")
    with pytest.raises(ConfigError, match="--jit-compile on works with --strategy default only"):
        _config(jit_compile="on", strategy="mirrored")
    env = {f"{ENV_PREFIX}JIT_COMPILE": "on", f"{ENV_PREFIX}PRECISION": "float32"}
    config = resolve(TrainConfig, {"data": "d", "run": "r"}, env=env, prefix=ENV_PREFIX)
    assert (config.jit_compile, config.precision) == ("on", "float32")


def test_bad_value_exits_2_at_the_cli(tmp_path, capsys):
    from common.cli import run_cli
    from trainer.cli import main

    args = ["train", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--precision", "fp8"]
    assert run_cli(main, args, prog="trainer") == 2
    err = capsys.readouterr().err
    assert "--precision" in err and "fp8" in err and "Traceback" not in err
