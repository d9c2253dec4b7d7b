"""``python -m serving serve|health|info``: argument parsing only; the work is in server.py and
health.py. Exit codes: 0 ok, 1 unhealthy / server error, 2 bad usage or an unusable model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc

from common.config import add_arguments, resolve
from common.errors import UserError
from serving.channel import describe_rpc_error
from serving.config import SERVE_ENV_PREFIX, ServeConfig
from serving.health import check_health, get_model_info
from serving.model_info import model_info_dict

EPILOG = """examples:
  python -m serving serve --model models/demo --port 50051     # listens on 127.0.0.1
  DERMSYNTH_SERVE_TOKEN=s3cret python -m serving serve --model models/demo --port 50051 \\
      --host 0.0.0.0 --tls-cert server.crt --tls-key server.key --metrics-port 9464
  python -m serving health --target localhost:50051      # exit 0 iff SERVING
  python -m serving info --target localhost:50051        # the served model's manifest (JSON)
  python -m serving.client --target localhost:50051 --seed 42 --count 1000 --out out/seed42

Every serve option can also be set as DERMSYNTH_SERVE_<OPTION> (e.g. DERMSYNTH_SERVE_MAX_STREAMS);
flags win over the environment. Health checks and GetModelInfo have threads of their own, so
they are answered however many streams run; a stream whose client stops reading is cancelled
after --stream-idle-seconds. On SIGTERM health turns NOT_SERVING for --drain-announce-seconds,
then the listener closes and running streams get --grace-seconds to finish.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="dermsynth generation server (gRPC)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve a model directory over gRPC",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(serve, ServeConfig)
    for name, text in (
        ("health", "exit 0 iff the server's gRPC health check says SERVING"),
        ("info", "print the served model's manifest (GetModelInfo) as JSON"),
    ):
        p = sub.add_parser(
            name, help=text, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.add_argument("--target", required=True, help="server address HOST:PORT")
        p.add_argument("--tls-ca", type=Path, help="PEM root certificate: connect with TLS")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds (default: 5)")
        if name == "health":
            p.add_argument(
                "--service", default="", help="service to check (default: '', the whole server)"
            )
        else:
            p.add_argument(
                "--token",
                default=os.environ.get("DERMSYNTH_CLIENT_TOKEN"),
                help="bearer token (default: $DERMSYNTH_CLIENT_TOKEN)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from serving.server import serve  # imports onnxruntime; keep probes light

        values = {k: v for k, v in vars(args).items() if k != "command"}
        return serve(resolve(ServeConfig, values, prefix=SERVE_ENV_PREFIX))
    if args.command == "health":
        status = check_health(
            args.target, service=args.service, timeout=args.timeout, root_cert=args.tls_ca
        )
        print(status)
        return 0 if status == "SERVING" else 1
    try:
        info = get_model_info(
            args.target, token=args.token, timeout=args.timeout, root_cert=args.tls_ca
        )
    except grpc.RpcError as exc:
        raise UserError(
            f"GetModelInfo on {args.target} failed: {describe_rpc_error(exc)}"
        ) from None
    json.dump(model_info_dict(info), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0
