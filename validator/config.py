"""The validator's configuration, validated in one place per class through
:func:`common.config.resolve` (flags, then environment variables, then defaults):

- :class:`RunSettings`: how a validation runs (feature model, checks, thresholds, cache, ...);
  given per run to ``validate`` and, to ``serve``, as the settings of every request;
- :class:`ValidateConfig`: one run, ``python -m validator validate`` (``DERMSYNTH_VALIDATE_*``)
  or one Validate call of the server (:func:`validator.service.request_to_config` resolves the
  request's values through the same class, so every range and rule applies to both);
- :class:`ValidatorServerConfig`: ``python -m validator serve`` (``DERMSYNTH_VALIDATOR_SERVE_*``):
  the transport shared with the generator (:class:`common.server_config.ServerTransport`), the
  run settings, and the server's own limits and roots.

The gate's limits are :mod:`validator.thresholds`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from common.config import ConfigError, OptionError, option, resolve
from common.feature_model import EXPORT_COMMAND
from common.server_config import ServerTransport, check_token, idle_option, port_option

ENV_PREFIX = "DERMSYNTH_VALIDATE_"
SERVE_ENV_PREFIX = "DERMSYNTH_VALIDATOR_SERVE_"
DEFAULT_CHECKS = (
    "dcr",
    "nndr",
    "data_copying",
    "holdout_share",
    "fid",
    "kid",
    "prdc",
    "c2st",
    "swd",
    "colour",
    "pixel_c2st",
)
SHOWN_NAME = 40  # most characters of an unknown check name quoted in an error message


def _default_cache() -> Path:
    return Path.home() / ".cache" / "dermsynth" / "features"


def _shown(name: str) -> str:
    return name if len(name) <= SHOWN_NAME else name[: SHOWN_NAME - 3] + "..."


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a validation runs, apart from what it reads and writes: per run for ``validate``;
    for ``serve``, the settings of every request (a request may only pick its checks,
    thresholds file and t-SNE on top)."""

    OPTIONS_TITLE: ClassVar[str] = "run settings (serve: applied to every request)"

    features_model: Path | None = field(
        default=None, metadata=option(f"Xception ONNX file from `{EXPORT_COMMAND}` (required)")
    )
    checks: tuple[str, ...] = field(
        default=DEFAULT_CHECKS,
        metadata=option("comma-separated checks to run (serve: when a request names none)"),
    )
    thresholds: Path | None = field(
        default=None,
        metadata=option(
            "JSON or TOML file of gate thresholds (the fields of Thresholds in "
            "validator/thresholds.py; serve: when a request names none)"
        ),
    )
    allow_random_weights: bool = field(
        default=False,
        metadata=option(
            "with a random-weight Xception and no weight-free quality check (swd, colour, "
            "pixel_c2st) run, accept a verdict without quality evidence (privacy-only runs, "
            "tests); serve: without it, a request asking for that is refused (PERMISSION_DENIED)"
        ),
    )
    generator_token: str | None = field(
        default=None,
        repr=False,
        metadata=option(
            "bearer token sent to the generation server (--from-server; serve: the allowed "
            "targets); better set as {env}. validate: $DERMSYNTH_CLIENT_TOKEN when neither is set. "
            "Never saved in config.json"
        ),
    )
    generator_tls_ca: Path | None = field(
        default=None,
        metadata=option(
            "PEM root certificate: reach the generation server over TLS, trusting this CA"
        ),
    )
    cache_dir: Path = field(
        default_factory=_default_cache, metadata=option("feature cache directory")
    )
    cache: bool = field(
        default=True,
        metadata=option(
            "read and write the feature cache and the image cache (--no-cache: neither; images "
            "are then prepared into a temporary folder)"
        ),
    )
    image_cache_dir: Path | None = field(
        default=None,
        metadata=option(
            "cache of resized images shared with the trainer (content-addressed: file sha256 + "
            "size + crop/resize policy; default $DERMSYNTH_CACHE_DIR, else "
            "$XDG_CACHE_HOME/dermsynth, else ~/.cache/dermsynth)"
        ),
    )
    prep_workers: int = field(
        default=0,
        metadata=option(
            "processes reading, hashing and resizing the image files; 0 = all cores", minimum=0
        ),
    )
    batch_size: int = field(
        default=32, metadata=option("feature batch size", minimum=1, maximum=1024)
    )
    pixel_size: int = field(
        default=64,
        metadata=option(
            "side in px of the images kept for pixel-space checks and thumbnails",
            minimum=16,
            maximum=256,
        ),
    )
    tsne: bool = field(default=True, metadata=option("draw the t-SNE views"))
    threads: int = field(
        default=0, metadata=option("ONNX Runtime threads (0: its default)", minimum=0)
    )
    blas_threads: int = field(
        default=1,
        metadata=option(
            "BLAS threads for the checks and views (0: the library default). 1 by default: the "
            "matrices are small, and multi-threaded OpenBLAS can stall badly on a CPU shared with "
            "other work",
            minimum=0,
        ),
    )
    memory_mb: int = field(
        default=1024,
        metadata=option(
            "MiB of working memory of each check and view (the chunks of nearest neighbours, "
            "dcr's pixel views, prdc, PCA, c2st, k-means; the weight-free checks compare a "
            "stated subsample beyond it): bounds them whatever the set sizes. The features "
            "and pixels stay on disk, in a scratch folder in --out removed at the end (N x "
            "(8 KiB + pixel-size^2 x 3 bytes)), read a chunk at a time; one value per image "
            "and the d x d covariances come on top (validator/budget.py states the rule)",
            minimum=16,
        ),
    )

    def validate(self) -> None:
        """Known, non-empty checks; a generator token a server can accept."""
        from validator import checks as registry  # the catalog only: no check module loads

        known = registry.names()
        unknown = [c for c in self.checks if c not in known]
        if unknown or not self.checks:
            shown = ", ".join(_shown(c) for c in unknown[:3]) + (", ..." if unknown[3:] else "")
            raise OptionError(
                "checks", f"unknown {shown or '(none given)'}; choose from {', '.join(known)}"
            )
        check_token(self.generator_token, "--generator-token")

    def run_settings(self) -> dict:
        """The values of the :class:`RunSettings` fields, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RunSettings)}


@dataclass(frozen=True, kw_only=True)
class ValidateConfig(RunSettings):
    """One validation run: ``python -m validator validate``, or one Validate call of the server.
    :meth:`validate` (run by :func:`common.config.resolve`) is the one place its rules live.
    Keyword arguments only."""

    ENV_PREFIX: ClassVar[str] = ENV_PREFIX

    real: Path | None = field(
        default=None,
        metadata=option(
            "the real training set (isic-cli, isic-challenge or plain folder) (required)"
        ),
    )
    holdout: Path | None = field(
        default=None,
        metadata=option("held-out real images NOT used in training: the privacy baseline"),
    )
    synthetic: Path | None = field(default=None, metadata=option("folder of synthetic images"))
    from_server: str | None = field(
        default=None,
        metadata=option(
            "HOST:PORT of a dermsynth generation server to fetch the synthetic set from"
        ),
    )
    seed: int = field(
        default=0, metadata=option("seed for --from-server and the checks", minimum=0)
    )
    count: int = field(default=0, metadata=option("images to fetch with --from-server", minimum=0))
    model_dir: Path | None = field(
        default=None,
        metadata=option("generator model directory whose model.json goes into the report"),
    )
    benign_malignant: str | None = field(
        default=None,
        metadata=option(
            "filter the real sets by this benign_malignant value", choices=("benign", "malignant")
        ),
    )
    diagnosis: str | None = field(
        default=None,
        metadata=option("filter the real sets by this diagnosis (e.g. nevus, melanoma)"),
    )
    out: Path | None = field(default=None, metadata=option("report directory (required)"))
    turing_results: Path | None = field(
        default=None,
        metadata=option(
            "attach a visual Turing test's results (the JSON of `python -m validator turing "
            "results --json`) to the report; shown, never part of the verdict"
        ),
    )
    progress: bool = field(default=True, metadata=option("show progress bars"))

    def validate(self) -> None:
        """What a run needs before any work: the run settings' rules, then its inputs."""
        RunSettings.validate(self)
        if self.real is None:
            raise OptionError(
                "real",
                "required (the real training set)",
                message="--real is required (the real training set)",
            )
        if self.out is None:
            raise OptionError(
                "out",
                "required (the report directory)",
                message="--out is required (the report directory)",
            )
        if self.features_model is None:
            raise OptionError(
                "features_model",
                "required",
                message=f"--features-model is required (make one with `{EXPORT_COMMAND}`)",
            )
        if (self.synthetic is None) == (self.from_server is None):
            raise OptionError(
                "synthetic",
                "give exactly one of a synthetic folder or a generation server",
                message="give exactly one of --synthetic DIR or --from-server HOST:PORT",
            )
        if self.from_server is not None and self.count < 1:
            raise OptionError(
                "count",
                "must be >= 1 to fetch from a generation server",
                message="--from-server needs --count N (N >= 1) and --seed S",
            )

    def replace(self, **changes) -> ValidateConfig:
        """This config with ``changes``, validated again like any other."""
        return resolve(type(self), {**_values(self), **changes}, env={})

    def for_saving(self) -> ValidateConfig:
        """This config without its secrets: what goes into ``config.json`` and logs."""
        return dataclasses.replace(self, generator_token=None)


