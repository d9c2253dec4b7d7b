"""User-facing errors. Raised anywhere; turned into a message and an exit code only by a CLI."""


class UserError(Exception):
    """Bad input or usage that the user can fix. CLIs print the message and exit with code 2."""

    exit_code = 2


class ConfigError(UserError):
    """An option is unknown, of the wrong type, or out of range."""
