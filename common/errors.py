"""Errors a CLI reports as one line and an exit code. Raised anywhere; turned into a message
and an exit code only by :func:`common.cli.run_cli`."""


class ReportedError(Exception):
    """An expected failure, reported as a message without a traceback; exits ``exit_code``."""

    exit_code = 1


class UserError(ReportedError):
    """Bad input or usage that the user can fix: exit 2."""

    exit_code = 2


class ConfigError(UserError):
    """An option is unknown, of the wrong type, or out of range."""
