"""Each command line imports only what it runs, read from ``python -X importtime``:

- the trainer's help, argument errors and ``export-xception --help`` import neither scikit-learn
  nor scipy (the training image does not install them) nor anything of the validator;
- the validator's help, ``list-checks`` and argument errors import neither scikit-learn nor
  scipy (the check registry describes the checks without importing them) nor TensorFlow;
- the catalog they show is what the check modules register, once imported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"sklearn", "scipy"}


def imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime ARGS``; the top-level packages it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", proc.stderr, re.MULTILINE)
    assert names, proc.stderr[-2000:]
    return proc, {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["export-xception", "--help"],
        ["export", "--help"],
        ["export-xception", "--size", "64", "--out", "x.onnx"],
        ["no-such-command"],
    ],
)
def test_the_trainer_cli_imports_no_validator_and_no_scikit_learn(args):
    proc, packages = imported("-m", "trainer", *args)
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    assert "trainer" in packages  # the reader sees the imports
    assert not packages & (HEAVY | {"validator", "serving"}), sorted(packages)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "--help"],
        ["list-checks"],
        ["validate", "--bogus"],
        ["validate", "--checks", "nope"],
        ["export-xception", "--size", "71"],
    ],
)
def test_the_validator_cli_help_and_errors_import_no_scikit_learn(args):
    proc, packages = imported("-m", "validator", *args)
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    assert "validator" in packages
    assert not packages & (HEAVY | {"tensorflow", "keras", "trainer"}), sorted(packages)


def test_list_checks_shows_the_catalog_that_the_check_modules_register():
    from validator import checks as registry

    proc = subprocess.run(
        [sys.executable, "-m", "validator", "list-checks"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    listed = [line.split()[0] for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and listed == list(registry.CATALOG)
    registry._load_all()
    for name, entry in registry._REGISTRY.items():
        spec = registry.CATALOG[name]
        assert (entry.kind, entry.weight_free, entry.doc) == (
            spec.kind,
            spec.weight_free,
            spec.doc,
        ), name
    assert set(registry._REGISTRY) == set(registry.CATALOG)
    with pytest.raises(ValueError, match="does not match"):
        registry.register("fid", "privacy")
    with pytest.raises(ValueError, match="does not match"):
        registry.register("not_in_the_catalog", "quality")
