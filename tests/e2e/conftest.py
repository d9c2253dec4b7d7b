"""Fixtures of the e2e chain: the project's images run by docker or buildah (see engine.py).

The tests here run only when the ``-m`` expression names ``e2e`` (``make e2e``:
``pytest -m e2e tests/e2e``); a plain ``pytest tests`` (``make test``) deselects them. Once
selected nothing is skipped: no engine or a missing image FAILS the run.

Environment: ENGINE=docker|buildah (default: docker if `docker info` answers, else buildah),
IMAGE_TAG (default: the project version), E2E_DIR (keep the artifacts in this folder, emptied
first; default: a temporary folder removed afterwards, pass or fail).
"""

from __future__ import annotations

import os
import signal
import tempfile
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.engine import Container, Engine, EngineMissing, detect_engine

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT / "data" / "isic-demo"
# written by the images' uid 10001
WRITABLE = ("runs", "model", "features", "fetched", "report", "release")

SUMMARY = pytest.StashKey[list[str]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark everything under tests/e2e ``e2e``; drop it unless ``-m`` names e2e."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
    if "e2e" in (config.option.markexpr or ""):
        return  # pytest's own -m handling selects from here
    dropped = [item for item in items if item.get_closest_marker("e2e")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("e2e")]


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("e2e")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def summary(pytestconfig):
    """``summary(line)``: a line for the end of the run (engine, artifacts, release gate)."""
    return pytestconfig.stash.setdefault(SUMMARY, []).append


@dataclass(frozen=True)
class Images:
    train: str
    serve: str


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The container engine; no engine fails the run. SIGTERM is turned into KeyboardInterrupt
    while the chain runs, so that the fixtures' cleanup runs for it too."""
    try:
        found = detect_engine(os.environ.get("ENGINE") or None)
    except EngineMissing as exc:
        pytest.fail(f"e2e: {exc}", pytrace=False)

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    yield found
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def images(engine, summary) -> Images:
    """The two images to test; a missing one fails the run."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        tag = os.environ.get("IMAGE_TAG") or tomllib.load(fh)["project"]["version"]
    found = Images(train=f"dermsynth-train:{tag}", serve=f"dermsynth-serve:{tag}")
    missing = [image for image in (found.train, found.serve) if not engine.image_exists(image)]
    if missing:
        pytest.fail(
            f"e2e: image {', '.join(missing)} not found ({engine.name}): run `make images` first",
            pytrace=False,
        )
    summary(f"engine {engine.name}, images {found.train} + {found.serve}")
    return found


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The bundled demo data: the training set and the validator's real set."""
    if not (DATA / "metadata.csv").is_file():
        pytest.fail(f"e2e: {DATA} (the bundled demo data) is missing", pytrace=False)
    return DATA


@pytest.fixture(scope="session")
def workdir(engine, images, summary) -> Path:
    """The chain's folders (runs, model, features, fetched, report, logs): $E2E_DIR, kept;
    else a temporary folder, removed at the end whether the chain passed or not."""
    keep = os.environ.get("E2E_DIR")
    if keep:
        path = Path(keep).resolve()
        if path.exists():  # empty it, but only if it holds nothing but an earlier e2e's files
            others = [
                p.name
                for p in path.iterdir()
                if p.name not in WRITABLE and not p.name.endswith(".log")
            ]
            if others:
                pytest.fail(
                    f"e2e: E2E_DIR={keep} holds other files ({', '.join(others[:5])}): "
                    "name a new folder or an earlier e2e's",
                    pytrace=False,
                )
            engine.remove_tree(path, images.serve)
        path.mkdir(parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="dermsynth-e2e-"))
        path.chmod(0o755)
    for name in WRITABLE:
        (path / name).mkdir()
        (path / name).chmod(0o777)  # the images run as uid 10001
    yield path
    if keep:
        summary(f"artifacts and logs kept in {path}")
    else:
        engine.remove_tree(path, images.serve)


@pytest.fixture(scope="session")
def containers(engine):
    """``make(image, role)``: a container for ``image``; all of them are removed at the end."""
    made: list[Container] = []
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def make(image: str, role: str) -> Container:
        ctr = engine.container(image, f"dermsynth-e2e-{role}-{suffix}")
        made.append(ctr)  # before create(): a half-made container is removed too
        ctr.create()
        return ctr

    yield make
    problems = []
    for ctr in reversed(made):
        try:
            ctr.remove()
        except Exception as exc:  # remove the others all the same
            problems.append(f"{ctr.name}: {exc}")
    assert not problems, f"containers left behind: {problems}"
