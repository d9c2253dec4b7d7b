"""``python -m trainer train|export|export-xception``: see trainer/cli.py."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common.cli import run_cli
from trainer.cli import main

sys.exit(run_cli(main, prog="trainer"))
