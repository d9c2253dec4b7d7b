"""Fixtures of the visual Turing test: real ISIC images from data/isic-demo, real synthetic PNGs
from the tiny exported generator (``tiny_model_dir``, run with ONNX Runtime), studies in a real
SQLite file, a real uvicorn server on port 0 in a thread, and headless Debian chromium driven by
Selenium."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "data" / "isic-demo"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "turing-admin-token-for-tests"
N_SYNTHETIC = 50


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory) -> Path:
    """The first 50 images of data/isic-demo (a plain folder)."""
    out = tmp_path_factory.mktemp("real")
    for path in sorted(DEMO.glob("ISIC_*.jpg"))[:N_SYNTHETIC]:
        shutil.copy(path, out)
    return out


@pytest.fixture(scope="session")
def synthetic_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """50 PNGs from the tiny generator (32 px), as the generation client writes them."""
    import onnxruntime as ort
    from PIL import Image

    from common.images import to_uint8

    session = ort.InferenceSession(str(tiny_model_dir / "model.onnx"))
    latent_dim = json.loads((tiny_model_dir / "model.json").read_text())["latent_dim"]
    latents = np.random.default_rng(0).standard_normal((N_SYNTHETIC, latent_dim))
    (images,) = session.run(None, {"latent": latents.astype(np.float32)})
    out = tmp_path_factory.mktemp("synthetic")
    for i, pixels in enumerate(to_uint8(images)):
        Image.fromarray(pixels).save(out / f"{i:08d}.png")
    return out


@dataclass
class Live:
    """A running app: its base URL, store, study and the server (to stop it)."""

    url: str
    store: object
    study: object
    server: object
    thread: threading.Thread

    def new_rater(self, name: str) -> str:
        """A new session through the admin API; its link."""
        return post(self.url + "/admin/api/sessions", {"rater": name}, token=TOKEN)[1]["link"]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def post(url: str, fields: dict, *, token: str | None = None) -> tuple[int, object]:
    """POST a form without following redirects: (status, JSON body or Location)."""
    from urllib.parse import urlencode

    request = urllib.request.Request(url, data=urlencode(fields).encode(), method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location") or exc.read()


def get(url: str, *, token: str | None = None) -> tuple[int, dict, bytes]:
    """GET: (status, headers, body), errors included."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def make_study(tmp_path, real_dir, synthetic_dir):
    """``make_study(per_rater, size=...) -> (store, study)`` in a fresh database."""
    from validator.turing.store import Store
    from validator.turing.study import open_study

    def make(per_rater: int, size: int = 64, name: str = "s1", seed: int = 7):
        store = Store(tmp_path / "turing.sqlite")
        study, created = open_study(
            store, name, real_dir, synthetic_dir, per_rater=per_rater, size=size, seed=seed
        )
        assert created
        return store, study

    return make


def start(store, study, **options) -> Live:
    from validator.turing.server import bind, create_server

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = create_server(store, study, TOKEN, host="127.0.0.1", port=port, **options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return Live(f"http://127.0.0.1:{port}", store, study, server, thread)


@pytest.fixture
def live(make_study):
    """A running server for a study of 8 images per rater (4 real, 4 synthetic) at 64 px."""
    running = start(*make_study(8))
    yield running
    running.stop()


def new_browser(width: int = 1000, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are needed (apt-get install them)")
        pytest.skip(
            "browser test: needs Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver); with CI set it fails instead"
        )
    driver = new_browser()
    yield driver
    try:
        driver.quit()
    except Exception:  # a test may have quit it already
        pass
