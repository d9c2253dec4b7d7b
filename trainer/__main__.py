"""``python -m trainer train|export``: see trainer/cli.py."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common.cli import run_cli  # noqa: E402
from trainer.cli import main  # noqa: E402

sys.exit(run_cli(main, prog="trainer"))