def _values(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


@dataclass(frozen=True, kw_only=True)
class ValidatorServerConfig(ServerTransport, RunSettings):
    """``python -m validator serve``: how it listens (:class:`ServerTransport`, as the
    generator), the settings of every request (:class:`RunSettings`), and its own limits.

    Every path a request names must lie, after symlinks, inside one of ``data_roots`` (inputs)
    or inside ``output_root`` (the report folder); generator targets must be listed in
    ``allowed_targets``. See :mod:`validator.roots`. Keyword arguments only.
    """

    ENV_PREFIX: ClassVar[str] = SERVE_ENV_PREFIX

    port: int = port_option(50052)
    stream_idle_seconds: float = idle_option(60.0)
    data_roots: tuple[Path, ...] = field(
        default=(),
        metadata=option(
            "folder the requests may read (real, holdout, synthetic sets, model dirs, thresholds "
            "files); repeat --data-root for more than one",
            flag=False,
        ),
    )
    output_root: Path | None = field(
        default=None,
        metadata=option(
            "folder under which requests' report folders (out_dir) are created (required)"
        ),
    )
    max_workers: int = field(
        default=2,
        metadata=option(
            "validations run at once; a call beyond them gets RESOURCE_EXHAUSTED",
            minimum=1,
            maximum=64,
        ),
    )
    allowed_targets: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "generation servers (HOST:PORT) requests may fetch from; repeat --allowed-target; "
            "none: requests may not use a generator",
            flag=False,
        ),
    )
    max_count: int = field(
        default=10_000,
        metadata=option(
            "most images one request may fetch from a generation server",
            minimum=1,
            maximum=1_000_000,
        ),
    )

    def validate(self) -> None:
        """The transport's and the run settings' rules, then checks that touch the file
        system."""
        ServerTransport.validate(self)
        RunSettings.validate(self)
        if not self.data_roots:
            raise ConfigError("--data-root is required: the folder(s) requests may read")
        for root in self.data_roots:
            if not root.is_dir():
                raise ConfigError(f"--data-root {root}: not a directory")
        if self.output_root is None:
            raise ConfigError("--output-root is required: the folder report folders go in")
        if not self.output_root.is_dir():
            raise ConfigError(
                f"--output-root {self.output_root}: not a directory (create it first)"
            )
        for target in self.allowed_targets:
            host, sep, port = target.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(f"--allowed-target {target!r}: expected HOST:PORT")
        for name, path in (
            ("--generator-tls-ca", self.generator_tls_ca),
            ("--thresholds", self.thresholds),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a file")
