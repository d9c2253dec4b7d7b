"""The real CLI in a subprocess: SIGTERM turns health NOT_SERVING, then drains in-flight
streams and exits 0; the health command; a missing, corrupt or mismatched model is refused
with exit 2 before binding."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from common.cli import run_cli
from common.hashing import sha256_file
from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving import cli
from serving.health import check_health
from serving.model import ModelError, load_model

REPO = Path(__file__).resolve().parents[2]


def start_server(model_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "serve",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "none",
            *extra,
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:  # until the server says where it listens
        lines.append(line)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(
                target=lambda: [lines.append(x) for x in proc.stderr], daemon=True
            ).start()
            proc.log = lines
            return proc, f"127.0.0.1:{match.group(1)}"
    proc.wait(10)
    raise AssertionError("server did not start:\n" + "".join(lines))


def test_sigterm_drains_in_flight_streams_then_exits_0(tiny_model_dir):
    proc, target = start_server(
        tiny_model_dir, "--grace-seconds", "60", "--drain-announce-seconds", "1"
    )
    try:
        assert (
            subprocess.run(
                [sys.executable, "-m", "serving", "health", "--target", target],
                cwd=REPO,
                capture_output=True,
                text=True,
            ).returncode
            == 0
        )
        count, received, seen = 1000, [], []
        with grpc.insecure_channel(target) as channel:
            call = pb_grpc.GeneratorStub(channel).Generate(
                pb.GenerateRequest(seed=9, count=count, batch_size=4)
            )
            received.extend(i.index for i in next(call).images)
            proc.send_signal(signal.SIGTERM)
            # draining: health says NOT_SERVING (as the README promises) while the listener
            # stays open for --drain-announce-seconds, then new connections are refused
            deadline = time.monotonic() + 20  # a loaded machine may take a while to act
            while not seen or seen[-1] == "SERVING" and time.monotonic() < deadline:
                seen.append(check_health(target, timeout=5))
                time.sleep(0.02)
            seen = [s for s in seen if s != "SERVING"]
            for batch in call:  # a slow reader: >= 2.5 s for the rest of the stream
                received.extend(i.index for i in batch.images)
                time.sleep(0.01)
                if len(received) % 40 == 0 and not seen[-1].startswith("UNREACHABLE"):
                    seen.append(check_health(target, timeout=5))
        assert received == list(range(count))  # the in-flight stream completed
        assert seen[0] == "NOT_SERVING", seen
        assert seen[-1].startswith("UNREACHABLE"), "new connections still accepted: " + str(seen)
        assert set(seen[:-1]) == {"NOT_SERVING"}, seen  # never SERVING again
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(proc.log)
    assert "SIGTERM received" in log and '"outcome": "ok"' in log


def test_health_command_fails_when_nothing_listens():
    with socket_port() as port:
        pass
    assert (
        run_cli(
            cli.main, ["health", "--target", f"127.0.0.1:{port}", "--timeout", "1"], prog="serving"
        )
        == 1
    )


class socket_port:
    """A port that was free a moment ago."""

    def __enter__(self):
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return self._sock.getsockname()[1]

    def __exit__(self, *exc):
        self._sock.close()


def broken_copies(tiny_model_dir: Path, root: Path) -> dict[str, Path]:
    def copy(name: str) -> Path:
        return Path(shutil.copytree(tiny_model_dir, root / name))

    out = {"missing directory": root / "nope"}
    d = copy("no-manifest")
    (d / "model.json").unlink()
    out["missing manifest"] = d
    d = copy("corrupt-onnx")
    data = bytearray((d / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.onnx").write_bytes(bytes(data))
    out["onnx changed after export"] = d
    d = copy("garbage-onnx")
    (d / "model.onnx").write_bytes(b"not an onnx model")
    manifest = json.loads((d / "model.json").read_text())
    manifest["onnx_sha256"] = sha256_file(d / "model.onnx")
    (d / "model.json").write_text(json.dumps(manifest))
    out["unloadable onnx"] = d
    for key, value in (("latent_dim", 17), ("resolution", 64), ("input_name", "z")):
        d = copy(f"wrong-{key}")
        manifest = json.loads((d / "model.json").read_text())
        manifest[key] = value
        (d / "model.json").write_text(json.dumps(manifest))
        out[f"manifest {key} does not match the graph"] = d
    d = copy("bad-json")
    (d / "model.json").write_text("{truncated")
    out["truncated manifest"] = d
    return out


def test_bad_models_are_refused_with_exit_2(tiny_model_dir, tmp_path, capsys):
    for case, model_dir in broken_copies(tiny_model_dir, tmp_path).items():
        with socket_port() as port:
            pass
        code = run_cli(
            cli.main,
            [
                "serve",
                "--model",
                str(model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--metrics-port",
                "none",
            ],
            prog="serving",
        )
        err = capsys.readouterr().err
        assert code == 2, case
        assert "serving: error:" in err and str(model_dir.name) in err, (case, err)
        assert len(err.strip().splitlines()) == 1, (case, err)


def test_manifest_errors_are_model_errors_naming_the_field(tiny_model_dir, tmp_path):
    """common.manifest's strict load, as the server sees it: a ModelError (exit 2 at the CLI,
    raised before any port is bound) naming the file and the field."""
    manifest = json.loads((tiny_model_dir / "model.json").read_text())
    for field, changes in (
        ("format_version", {"format_version": 2}),
        ("extra", {"extra": 1}),
        ("epochs", {"epochs": "2"}),
        ("opset", {"opset": None}),
    ):
        d = Path(shutil.copytree(tiny_model_dir, tmp_path / field))
        (d / "model.json").write_text(json.dumps({**manifest, **changes}))
        with pytest.raises(ModelError, match=f"field '{field}'") as info:
            load_model(d)
        assert str(d / "model.json") in str(info.value) and info.value.exit_code == 2


def test_bad_model_exits_2_in_a_real_process(tiny_model_dir, tmp_path):
    bad = broken_copies(tiny_model_dir, tmp_path)["manifest latent_dim does not match the graph"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "serve",
            "--model",
            str(bad),
            "--port",
            "0",
            "--metrics-port",
            "none",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "latent_dim 17" in run.stderr and "listening" not in run.stderr


def test_bytes_are_identical_across_separate_server_processes(tiny_model_dir, make_server):
    """The release bundle and the replicas rely on this: another server *process* (its own
    ONNX Runtime session, other inference batch and thread count) returns the same PNG bytes
    for every (seed, index) as an in-process server, and a second process the same again."""
    from tests.serving.conftest import collect

    _, target = make_server()
    with grpc.insecure_channel(target) as channel:
        want = collect(pb_grpc.GeneratorStub(channel), seed=31, count=24, batch_size=8)
    for extra in (("--inference-batch", "5"), ("--inference-workers", "1")):
        proc, target = start_server(tiny_model_dir, *extra)
        try:
            with grpc.insecure_channel(target) as channel:
                got = collect(
                    pb_grpc.GeneratorStub(channel), seed=31, count=24, start_index=0, batch_size=24
                )
        finally:
            proc.kill()
            proc.wait(10)
        assert got == want, f"bytes differ in a separate process ({' '.join(extra)})"
