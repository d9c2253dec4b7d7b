"""``python -m validator validate|serve|list-checks``."""

import sys

from common.cli import run_cli
from validator.cli import main

sys.exit(run_cli(main, prog="python -m validator"))
