"""The release gate's limits: :class:`Thresholds` (privacy and quality limits, each with its
calibration note) and :func:`load_thresholds` (defaults, then a ``--thresholds`` JSON or TOML
file, then overrides; unknown keys and ill-typed or out-of-range values are refused through
:func:`common.config.from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, from_dict, option


@dataclass(frozen=True)
class Thresholds:
    """Release-gate limits. ``None`` for a quality limit means "report only"."""

    # privacy: distance to closest record (validator.checks.dcr). Per-image conformal p-values
    # against the real baseline, Bonferroni over the 2 spaces, Benjamini-Hochberg over images.
    # Calibration (bench/privacy_calibration.py, isic-sample, random-weight Xception 71 px,
    # 30 random splits x 100 unseen real images as "synthetic", train 200) at 30 / 60 / 100
    # held-out images: flagged 0 / 0 / 1 of 3000 (real-vs-real in-run estimate: 0 of 900 /
    # 1800 / 3000); p <= dcr_quantile: 0.67 % / 0.47 % / 0.80 % (nominal 1 %); dcr FAILed
    # 0 / 0 / 1 of 30 splits. Planted copies (exact, JPEG q70, mirror, 90 % crop, jitter):
    # 100 % flagged at every size, also 5 copies among 100 unseen images. Without a held-out
    # set (leave-one-out baseline): p <= 0.01 for 1.8 %, dcr FAILed 1 of 40 splits.
    dcr_fdr: float = field(
        default=0.05,
        metadata=option(
            "false-discovery rate of the per-image near-copy flags (Benjamini-Hochberg over the "
            "synthetic images; a sample of the real distribution gets any flag with probability "
            "at most this)",
            minimum=0.0,
            maximum=0.5,
        ),
    )
    dcr_quantile: float = field(
        default=0.01,
        metadata=option(
            "nominal per-image rate reported as 'close': synthetic images whose p-value (both "
            "spaces, Bonferroni) is at most this; unseen real images come out at most this",
            minimum=0.0,
            maximum=0.5,
        ),
    )
    dcr_max_flagged_fraction: float = field(
        default=0.0,
        metadata=option(
            "dcr fails when more than this fraction of synthetic images is flagged as a near-copy "
            "(0: any flagged image fails)",
            minimum=0.0,
            maximum=1.0,
        ),
    )
    dcr_pixel_size: int = field(
        default=16,
        metadata=option("side in px of the pixel-space representation", minimum=4, maximum=64),
    )
    dcr_zooms: tuple[float, ...] = field(
        default=(1.0, 0.9, 0.8),
        metadata=option(
            "centre-crop fractions of each real image compared (robustness to crops)",
            minimum=0.3,
            maximum=1.0,
        ),
    )
    dcr_vertical_mirror: bool = field(
        default=True,
        metadata=option("also compare against vertically mirrored real images (horizontal always)"),
    )
    # privacy: nearest-neighbour distance ratio (validator.checks.nndr)
    nndr_max_ratio: float = field(
        default=0.2,
        metadata=option(
            "a flagged synthetic image whose 1st/2nd nearest real distance ratio is at most this "
            "is a likely copy of one image; nndr fails on any",
            minimum=0.0,
            maximum=1.0,
        ),
    )
    # privacy: data-copying test (validator.checks.data_copying)
    data_copying_z: float = field(
        default=-3.0,
        metadata=option("data_copying fails when the cell-averaged Z_U is below this", maximum=0.0),
    )
    data_copying_cells: int = field(
        default=0,
        metadata=option(
            "k-means cells on the training set (0: min(20, n_holdout // 20), at least 1)", minimum=0
        ),
    )
    require_holdout: bool = field(
        default=True,
        metadata=option(
            "without --holdout the data-copying and holdout-share tests cannot run: FAIL (true) "
            "or accept (false)"
        ),
    )
    # privacy: holdout-based share (validator.checks.holdout_share). Calibration (as above,
    # 90 splits): the lower bound on unseen real images reached at most 0.58 (95th percentile
    # 0.51), hence a margin of 0.1: 0 false FAILs; with 100 planted copies among 100 unseen
    # images it failed in 12 / 13 / 24 of 30 splits at 30 / 60 / 100 held-out images (the
    # single copies are dcr's job).
    holdout_share_alpha: float = field(
        default=0.05,
        metadata=option(
            "one-sided level of the binomial lower confidence bound of the share (Bonferroni over "
            "the 2 spaces)",
            minimum=0.0,
            maximum=0.5,
        ),
    )
    holdout_share_margin: float = field(
        default=0.1,
        metadata=option(
            "holdout_share fails when the lower confidence bound of the size-adjusted share of "
            "synthetic images closer to a training than to a held-out image exceeds 0.5 + this",
            minimum=0.0,
            maximum=0.5,
        ),
    )
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
    c2st_max_auc: float | None = field(
        default=0.9,
        metadata=option(
            "classifier two-sample AUC above this fails (1.0: synthetic forms its own cluster)"
        ),
    )
    c2st_folds: int = field(default=5, metadata=option("cross-validation folds", minimum=2))
    c2st_pca: int = field(
        default=50, metadata=option("PCA components before the classifier", minimum=1)
    )
    c2st_max_per_set: int = field(
        default=10000,
        metadata=option(
            "at most this many images per set enter the two-sample test (a seeded random "
            "subsample beyond it, stated in the result): bounds its time; --memory-mb bounds "
            "its memory",
            minimum=10,
        ),
    )
    # weight-free quality (validator.checks.swd, colour, pixel_c2st): pixels only, meaningful
    # without pretrained weights. Each statistic of m real vs m synthetic images is reported
    # beside its real-vs-real spread (disjoint random m-subsets of the real set) and decided by
    # z = (value - mean) / sd of its permutation null (random m-subsets of real and synthetic
    # pooled): a check fails when any of its deciding z-scores exceeds its limit. The limits are
    # calibrated on real-vs-real splits: bench/weight_free_calibration.py.
    swd_splits: int = field(
        default=20,
        metadata=option(
            "random splits for each swd spread and null (each costs about 25 ms)",
            minimum=3,
            maximum=1000,
        ),
    )
    colour_splits: int = field(
        default=50,
        metadata=option(
            "random splits for each colour spread and null (each costs about 1 ms)",
            minimum=3,
            maximum=1000,
        ),
    )
    pixel_c2st_splits: int = field(
        default=50,
        metadata=option(
            "random splits for each pixel_c2st spread and null (each costs about 1 ms)",
            minimum=3,
            maximum=1000,
        ),
    )
    swd_max_z: float | None = field(
        default=5.0,
        metadata=option(
            "swd fails when the sliced Wasserstein distance of any pyramid level lies more than "
            "this many standard deviations of its permutation null above the null's mean"
        ),
    )
    colour_max_z: float | None = field(
        default=5.5,
        metadata=option(
            "colour fails when the CIELAB distance of any channel or the background colour "
            "difference lies more than this many null standard deviations above the null's mean"
        ),
    )
    pixel_c2st_max_z: float | None = field(
        default=3.0,
        metadata=option(
            "pixel_c2st fails when the classifier AUC lies more than this many null standard "
            "deviations above the null's mean"
        ),
    )


MAX_THRESHOLDS_BYTES = 64 * 1024  # largest thresholds file a gRPC request may name


def load_thresholds(
    path: Path | None, overrides: dict | None = None, *, quiet: bool = False
) -> Thresholds:
    """Defaults, then a JSON or TOML file (``.toml`` by suffix, else JSON), then ``overrides``.

    ``quiet`` (the gRPC service): error messages name the file's problem and the option, never
    a value or an unknown key from the file (it may not be a thresholds file at all), and the
    file may be at most :data:`MAX_THRESHOLDS_BYTES`.
    """
    data: dict = {}
    where = "thresholds file" if quiet else f"--thresholds {path}"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{where}: no such file")
        if quiet and path.stat().st_size > MAX_THRESHOLDS_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_THRESHOLDS_BYTES} bytes")
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            detail = "" if quiet else f": {exc}"
            raise ConfigError(f"{where}: not valid {path.suffix or 'JSON'}{detail}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table of limits")
    data.update(overrides or {})
    data = {k: ("none" if v is None else v) for k, v in data.items()}  # null disables a limit
    if quiet:
        return _load_quietly(data, where)
    try:
        return from_dict(Thresholds, data)
    except ConfigError as exc:
        raise ConfigError(f"thresholds{' ' + str(path) if path else ''}: {exc}") from None


def _load_quietly(data: dict, where: str) -> Thresholds:
    known = {f.name for f in dataclasses.fields(Thresholds)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            f"{where}: {len(unknown)} unknown key(s); known keys are the fields "
            "of Thresholds in validator/thresholds.py"
        )
    for key, value in data.items():  # find the bad value without quoting it
        try:
            from_dict(Thresholds, {key: value})
        except ConfigError:
            raise ConfigError(
                f"{where}: {key}: not a valid value (of the right type, within its limits)"
            ) from None
    return from_dict(Thresholds, data)
