"""Command line of the validator: ``validate`` (exit 0 PASS, 1 FAIL, 2 bad usage or input),
``serve`` (the gRPC Validator service) and ``list-checks``. The feature model comes from the
trainer's ``python -m trainer export-xception`` (TensorFlow side)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.config import add_arguments, resolve
from common.errors import UserError
from validator import checks as registry
from validator.config import ENV_PREFIX, SERVE_ENV_PREFIX, ValidateConfig, ValidatorServerConfig

CLIENT_TOKEN_ENV = "DERMSYNTH_CLIENT_TOKEN"  # the fetch client's token, honoured by --from-server

# Sub-commands that live in their own modules. Each module is light to import (argparse only at
# module level) and exposes ``add_parsers(sub)``, which adds its parsers and sets ``run``
# (``args -> exit code``) as each parser's default.
EXTRA_COMMANDS: tuple[str, ...] = ("validator.turing.cli", "validator.release.cli")

EPILOG = """\
examples:
  # make the feature model once, where TensorFlow is installed (trainer image)
  python -m trainer export-xception --weights imagenet --size 299 --out models/xception.onnx
  # validate a folder of synthetic images against the training set and a held-out set
  python -m validator validate --real data/train --holdout data/holdout \\
      --synthetic out/samples --features-model models/xception.onnx --out reports/r1
  # fetch 500 images from a running generation server, then validate them
  python -m validator validate --real data/train --holdout data/holdout \\
      --from-server localhost:50051 --seed 1 --count 500 \\
      --features-model models/xception.onnx --out reports/r2 --checks dcr,nndr,c2st
  #   (a generation server with a token: DERMSYNTH_CLIENT_TOKEN or --generator-token)
  # serve validations over gRPC: requests may read only under --data-root and write reports
  # only under --output-root (paths in requests are paths on the server)
  DERMSYNTH_VALIDATOR_SERVE_TOKEN=s3cret python -m validator serve \\
      --features-model models/xception.onnx --data-root /data --output-root /reports \\
      --allowed-target localhost:50051

exit codes: 0 PASS, 1 FAIL, 2 bad usage or input. Every option of validate also reads
{prefix}<OPTION> from the environment (e.g. {prefix}CACHE_DIR); every option of serve
reads {serve_prefix}<OPTION> (e.g. {serve_prefix}DATA_ROOTS=/a,/b).
checks:
{checks}
"""


def _parser() -> argparse.ArgumentParser:
    checks = "\n".join(f"  {n:13s} {d}" for n, d in registry.describe().items())
    parser = argparse.ArgumentParser(
        prog="python -m validator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Release gate for synthetic dermoscopic images: privacy (nearest-"
        "neighbour) and quality checks on Xception features, with a report.",
        epilog=EPILOG.format(prefix=ENV_PREFIX, serve_prefix=SERVE_ENV_PREFIX, checks=checks),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text, cls in (
        ("validate", "validate a synthetic set; writes report.json/.html", ValidateConfig),
        ("serve", "serve the dermsynth.v1.Validator gRPC service", ValidatorServerConfig),
    ):
        p = sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=parser.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p, cls)
    serve = sub.choices["serve"]
    serve.add_argument(
        "--data-root",
        dest="data_roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder requests may read (real, holdout, "
        "synthetic sets, model dirs, thresholds files); repeat for more "
        "(required, at least one)",
    )
    serve.add_argument(
        "--allowed-target",
        dest="allowed_targets",
        action="append",
        metavar="HOST:PORT",
        help="a generation server requests may fetch from; repeat for more (default: none)",
    )
    sub.add_parser("list-checks", help="list the registered checks")
    for module in EXTRA_COMMANDS:
        importlib.import_module(module).add_parsers(sub)
    return parser


def _validate(config: ValidateConfig) -> int:
    from validator.pipeline import run_validation

    def say(stage, done, total, message):
        if message and (done == total or stage == "checks"):
            print(f"[{stage}] {message}", file=sys.stderr)

    outcome = run_validation(config, on_progress=say)
    model = outcome.report["feature_model"]
    if model["random_weights"]:
        print(
            "WARNING: features from a RANDOM-WEIGHT Xception: feature-space quality numbers "
            "are not meaningful (info)"
        )
    print(f"gate: {outcome.verdict.policy}")
    for r in outcome.results:
        state = outcome.verdict.status(r.name)
        print(
            f"  {r.name:13s} {state.upper() if state in ('fail', 'error') else state:5s} "
            f"{r.error or r.note}"
        )
    print(f"verdict: {outcome.verdict.decision}")
    for reason in outcome.verdict.reasons:
        print(f"  - {reason}")
    print(f"report: {outcome.report_html}")
    return 0 if outcome.verdict.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export-xception"]:
        raise UserError(
            "export-xception moved to the trainer (it needs TensorFlow): "
            "python -m trainer export-xception ..."
        )
    args = _parser().parse_args(argv)
    if getattr(args, "run", None) is not None:  # an EXTRA_COMMANDS sub-command
        return args.run(args)
    if args.command == "list-checks":
        for name, doc in registry.describe().items():
            print(f"{name:13s} {doc}")
        return 0
    if args.command == "serve":  # resolve() runs the config's validate(): the one place
        server_config = resolve(ValidatorServerConfig, args, prefix=SERVE_ENV_PREFIX)
        from validator.server import serve

        return serve(server_config)
    own_token = os.environ.get(ENV_PREFIX + "GENERATOR_TOKEN", "")
    if (
        args.generator_token is None
        and own_token.lower() in ("", "none")
        and os.environ.get(CLIENT_TOKEN_ENV)
    ):  # the fetch client's token, checked alike
        args.generator_token = os.environ[CLIENT_TOKEN_ENV]
    return _validate(resolve(ValidateConfig, args, prefix=ENV_PREFIX))
