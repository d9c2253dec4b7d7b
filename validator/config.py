"""The validator's configuration: :class:`ValidateConfig` (flags, then ``DERMSYNTH_VALIDATE_*``
environment variables, then defaults, via :mod:`common.config`) and :class:`Thresholds` (the
release gate's limits, from a ``--thresholds`` JSON or TOML file; unknown keys are refused).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, from_dict, option

ENV_PREFIX = "DERMSYNTH_VALIDATE_"
DEFAULT_CHECKS = ("dcr", "nndr", "data_copying", "fid", "kid", "prdc", "c2st")


def _default_cache() -> Path:
    return Path.home() / ".cache" / "dermsynth" / "features"


@dataclass(frozen=True)
class Thresholds:
    """Release-gate limits. ``None`` for a quality limit means "report only"."""
    # privacy: distance to closest record (validator.checks.dcr)
    dcr_quantile: float = field(default=0.01, metadata=option(
        "flag synthetic images closer to the training set than this quantile of the baseline "
        "(held-out -> train, or leave-one-out real -> real)", minimum=0.0, maximum=0.5))
    dcr_max_flagged_fraction: float = field(default=0.03, metadata=option(
        "dcr fails when more than this fraction of synthetic images is flagged (in feature OR "
        "pixel space; a sample of the real distribution is flagged at up to 2 x dcr_quantile)",
        minimum=0.0, maximum=1.0))
    dcr_pixel_size: int = field(default=16, metadata=option(
        "side in px of the pixel-space representation", minimum=4, maximum=64))
    dcr_zooms: tuple[float, ...] = field(default=(1.0, 0.9, 0.8), metadata=option(
        "centre-crop fractions of each real image compared (robustness to crops)",
        minimum=0.3, maximum=1.0))
    dcr_vertical_mirror: bool = field(default=True, metadata=option(
        "also compare against vertically mirrored real images (horizontal always)"))
    # privacy: nearest-neighbour distance ratio (validator.checks.nndr)
    nndr_max_ratio: float = field(default=0.2, metadata=option(
        "a flagged synthetic image whose 1st/2nd nearest real distance ratio is at most this "
        "is a likely copy of one image; nndr fails on any", minimum=0.0, maximum=1.0))
    # privacy: data-copying test (validator.checks.data_copying)
    data_copying_z: float = field(default=-3.0, metadata=option(
        "data_copying fails when the cell-averaged Z_U is below this", maximum=0.0))
    data_copying_cells: int = field(default=0, metadata=option(
        "k-means cells on the training set (0: min(20, n_holdout // 20), at least 1)",
        minimum=0))
    require_holdout: bool = field(default=True, metadata=option(
        "without --holdout the data-copying test cannot run: FAIL (true) or accept (false)"))
    # quality
    fid_max: float | None = field(default=None, metadata=option("FID above this fails"))
    kid_max: float | None = field(default=None, metadata=option("KID above this fails"))
    kid_subset_size: int = field(default=1000, metadata=option("KID subset size", minimum=2))
    kid_subsets: int = field(default=100, metadata=option("KID subsets", minimum=1))
    prdc_k: int = field(default=5, metadata=option("k of the k-NN balls", minimum=1))
    precision_min: float | None = field(default=0.5, metadata=option("precision below fails"))
    recall_min: float | None = field(default=None, metadata=option("recall below fails"))
    density_min: float | None = field(default=None, metadata=option("density below fails"))
    coverage_min: float | None = field(default=0.25, metadata=option("coverage below fails"))
    c2st_max_auc: float | None = field(default=0.9, metadata=option(
        "classifier two-sample AUC above this fails (1.0: synthetic forms its own cluster)"))
    c2st_folds: int = field(default=5, metadata=option("cross-validation folds", minimum=2))
    c2st_pca: int = field(default=50, metadata=option("PCA components before the classifier",
                                                      minimum=1))


def load_thresholds(path: Path | None, overrides: dict | None = None) -> Thresholds:
    """Defaults, then a JSON or TOML file (``.toml`` by suffix, else JSON), then ``overrides``."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--thresholds {path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--thresholds {path}: not valid {path.suffix or 'JSON'}: {exc}")
        if not isinstance(data, dict):
            raise ConfigError(f"--thresholds {path}: expected a table of limits")
    data.update(overrides or {})
    data = {k: ("none" if v is None else v) for k, v in data.items()}  # null disables a limit
    try:
        return from_dict(Thresholds, data)
    except ConfigError as exc:
        raise ConfigError(f"thresholds{' ' + str(path) if path else ''}: {exc}") from None


