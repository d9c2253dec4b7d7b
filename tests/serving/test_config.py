"""ServeConfig / ClientConfig: flags over environment, validation, a redacted log form; the
`info` command and `python -m serving.client` as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import resolve
from common.errors import ConfigError
from serving.config import CLIENT_ENV_PREFIX, SERVE_ENV_PREFIX, ClientConfig, ServeConfig

REPO = Path(__file__).resolve().parents[2]


def serve_config(flags: dict, env: dict) -> ServeConfig:
    return resolve(ServeConfig, flags, env=env, prefix=SERVE_ENV_PREFIX)


def test_flags_win_over_environment(tmp_path):
    env = {
        "DERMSYNTH_SERVE_MAX_STREAMS": "3",
        "DERMSYNTH_SERVE_TOKEN": "abc",
        "DERMSYNTH_SERVE_METRICS_PORT": "none",
    }
    config = serve_config({"model": str(tmp_path), "max_streams": "5"}, env)
    assert (config.max_streams, config.token, config.metrics_port) == (5, "abc", None)
    assert config.for_log()["token"] == "<set>" and "abc" not in repr(config)


@pytest.mark.parametrize(
    "flags, env, message",
    [
        ({}, {}, "--model is required"),
        ({"model": "m"}, {"DERMSYNTH_SERVE_MAX_STREEMS": "2"}, "unknown environment variable"),
        ({"model": "m", "port": "70000"}, {}, "above the maximum"),
        (
            {"model": "m", "max_batch_size": "8", "default_batch_size": "16"},
            {},
            "--default-batch-size",
        ),
        ({"model": "m", "tls_cert": "cert.pem"}, {}, "go together"),
        ({"model": "m", "token": " "}, {}, "empty token"),
        ({"model": "m", "provider": "tpu"}, {}, "not one of"),
    ],
)
def test_bad_serve_options(flags, env, message):
    with pytest.raises(ConfigError, match=message):
        serve_config(flags, env)


TRANSPORT = {
    "host": "::1",
    "port": "1234",
    "token": "t0k",
    "grace_seconds": "5",
    "drain_announce_seconds": "1",
    "stream_idle_seconds": "7",
}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TLS_CERT": "cert.pem"}, "--tls-cert and --tls-key go together"),
        ({"TOKEN": "t0k\n"}, "--token: the token contains '\\n' at its end"),
        ({"TOKEN": " "}, "--token: an empty token"),
        ({"PORT": "70000"}, "--port (from $*PORT): 70000 is above the maximum 65535"),
        (
            {"STREAM_IDLE_SECONDS": "0"},
            "--stream-idle-seconds (from $*STREAM_IDLE_SECONDS): 0.0 is below the minimum 0.1",
        ),
    ],
)
def test_both_servers_share_one_transport(tmp_path, env, message):
    """ServeConfig and ValidatorServerConfig listen, authenticate and drain through one
    ServerTransport: same fields, each read from its server's own environment prefix, refused
    by the same rules in the same words."""
    from common.server_config import ServerTransport
    from validator.config import SERVE_ENV_PREFIX as VALIDATOR_PREFIX
    from validator.config import ValidatorServerConfig

    servers = (
        (ServeConfig, SERVE_ENV_PREFIX, {"model": str(tmp_path)}),
        (
            ValidatorServerConfig,
            VALIDATOR_PREFIX,
            {"data_roots": str(tmp_path), "output_root": str(tmp_path)},
        ),
    )
    for cls, prefix, required in servers:
        assert issubclass(cls, ServerTransport)
        config = resolve(
            cls, required, env={prefix + k.upper(): v for k, v in TRANSPORT.items()}, prefix=prefix
        )
        assert (
            config.host,
            config.port,
            config.token,
            config.grace_seconds,
            config.drain_announce_seconds,
            config.stream_idle_seconds,
        ) == ("::1", 1234, "t0k", 5.0, 1.0, 7.0)
        assert config.for_log()["token"] == "<set>" and "t0k" not in repr(config)
        with pytest.raises(ConfigError) as err:
            resolve(cls, required, env={prefix + k: v for k, v in env.items()}, prefix=prefix)
        assert str(err.value).startswith(message.replace("*", prefix)), str(err.value)


def test_client_config_range_must_fit_64_bits():
    with pytest.raises(ConfigError, match="64 bits"):
        resolve(
            ClientConfig,
            {"target": "h:1", "seed": "1", "count": "2", "start_index": str(2**64 - 1), "out": "o"},
            env={},
            prefix=CLIENT_ENV_PREFIX,
        )


def test_info_and_client_modules_in_real_processes(make_server, tmp_path):
    _, target = make_server()
    info = subprocess.run(
        [sys.executable, "-m", "serving", "info", "--target", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["latent_dim"] == 16
    out = tmp_path / "imgs"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.client",
            "--target",
            target,
            "--seed",
            "4",
            "--count",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "5 images written, 0 already present" in run.stdout
    assert len(list(out.glob("*.png"))) == 5
