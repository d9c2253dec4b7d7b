"""``python -m serving serve|health|info``; see serving/cli.py."""

import sys

from common.cli import run_cli
from serving.cli import main

sys.exit(run_cli(main, prog="serving"))
