"""The container images' inputs, checked without building them (``make images && make e2e``
build and run them): pinned requirements that match what the tests ran, a serving image
without TensorFlow whose requirements cover everything the serving, client and validator code
imports, a training image that can run the trainer (``export-xception`` included), and
Dockerfiles/.dockerignore that agree with the code (ports, health check, copied folders).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import sysconfig
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


# Runs without site-packages (-S): sys.path holds the image's source (/app) and a folder with
# only the image's distributions, so an import works here exactly when it works in the image.
_IMPORT_CHECK = r"""
import importlib, json, os, sys
modules, full_site = (json.loads(a) for a in sys.argv[1:3])
assert full_site not in map(os.path.realpath, sys.path), f"whole environment on {sys.path}"
for module in modules:
    importlib.import_module(module)
print("imported", len(modules), "modules")
"""


def _image_site_packages(image: str, dest: Path) -> tuple[Path, Path]:
    """A site-packages folder at ``dest`` with only requirements/<image>.txt's distributions,
    linked from this environment's (whose folder is returned too): an entry that only wanted
    distributions own is linked whole, a shared folder (e.g. the google/ namespace) in parts."""
    wanted = set(_pins(ROOT / "requirements" / f"{image}.txt"))
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    files: dict[tuple[str, ...], bool] = {}
    for dist in importlib.metadata.distributions():
        if Path(dist.locate_file("")).resolve() != site:
            continue
        keep = _norm(dist.metadata["Name"]) in wanted
        for file in dist.files or ():
            if file.parts[0] != ".." and "__pycache__" not in file.parts:
                files[file.parts] = files.get(file.parts, False) or keep
    shared = {parts[:i] for parts, keep in files.items() if not keep for i in range(1, len(parts))}
    linked = set()
    for parts, keep in files.items():
        if keep:
            top = next(parts[:i] for i in range(1, len(parts) + 1) if parts[:i] not in shared)
            if top not in linked:
                linked.add(top)
                dest.joinpath(*top[:-1]).mkdir(parents=True, exist_ok=True)
                dest.joinpath(*top).symlink_to(site.joinpath(*top))
    return dest, site


def _image_source(dockerfile: str, dest: Path) -> Path:
    """A copy, at ``dest``, of what ``dockerfile`` COPYs into its PYTHONPATH folder (with
    the .dockerignore's ``**/`` exclusions): the image's own Python source, nothing else."""
    text = _dockerfile(dockerfile)
    app = re.search(r"^\s*PYTHONPATH=(\S+)", text, re.MULTILINE).group(1).rstrip("/")
    ignore = [
        line.strip()[3:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("**/")
    ]
    dest.mkdir(parents=True)
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, target = [w for w in line.split() if not w.startswith("--")]
        if not target.startswith(app + "/"):
            continue  # e.g. the requirements file, into /tmp
        folder = dest / target[len(app) + 1 :]
        for src in sources:
            if (ROOT / src).is_dir():
                shutil.copytree(
                    ROOT / src, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*ignore)
                )
            else:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / src, folder / Path(src).name)
    return dest


def _modules(root: Path) -> list[str]:
    """Every module under ``root`` but the ``__main__`` ones (importing runs the CLI)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] != "__main__":
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _import_in_image(image: str, app: Path, modules: list[str]) -> None:
    """Import ``modules`` as the image would: its source in ``app`` (WORKDIR and PYTHONPATH
    /app), and only requirements/<image>.txt's distributions."""
    site, full_site = _image_site_packages(image, app.parent / "site-packages")
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            _IMPORT_CHECK,
            json.dumps(modules),
            json.dumps(str(full_site)),
        ],
        check=False,
        cwd=app,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": f"{app}:{site}", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_serving_image_requirements_cover_serving_client_and_validator_imports(tmp_path):
    """Every module the serving image carries imports with only its own source on the path
    (no trainer/) and only serve.txt's packages (so no TensorFlow)."""
    app = _image_source("Dockerfile.serve", tmp_path / "app")
    packages = {p.name for p in app.iterdir()}
    assert {"serving", "validator"} <= packages and "trainer" not in packages, packages
    _import_in_image("serve", app, _modules(app))


@pytest.mark.slow
def test_training_image_requirements_cover_trainer_and_xception_export(tmp_path):
    # common.grpc_server is the servers' (serving, validator serve): the serve image's only.
    app = _image_source("Dockerfile.train", tmp_path / "app")
    modules = [
        m
        for m in _modules(app)
        if m.split(".")[0] in ("common", "trainer") and m != "common.grpc_server"
    ]
    _import_in_image("train", app, modules)
    pins = _pins(ROOT / "requirements" / "train.txt")
    assert not {"scikit-learn", "scipy"} & set(pins), "the trainer needs neither"


def _dockerfile(name: str) -> str:
    return (ROOT / name).read_text()


def test_serving_dockerfile_agrees_with_the_server_config():
    import dataclasses

    from serving.config import ServeConfig

    defaults = {f.name: f.default for f in dataclasses.fields(ServeConfig)}
    text = _dockerfile("Dockerfile.serve")
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE) for p in line.split()
    }
    assert exposed == {defaults["port"], defaults["metrics_port"]}
    port = defaults["port"]
    assert re.search(
        rf'HEALTHCHECK .*\n?.*"serving", "health", "--target", "localhost:{port}"', text
    )
    assert 'ENTRYPOINT ["python", "-m", "serving"]' in text
    assert f'CMD ["serve", "--model", "/model", "--port", "{port}"]' in text
    assert not re.search(r"^COPY .*trainer", text, re.MULTILINE), "the serving image has no trainer"


def test_training_dockerfile_runs_the_trainer_with_volumes():
    text = _dockerfile("Dockerfile.train")
    assert 'ENTRYPOINT ["python", "-m", "trainer"]' in text
    assert 'VOLUME ["/data", "/runs"]' in text
    assert "COPY trainer/ /app/trainer/" in text and "COPY common/ /app/common/" in text
    assert "COPY validator/" not in text and "COPY protos/" not in text  # trainer imports none


@pytest.mark.parametrize("name", ["Dockerfile.train", "Dockerfile.serve"])
def test_dockerfiles_copy_only_what_the_dockerignore_lets_in(name):
    text = _dockerfile(name)
    assert re.search(
        r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm\nFROM \$\{BASE_IMAGE\}$", text, re.MULTILINE
    )
    assert "--no-cache-dir" in text and re.search(r"^USER 10001", text, re.MULTILINE)
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", "the .dockerignore is an allow-list: everything else stays out"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert not allowed & {"data", "runs", "models", "out", ".venv", ".git"}
    sources = [
        src
        for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE)
        for src in line.split()[:-1]
        if not src.startswith("--")
    ]
    assert sources
    for src in sources:
        assert src.split("/")[0] in allowed, f"{name} copies {src}, which .dockerignore leaves out"
        assert (ROOT / src).exists(), f"{name} copies {src}, which does not exist"