@dataclass(frozen=True)
class ValidateConfig:
    """One validation run (``validate``) or the validation server's defaults (``serve``)."""
    real: Path | None = field(default=None, metadata=option(
        "the real training set (isic-cli, isic-challenge or plain folder)"))
    holdout: Path | None = field(default=None, metadata=option(
        "held-out real images NOT used in training: the privacy baseline"))
    synthetic: Path | None = field(default=None, metadata=option("folder of synthetic images"))
    from_server: str | None = field(default=None, metadata=option(
        "HOST:PORT of a dermsynth generation server to fetch the synthetic set from"))
    seed: int = field(default=0, metadata=option("seed for --from-server and the checks",
                                                 minimum=0))
    count: int = field(default=0, metadata=option("images to fetch with --from-server",
                                                  minimum=0))
    model_dir: Path | None = field(default=None, metadata=option(
        "generator model directory whose model.json goes into the report"))
    benign_malignant: str | None = field(default=None, metadata=option(
        "filter the real sets by this benign_malignant value", choices=("benign", "malignant")))
    diagnosis: str | None = field(default=None, metadata=option(
        "filter the real sets by this diagnosis (e.g. nevus, melanoma)"))
    features_model: Path | None = field(default=None, metadata=option(
        "Xception ONNX file from `python -m validator export-xception`"))
    out: Path | None = field(default=None, metadata=option("report directory"))
    checks: tuple[str, ...] = field(default=DEFAULT_CHECKS, metadata=option(
        "comma-separated checks to run"))
    thresholds: Path | None = field(default=None, metadata=option(
        "JSON or TOML file of gate thresholds (see validator/config.py: Thresholds)"))
    allow_random_weights: bool = field(default=False, metadata=option(
        "let the gate PASS on features from a random-weight Xception (tests only)"))
    cache_dir: Path = field(default_factory=_default_cache, metadata=option(
        "feature cache directory"))
    no_cache: bool = field(default=False, metadata=option("do not read or write the cache"))
    batch_size: int = field(default=32, metadata=option("feature batch size", minimum=1,
                                                        maximum=1024))
    pixel_size: int = field(default=64, metadata=option(
        "side in px of the images kept for pixel-space checks and thumbnails", minimum=16,
        maximum=256))
    tsne: bool = field(default=True, metadata=option("draw the t-SNE views"))
    threads: int = field(default=0, metadata=option("ONNX Runtime threads (0: its default)",
                                                    minimum=0))
    blas_threads: int = field(default=1, metadata=option(
        "BLAS threads for the checks and views (0: the library default). 1 by default: the "
        "matrices are small, and multi-threaded OpenBLAS stalls badly (measured 60x slower) on "
        "a CPU shared with other work", minimum=0))
    progress: bool = field(default=True, metadata=option("show progress bars"))
    port: int = field(default=50052, metadata=option("serve: gRPC port (0: any free port)",
                                                     minimum=0, maximum=65535))
    max_workers: int = field(default=2, metadata=option("serve: concurrent validations",
                                                        minimum=1, maximum=64))

    def replace(self, **changes) -> "ValidateConfig":
        return dataclasses.replace(self, **changes)
