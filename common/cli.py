"""The one place where errors become exit codes: every service's CLI runs through here."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from common.errors import ReportedError


def run_cli(
    main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *, prog: str
) -> int:
    """Call ``main(argv)`` and turn what it raises into a message on stderr and an exit code.

    ReportedError -> its exit_code (UserError, bad input or usage: 2; a failure such as a
    broken-off fetch: 1); KeyboardInterrupt -> 130.
    Anything else propagates with its traceback: that is a bug, not a user mistake.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return main(argv)
    except ReportedError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
