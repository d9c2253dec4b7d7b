"""The config of ``python -m validator turing serve`` (``DERMSYNTH_TURING_*``), validated once:
flags win over the environment, which wins over the defaults (:mod:`common.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from common.config import ConfigError, option
from common.server_config import check_token

ENV_PREFIX = "DERMSYNTH_TURING_"
MAX_BODY_BYTES = 4096  # the largest request body accepted (forms are a few dozen bytes)


@dataclass(frozen=True, kw_only=True)
class TuringServeConfig:
    ENV_PREFIX: ClassVar[str] = ENV_PREFIX

    study: str = field(metadata=option("the study's name (letters, digits, . _ -)"))
    db: Path = field(
        default=Path("turing.sqlite"),
        metadata=option("the SQLite file holding the studies, their images and the answers"),
    )
    real: Path | None = field(
        default=None,
        metadata=option("folder of real images (needed to create the study; checked after)"),
    )
    synthetic: Path | None = field(
        default=None,
        metadata=option("folder of synthetic images (needed to create the study; checked after)"),
    )
    per_rater: int | None = field(
        default=None,
        metadata=option(
            "images each rater sees, half real and half synthetic, drawn once per study "
            "(default at creation: 100)",
            minimum=2,
            maximum=10000,
        ),
    )
    size: int | None = field(
        default=None,
        metadata=option(
            "side in px every image is shown at (default at creation: 256)",
            minimum=16,
            maximum=2048,
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=option("seed of the image draw and the raters' orders (default: random)"),
    )
    host: str = field(
        default="127.0.0.1",
        metadata=option("address to listen on (0.0.0.0: every interface; put TLS in front)"),
    )
    port: int = field(
        default=8080, metadata=option("HTTP port (0: any free port)", minimum=0, maximum=65535)
    )
    token: str | None = field(
        default=None,
        repr=False,
        metadata=option(
            "the admin token, needed to add raters and see results (better set as {env} or "
            "--token-file than as a flag)"
        ),
    )
    token_file: Path | None = field(
        default=None, metadata=option("a file holding the admin token (one line)")
    )

    def validate(self) -> None:
        if (self.token is None) == (self.token_file is None):
            raise ConfigError(
                f"set the admin token: ${ENV_PREFIX}TOKEN or --token-file (exactly one)"
            )
        if self.token is not None:
            check_token(self.token)
        if self.per_rater is not None and self.per_rater % 2:
            raise ConfigError(f"--per-rater {self.per_rater}: an even number (half real)")
        if (self.real is None) != (self.synthetic is None):
            raise ConfigError("give both --real and --synthetic, or neither to resume a study")

    def admin_token(self) -> str:
        """The token, read from --token-file when given (its line ending dropped)."""
        if self.token_file is None:
            return self.token or ""
        try:
            text = self.token_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {self.token_file}: cannot read it ({exc})") from None
        token = text.removesuffix("\n").removesuffix("\r")
        check_token(token, "--token-file")
        return token
