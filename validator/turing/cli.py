"""``python -m validator turing serve|results``: run a visual Turing test and read its results.

Light at import time (argparse and the config only); the web stack, NumPy and SciPy are
imported by the command that runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.config import add_arguments, resolve
from common.errors import UserError
from validator.turing.config import ENV_PREFIX, TuringServeConfig

EPILOG = f"""\
examples:
  # create a study of 100 images per rater (50 real, 50 synthetic) and serve it
  export {ENV_PREFIX}TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')
  python -m validator turing serve --study release-1.2 --db turing.sqlite \\
      --real data/holdout --synthetic out/seed42 --per-rater 100 --port 8080
  # open http://127.0.0.1:8080/admin, sign in with the token, make one link per rater
  # later: resume the same study (the folders, when given, must be unchanged)
  python -m validator turing serve --study release-1.2 --db turing.sqlite
  # the statistics, as JSON (for the release bundle) and the raw answers as CSV
  python -m validator turing results --study release-1.2 --db turing.sqlite --json \\
      --csv answers.csv > turing.json
"""


def add_parsers(sub) -> None:
    turing = sub.add_parser(
        "turing",
        help="visual Turing test: experts tell real from synthetic images in a browser",
        description="A web app in which experts tell real from synthetic images, and the "
        "statistics of their answers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = turing.add_subparsers(dest="turing_command", required=True)
    serve = commands.add_parser(
        "serve",
        help="create or resume a study and serve it",
        description="Create (first run) or resume a study and serve the rater and admin pages. "
        f"Every option also reads {ENV_PREFIX}<OPTION> from the environment.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(serve, TuringServeConfig)
    serve.set_defaults(run=run_serve)
    results = commands.add_parser(
        "results",
        help="the statistics of a study (accuracy, CI, binomial test, kappa, ...)",
        description="Print the results of a study: a summary, or --json; --csv writes answers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    results.add_argument("--study", required=True, help="the study's name")
    results.add_argument(
        "--db", type=Path, default=Path("turing.sqlite"), help="the study database"
    )
    results.add_argument("--json", action="store_true", help="print the results as JSON")
    results.add_argument("--csv", type=Path, metavar="FILE", help="write every answer as CSV")
    results.set_defaults(run=run_results)


def run_serve(args: argparse.Namespace) -> int:
    config = resolve(TuringServeConfig, args, prefix=ENV_PREFIX)
    token = config.admin_token()
    from validator.turing.server import serve

    return serve(config, token)


def run_results(args: argparse.Namespace) -> int:
    from common.config import atomic_write_text
    from validator.turing.app import results_of
    from validator.turing.stats import csv_text
    from validator.turing.store import Store
    from validator.turing.study import check_name

    check_name(args.study)
    if not args.db.is_file():
        raise UserError(f"--db {args.db}: no such file")
    store = Store(args.db)
    study = store.study(args.study)
    if study is None:
        raise UserError(f"--study {args.study!r}: no such study in {args.db}")
    doc = results_of(store, study)
    if args.csv is not None:
        atomic_write_text(args.csv, csv_text(store.answers(study.name)))
        print(f"answers: {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"study {study.name}: {doc['summary']}")
    for key in ("sensitivity", "specificity"):
        p = doc[key]
        if p["value"] is not None:
            print(f"  {key}: {100 * p['value']:.1f} % ({p['k']}/{p['n']})")
    kappa = doc["fleiss_kappa"]
    if kappa and kappa["value"] is not None:
        print(f"  Fleiss' kappa: {kappa['value']:.3f} ({kappa['raters']} raters)")
    return 0
