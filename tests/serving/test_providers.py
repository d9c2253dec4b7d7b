"""Execution provider selection (serving.model), tested on whatever this machine has: auto runs
on CPU with a log line saying why when CUDA cannot be used; an explicit --provider cuda that
cannot be honoured stops the server at startup (exit 2), never a silent CPU run."""

from __future__ import annotations

import logging
import socket

import onnxruntime as ort
import pytest

from common.cli import run_cli
from serving import cli
from serving.model import (
    CPU,
    CUDA,
    ModelError,
    check_session_providers,
    choose_providers,
    load_model,
)

HAS_CUDA = CUDA in ort.get_available_providers()


def test_auto_without_cuda_falls_back_to_cpu_with_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="serving.model")
    assert choose_providers("auto", [CPU]) == [CPU]
    line = [r.getMessage() for r in caplog.records if "provider auto" in r.getMessage()]
    assert line and CUDA in line[0] and "running on CPU" in line[0]
    caplog.clear()
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert not caplog.records


def test_explicit_cuda_without_cuda_is_an_error_not_a_cpu_run():
    with pytest.raises(ModelError, match="--provider cuda: CUDAExecutionProvider is not avail"):
        choose_providers("cuda", [CPU])
    assert choose_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    # onnxruntime-gpu whose CUDA cannot start (no GPU): ONNX Runtime falls back to CPU by
    # itself; the session's providers show it, and an explicit request refuses that
    with pytest.raises(ModelError, match="could not start CUDAExecutionProvider"):
        check_session_providers("cuda", [CPU])
    assert check_session_providers("auto", [CPU]) == CPU
    assert check_session_providers("cuda", [CUDA, CPU]) == CUDA


@pytest.mark.skipif(
    HAS_CUDA,
    reason="this onnxruntime build has CUDA: the no-CUDA fallback and refusal cannot "
    "happen here (the unit test above covers both with given provider lists)",
)
def test_server_on_this_machine(tiny_model_dir, caplog, capsys):
    """Real loads of the tiny model: auto runs on CPU and says why; cuda is refused at startup
    with exit 2 and a one-line message, before any port is bound."""
    caplog.set_level(logging.INFO, logger="serving.model")
    model = load_model(tiny_model_dir, provider="auto", inference_batch=2)
    assert model.provider == CPU
    assert any("running on CPU" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelError, match="--provider cuda"):
        load_model(tiny_model_dir, provider="cuda", inference_batch=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve", "--model", str(tiny_model_dir), "--host", "127.0.0.1", "--port", str(port)]
    code = run_cli(
        cli.main, [*argv, "--metrics-port", "none", "--provider", "cuda"], prog="serving"
    )
    err = capsys.readouterr().err
    assert code == 2 and "--provider cuda" in err and "onnxruntime-gpu" in err, err
    assert len(err.strip().splitlines()) == 1, err
    with socket.socket() as s:  # nothing was left listening on the port
        s.bind(("127.0.0.1", port))
