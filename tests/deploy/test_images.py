"""The container images' inputs, checked without building them (``make images && make e2e``
build and run them): pinned requirements that match what the tests ran, a serving image
without TensorFlow whose requirements cover everything the serving, client and validator code
imports, a training image that can run the trainer and ``validator export-xception``, and
Dockerfiles/.dockerignore that agree with the code (ports, health check, copied folders).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_STACK = {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "tensorboard"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: unpinned requirement {line!r}"
            pins[_norm(name)] = version.strip()
    return pins


def _wanted(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            names.add(_norm(re.split(r"[<>=\[; ]", line, maxsplit=1)[0]))
    return names


@pytest.mark.parametrize("image", ["train", "serve"])
def test_requirements_are_compiled_pins_matching_the_dev_environment(image):
    pins = _pins(ROOT / "requirements" / f"{image}.txt")
    dev = _pins(ROOT / "requirements" / "dev.txt")
    missing = _wanted(ROOT / "requirements" / f"{image}.in") - set(pins)
    assert not missing, f"requirements/{image}.txt is stale (recompile): {sorted(missing)}"
    differ = {n: (v, dev[n]) for n, v in pins.items() if n in dev and dev[n] != v}
    assert not differ, f"image pins differ from requirements/dev.txt: {differ}"


def test_serving_image_has_no_tensorflow():
    pins = _pins(ROOT / "requirements" / "serve.txt")
    assert not TF_STACK & set(pins), sorted(TF_STACK & set(pins))
    assert "onnxruntime" in pins
    assert "tensorflow-cpu" in _pins(ROOT / "requirements" / "train.txt")


_IMPORT_CHECK = r"""
import importlib, importlib.abc, importlib.metadata, json, re, sys
allowed, modules, trainer_modules = (json.loads(a) for a in sys.argv[1:4])
owners = importlib.metadata.packages_distributions()
PROJECT = {"common", "protos", "serving", "trainer", "validator"}

class OnlyTheImagesPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top == "trainer" and trainer_modules is not None and name not in trainer_modules:
            raise ImportError(f"{name} is not copied into this image")
        if top in PROJECT or top in sys.stdlib_module_names or top not in owners:
            return None
        if not any(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in owners[top]):
            raise ImportError(f"{name} (from {owners[top]}) is not in the image's requirements")
        return None

sys.meta_path.insert(0, OnlyTheImagesPackages())
for module in modules:
    importlib.import_module(module)
if "validator.checks" in modules:
    importlib.import_module("validator.checks")._load_all()
print("imported", len(modules), "modules")
"""


def _modules(*packages: str) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] != "__main__":  # importing it would run the CLI
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _import_in_image(image: str, modules: list[str], trainer_modules: list[str] | None):
    allowed = sorted(_pins(ROOT / "requirements" / f"{image}.txt"))
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, json.dumps(allowed), json.dumps(modules),
         json.dumps(trainer_modules)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_serving_image_requirements_cover_serving_client_and_validator_imports():
    """Every module the serving image runs imports with only serve.txt's packages (so no
    TensorFlow) and only trainer/__init__.py + trainer/data.py from the trainer."""
    modules = [m for m in _modules("common", "protos", "serving", "validator")
               if m != "validator.xception_export"] + ["trainer.data"]
    _import_in_image("serve", modules, ["trainer", "trainer.data"])


@pytest.mark.slow
def test_training_image_requirements_cover_trainer_and_xception_export():
    # common.grpc_server is the servers' (serving, validator serve): the serve image's only.
    common = [m for m in _modules("common", "protos", "trainer") if m != "common.grpc_server"]
    _import_in_image("train", common + ["validator.cli", "validator.xception_export"], None)


def _dockerfile(name: str) -> str:
    return (ROOT / name).read_text()


def test_serving_dockerfile_agrees_with_the_server_config():
    import dataclasses

    from serving.config import ServeConfig

    defaults = {f.name: f.default for f in dataclasses.fields(ServeConfig)}
    text = _dockerfile("Dockerfile.serve")
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M)
               for p in line.split()}
    assert exposed == {defaults["port"], defaults["metrics_port"]}
    port = defaults["port"]
    assert re.search(rf'HEALTHCHECK .*\n?.*"serving", "health", "--target", "localhost:{port}"',
                     text)
    assert 'ENTRYPOINT ["python", "-m", "serving"]' in text
    assert f'CMD ["serve", "--model", "/model", "--port", "{port}"]' in text
    assert "COPY trainer/__init__.py trainer/data.py /app/trainer/" in text


def test_training_dockerfile_runs_the_trainer_with_volumes():
    text = _dockerfile("Dockerfile.train")
    assert 'ENTRYPOINT ["python", "-m", "trainer"]' in text
    assert 'VOLUME ["/data", "/runs"]' in text
    assert "COPY validator/ /app/validator/" in text  # for `validator export-xception`


@pytest.mark.parametrize("name", ["Dockerfile.train", "Dockerfile.serve"])
def test_dockerfiles_copy_only_what_the_dockerignore_lets_in(name):
    text = _dockerfile(name)
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm\nFROM \$\{BASE_IMAGE\}$", text,
                     re.M)
    assert "--no-cache-dir" in text and re.search(r"^USER 10001", text, re.M)
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "the .dockerignore is an allow-list: everything else stays out"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert not allowed & {"data", "runs", "models", "out", ".venv", ".git"}
    sources = [src for line in re.findall(r"^COPY (.+)$", text, re.M)
               for src in line.split()[:-1] if not src.startswith("--")]
    assert sources
    for src in sources:
        assert src.split("/")[0] in allowed, f"{name} copies {src}, which .dockerignore leaves out"
        assert (ROOT / src).exists(), f"{name} copies {src}, which does not exist"
