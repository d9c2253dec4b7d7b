"""End to end inside the project's own images (``make e2e``, after ``make images``):

1. dermsynth-train trains a tiny DCGAN (32 px, 2 epochs) on data/isic-demo mounted read-only at
   /data, exports it to ONNX into a mounted host folder, and exports a random-weight Xception
   feature extractor (71 px) for the validator;
2. dermsynth-serve serves that model (host network, a free port) until the gRPC health service
   says SERVING, from the host and with the image's own health command;
3. the host's client (``python -m serving.client``) fetches a batch of PNGs;
4. the validator (dermsynth-serve, entrypoint ``python``) validates the batch against the real
   sample and writes report.json + report.html;
5. the release step (dermsynth-serve, no TensorFlow): keygen, a signed bundle of the validated
   batch (stamped -FAIL/-RANDOM-WEIGHTS as the gate cannot pass here), verified in the image and
   on the host, which also sees a tampered copy refused;
6. SIGTERM to the server: it drains and exits 0.

Each step is a module-scoped fixture (run once, its failure reported by every test that needs
it); each test checks one step's artifacts and exit codes. The release gate itself is EXPECTED
TO FAIL here (a 2-epoch model, random Xception weights): the validator exits 0 (pass) or 1
(gate failed), and the test requires the exit code to agree with report.json's verdict.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from common.manifest import ModelManifest
from common.net import free_port
from tests.e2e.engine import Mount, Step, kill_group, run_logged

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
RESOLUTION = 32
EPOCHS = 2
COUNT = 64
SEED = 42
SERVER_ARGV = ["python", "-m", "serving", "serve"]  # the serving image's entrypoint + command
HEALTH_WAIT_S = 120


def passed(step: Step, what: str) -> None:
    if step.returncode != 0:
        pytest.fail(
            f"{what} exited {step.returncode}; last lines of {step.log}:\n{step.tail()}",
            pytrace=False,
        )


def need_files(folder: Path, *names: str) -> None:
    missing = [n for n in names if not (folder / n).is_file() or (folder / n).stat().st_size == 0]
    assert not missing, f"missing or empty in {folder}: {missing}"


# --- the steps -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_ctr(containers, images):
    return containers(images.train, "train")


@pytest.fixture(scope="module")
def serve_ctr(containers, images):
    return containers(images.serve, "serve")


@pytest.fixture(scope="module")
def tools_ctr(containers, images):
    """A second serving-image container for commands next to the server (health, validate)."""
    return containers(images.serve, "validate")


@pytest.fixture(scope="module")
def run_dir(train_ctr, data_dir, workdir) -> Path:
    argv = train_ctr.command(
        [
            "train",
            "--data",
            "/data",
            "--run",
            "/runs/e2e",
            "--resolution",
            str(RESOLUTION),
            "--epochs",
            str(EPOCHS),
            "--batch-size",
            "32",
            "--seed",
            "0",
            "--no-progress",
        ],
        mounts=(Mount(data_dir, "/data", read_only=True), Mount(workdir / "runs", "/runs")),
    )
    passed(run_logged(argv, workdir / "train.log", timeout=900), "training in the train image")
    return workdir / "runs" / "e2e"


@pytest.fixture(scope="module")
def model_dir(train_ctr, run_dir, workdir) -> Path:
    argv = train_ctr.command(
        ["export", "--run", "/runs/e2e", "--out", "/model"],
        mounts=(Mount(workdir / "runs", "/runs"), Mount(workdir / "model", "/model")),
    )
    passed(run_logged(argv, workdir / "export.log", timeout=600), "export in the train image")
    return workdir / "model"


@pytest.fixture(scope="module")
def features(train_ctr, workdir) -> Path:
    argv = train_ctr.command(
        [
            "export-xception",
            "--weights",
            "random",
            "--size",
            "71",
            "--out",
            "/features/xception.onnx",
        ],
        mounts=(Mount(workdir / "features", "/features"),),
    )
    passed(
        run_logged(argv, workdir / "xception.log", timeout=600),
        "export-xception in the train image",
    )
    return workdir / "features" / "xception.onnx"


def host_health(port: int) -> bool:
    return (
        subprocess.run(
            [sys.executable, "-m", "serving", "health", "--target", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )


class Server:
    """The server running in the serving image, in its own process group."""

    def __init__(self, ctr, model_dir: Path, log: Path) -> None:
        self.ctr, self.log, self.port = ctr, log, free_port()
        argv = ctr.command(
            [
                *SERVER_ARGV[3:],
                "--model",
                "/model",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--metrics-port",
                "none",
            ],
            mounts=(Mount(model_dir, "/model", read_only=True),),
        )
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def wait_serving(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the server exited {self.proc.returncode} before it was healthy:"
                    f"\n{self.tail()}",
                    pytrace=False,
                )
            if host_health(self.port):
                return
            time.sleep(0.5)
        pytest.fail(
            f"server not SERVING on port {self.port} after {seconds:.0f} s:\n{self.tail()}",
            pytrace=False,
        )

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM to the server process itself (a clean drain), its exit code."""
        self.ctr.signal_process(self.proc.pid, SERVER_ARGV, signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        kill_group(self.proc)
        self._out.close()


@pytest.fixture(scope="module")
def server(serve_ctr, model_dir, workdir, summary):
    """The model served from the serving image (SERVING from the host); stopped at the end."""
    srv = Server(serve_ctr, model_dir, workdir / "serve.log")
    try:
        srv.wait_serving(HEALTH_WAIT_S)
        summary(f"server SERVING on 127.0.0.1:{srv.port}")
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def fetched(server, workdir) -> Path:
    out = workdir / "fetched"
    step = run_logged(
        [
            sys.executable,
            "-m",
            "serving.client",
            "--target",
            f"127.0.0.1:{server.port}",
            "--seed",
            str(SEED),
            "--count",
            str(COUNT),
            "--out",
            str(out),
            "--no-progress",
        ],
        workdir / "fetch.log",
        timeout=300,
    )
    passed(step, "serving.client (host)")
    return out


@pytest.fixture(scope="module")
def report(tools_ctr, data_dir, fetched, model_dir, features, workdir) -> tuple[Step, Path]:
    argv = tools_ctr.command(
        [
            "-m",
            "validator",
            "validate",
            "--real",
            "/real",
            "--synthetic",
            "/synthetic",
            "--model-dir",
            "/model",
            "--features-model",
            f"/features/{features.name}",
            "--allow-random-weights",
            "--out",
            "/report",
            "--no-progress",
        ],
        mounts=(
            Mount(data_dir, "/real", read_only=True),
            Mount(fetched, "/synthetic", read_only=True),
            Mount(model_dir, "/model", read_only=True),
            Mount(features.parent, "/features", read_only=True),
            Mount(workdir / "report", "/report"),
        ),
        entrypoint="python",
    )
    return run_logged(argv, workdir / "validate.log", timeout=900), workdir / "report"


@pytest.fixture(scope="module")
def bundle(tools_ctr, data_dir, fetched, model_dir, report, workdir) -> Path:
    out = workdir / "release"  # made writable for the images' user by the workdir fixture
    mounts = (
        Mount(data_dir, "/real", read_only=True),
        Mount(fetched, "/synthetic", read_only=True),
        Mount(model_dir, "/model", read_only=True),
        Mount(report[1], "/report", read_only=True),
        Mount(out, "/release"),
    )

    def validator(*args: str, log: str) -> Step:
        argv = tools_ctr.command(["-m", "validator", *args], mounts=mounts, entrypoint="python")
        return run_logged(argv, workdir / log, timeout=600)

    passed(validator("keygen", "--out", "/release/key", log="keygen.log"), "validator keygen")
    step = validator(
        "release",
        *("--report", "/report", "--synthetic", "/synthetic", "--model-dir", "/model"),
        *("--real", "/real", "--key", "/release/key", "--out", "/release/out"),
        *("--allow-fail", "--allow-random-weights"),
        log="release.log",
    )
    passed(step, "validator release (serving image)")
    (folder,) = [p for p in (out / "out").iterdir() if p.is_dir()]
    step = validator(
        "verify",
        f"/release/out/{folder.name}.tar.gz",
        "--public-key",
        "/release/key.pub",
        log="verify.log",
    )
    passed(step, "validator verify (serving image)")
    return folder


# --- the checks ------------------------------------------------------------------------------


def test_training_in_the_train_image_writes_a_run(run_dir):
    need_files(run_dir, "config.json", "data.json", "run.log", "metrics.csv")
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == EPOCHS, f"metrics.csv has {len(rows)} epoch rows, expected {EPOCHS}"
    assert list((run_dir / "samples").glob("*.png")), "no sample grid in samples/"


def test_export_writes_an_onnx_model_that_model_json_describes(model_dir, summary):
    need_files(model_dir, "model.onnx", "model.json")
    manifest = ModelManifest.load(model_dir)  # strict: format, version, every field and type
    manifest.check_onnx(model_dir)  # model.onnx is the file whose sha256 it records
    assert manifest.resolution == RESOLUTION
    assert manifest.epochs == EPOCHS
    assert manifest.training_data.image_count > 0
    assert manifest.opset >= 17
    assert manifest.parity_max_abs_diff <= 1e-4
    summary(
        f"model.json ok: {RESOLUTION} px, {manifest.training_data.image_count} training "
        f"images, parity {manifest.parity_max_abs_diff:.1e}"
    )


def test_xception_export_in_the_train_image(features):
    need_files(features.parent, features.name, features.with_suffix(".json").name)


def test_the_images_own_health_command_reports_serving(server, tools_ctr, workdir):
    argv = tools_ctr.command(
        ["-m", "serving", "health", "--target", f"localhost:{server.port}"], entrypoint="python"
    )
    passed(
        run_logged(argv, workdir / "health.log", timeout=120),
        "the image's health command (not SERVING?)",
    )


def test_the_host_client_fetches_the_images(fetched):
    need_files(fetched, "manifest.json")
    names = sorted(p.name for p in fetched.glob("*.png"))
    assert names == [f"{i:08d}.png" for i in range(COUNT)], f"{len(names)} PNGs, expected {COUNT}"
    sizes = set()
    for name in names:
        with Image.open(fetched / name) as img:
            sizes.add(img.size)
    assert sizes == {(RESOLUTION, RESOLUTION)}
    assert json.loads((fetched / "manifest.json").read_text())["seed"] == SEED


def test_the_validator_reports_a_verdict_that_matches_its_exit_code(report, summary):
    step, out = report
    assert step.returncode in (0, 1), (
        f"validator exited {step.returncode} (0: gate passed, 1: gate failed; anything else is "
        f"an error); last lines of {step.log}:\n{step.tail()}"
    )
    need_files(out, "report.json", "report.html")
    doc = json.loads((out / "report.json").read_text())
    assert doc["verdict"] in ("PASS", "FAIL")
    assert (doc["verdict"] == "PASS") == (step.returncode == 0), (
        f"report.json says {doc['verdict']} but the validator exited {step.returncode}"
    )
    checks = doc["checks"]
    assert checks and all(isinstance(c["passed"], bool) for c in checks), checks
    statuses = {"pass", "fail", "info", "error", "n/a"}
    assert all(c["status"] in statuses for c in checks), checks
    # random weights: the feature-space quality checks only inform, they never decide
    assert all(c["status"] == "info" for c in checks if c["name"] in ("fid", "kid", "prdc", "c2st"))
    assert doc["feature_model"]["random_weights"] is True, "random Xception weights not labelled"
    assert doc["inputs"]["synthetic"], "report.json records no synthetic set"
    summary(
        f"release gate: {doc['verdict']} ("
        + ", ".join(f"{c['name']} {c['status']}" for c in checks)
        + ") on random Xception weights"
    )


def test_the_release_bundle_verifies_and_a_tampered_copy_does_not(bundle, summary):
    assert "RANDOM-WEIGHTS" in bundle.name, f"random-weight release not stamped: {bundle.name}"
    key = bundle.parent.parent / "key"
    assert key.stat().st_mode & 0o077 == 0, f"private key mode {key.stat().st_mode:o}"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["generation"]["seed"] == SEED and len(manifest["images"]) == COUNT
    host = [sys.executable, "-m", "validator", "verify"]
    pub = ["--public-key", str(key.with_suffix(".pub"))]
    ok = subprocess.run([*host, str(bundle), *pub], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    tampered = bundle.parent / "tampered" / bundle.name
    shutil.copytree(bundle, tampered)
    image = tampered / manifest["images"][0]["file"]
    image.write_bytes(image.read_bytes() + b"\0")
    bad = subprocess.run([*host, str(tampered), *pub], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and f"changed: {manifest['images'][0]['file']}" in bad.stdout, (
        bad.stdout + bad.stderr
    )
    summary(f"release bundle {bundle.name}: {COUNT} images, verified in the image and on the host")


def test_sigterm_drains_the_server_and_it_exits_0(server):
    # Last in this file: the other steps use the running server first.
    assert server.proc.poll() is None, f"the server died early:\n{server.tail()}"
    code = server.terminate()
    assert code == 0, f"the server exited {code} after SIGTERM (expected 0):\n{server.tail()}"
