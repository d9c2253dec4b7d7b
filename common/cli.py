"""The one place where errors become exit codes: every service's CLI runs through here."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from common.errors import UserError


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None,
            *, prog: str) -> int:
    """Call ``main(argv)`` and turn what it raises into a message on stderr and an exit code.

    UserError (bad input or usage) -> its exit_code (2); KeyboardInterrupt -> 130.
    Anything else propagates with its traceback: that is a bug, not a user mistake.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
