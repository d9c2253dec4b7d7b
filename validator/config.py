"""The validator's configuration: :class:`ValidateConfig` (one run: flags, then
``DERMSYNTH_VALIDATE_*`` environment variables, then defaults, via :mod:`common.config`),
:class:`ValidatorServerConfig` (``serve``: ``DERMSYNTH_VALIDATOR_SERVE_*``) and
:class:`Thresholds` (the release gate's limits, from a ``--thresholds`` JSON or TOML file;
unknown keys are refused).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, from_dict, option, to_dict

ENV_PREFIX = "DERMSYNTH_VALIDATE_"
SERVE_ENV_PREFIX = "DERMSYNTH_VALIDATOR_SERVE_"
DEFAULT_CHECKS = ("dcr", "nndr", "data_copying", "holdout_share", "fid", "kid", "prdc", "c2st",
                  "swd", "colour", "pixel_c2st")


def _default_cache() -> Path:
    return Path.home() / ".cache" / "dermsynth" / "features"


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
    dcr_fdr: float = field(default=0.05, metadata=option(
        "false-discovery rate of the per-image near-copy flags (Benjamini-Hochberg over the "
        "synthetic images; a sample of the real distribution gets any flag with probability "
        "at most this)", minimum=0.0, maximum=0.5))
    dcr_quantile: float = field(default=0.01, metadata=option(
        "nominal per-image rate reported as 'close': synthetic images whose p-value (both "
        "spaces, Bonferroni) is at most this; unseen real images come out at most this",
        minimum=0.0, maximum=0.5))
    dcr_max_flagged_fraction: float = field(default=0.0, metadata=option(
        "dcr fails when more than this fraction of synthetic images is flagged as a near-copy "
        "(0: any flagged image fails)", minimum=0.0, maximum=1.0))
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
        "without --holdout the data-copying and holdout-share tests cannot run: FAIL (true) "
        "or accept (false)"))
    # privacy: holdout-based share (validator.checks.holdout_share). Calibration (as above,
    # 90 splits): the lower bound on unseen real images reached at most 0.58 (95th percentile
    # 0.51), hence a margin of 0.1: 0 false FAILs; with 100 planted copies among 100 unseen
    # images it failed in 12 / 13 / 24 of 30 splits at 30 / 60 / 100 held-out images (the
    # single copies are dcr's job).
    holdout_share_alpha: float = field(default=0.05, metadata=option(
        "one-sided level of the binomial lower confidence bound of the share (Bonferroni over "
        "the 2 spaces)", minimum=0.0, maximum=0.5))
    holdout_share_margin: float = field(default=0.1, metadata=option(
        "holdout_share fails when the lower confidence bound of the size-adjusted share of "
        "synthetic images closer to a training than to a held-out image exceeds 0.5 + this",
        minimum=0.0, maximum=0.5))
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
    # weight-free quality (validator.checks.swd, colour, pixel_c2st): pixels only, meaningful
    # without pretrained weights. Each statistic of m real vs m synthetic images is reported
    # beside its real-vs-real spread (disjoint random m-subsets of the real set) and decided by
    # z = (value - mean) / sd of its permutation null (random m-subsets of real and synthetic
    # pooled): a check fails when any of its deciding z-scores exceeds its limit. The limits are
    # calibrated on real-vs-real splits: bench/weight_free_calibration.py.
    swd_splits: int = field(default=20, metadata=option(
        "random splits for each swd spread and null (each costs about 25 ms)",
        minimum=3, maximum=1000))
    colour_splits: int = field(default=50, metadata=option(
        "random splits for each colour spread and null (each costs about 1 ms)",
        minimum=3, maximum=1000))
    pixel_c2st_splits: int = field(default=50, metadata=option(
        "random splits for each pixel_c2st spread and null (each costs about 1 ms)",
        minimum=3, maximum=1000))
    swd_max_z: float | None = field(default=5.0, metadata=option(
        "swd fails when the sliced Wasserstein distance of any pyramid level lies more than this "
        "many standard deviations of its permutation null above the null's mean"))
    colour_max_z: float | None = field(default=5.5, metadata=option(
        "colour fails when the CIELAB distance of any channel or the background colour "
        "difference lies more than this many null standard deviations above the null's mean"))
    pixel_c2st_max_z: float | None = field(default=3.0, metadata=option(
        "pixel_c2st fails when the classifier AUC lies more than this many null standard "
        "deviations above the null's mean"))


def load_thresholds(path: Path | None, overrides: dict | None = None, *,
                    quiet: bool = False) -> Thresholds:
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


MAX_THRESHOLDS_BYTES = 64 * 1024


def _load_quietly(data: dict, where: str) -> Thresholds:
    known = {f.name for f in dataclasses.fields(Thresholds)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(f"{where}: {len(unknown)} unknown key(s); known keys are the fields "
                          "of Thresholds in validator/config.py")
    for key, value in data.items():  # find the bad value without quoting it
        try:
            from_dict(Thresholds, {key: value})
        except ConfigError:
            raise ConfigError(f"{where}: {key}: not a valid value (of the right type, within "
                              "its limits)") from None
    return from_dict(Thresholds, data)


@dataclass(frozen=True)
class ValidateConfig:
    """One validation run: ``python -m validator validate``, or one Validate call of the server
    (built by :func:`validator.service.request_to_config` from :class:`ValidatorServerConfig`
    and the request)."""
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
    generator_token: str | None = field(default=None, repr=False, metadata=option(
        "bearer token for --from-server (better $DERMSYNTH_VALIDATE_GENERATOR_TOKEN; "
        "$DERMSYNTH_CLIENT_TOKEN is used when neither is set). Never saved in config.json"))
    generator_tls_ca: Path | None = field(default=None, metadata=option(
        "PEM root certificate: reach --from-server over TLS, trusting this CA"))
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
        "with a random-weight Xception and no weight-free quality check (swd, colour, "
        "pixel_c2st) run, accept a verdict without quality evidence (privacy-only runs, tests)"))
    cache_dir: Path = field(default_factory=_default_cache, metadata=option(
        "feature cache directory"))
    cache: bool = field(default=True, metadata=option(
        "read and write the feature cache (--no-cache: neither)"))
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

    def replace(self, **changes) -> "ValidateConfig":
        return dataclasses.replace(self, **changes)

    def for_saving(self) -> "ValidateConfig":
        """This config without its secrets: what goes into ``config.json`` and logs."""
        return self.replace(generator_token=None)


@dataclass(frozen=True)
class ValidatorServerConfig:
    """``python -m validator serve``: the server (flags, then ``DERMSYNTH_VALIDATOR_SERVE_*``,
    then defaults) and the per-run defaults it applies to every Validate call.

    Every path a request names must lie, after symlinks, inside one of ``data_roots`` (inputs)
    or inside ``output_root`` (the report folder); generator targets must be listed in
    ``allowed_targets``. See :mod:`validator.roots`.
    """
    data_roots: tuple[Path, ...] = field(default=(), metadata=option(
        "folder the requests may read (real, holdout, synthetic sets, model dirs, thresholds "
        "files); repeat --data-root for more than one", flag=False))
    output_root: Path | None = field(default=None, metadata=option(
        "folder under which requests' report folders (out_dir) are created (required)"))
    features_model: Path | None = field(default=None, metadata=option(
        "Xception ONNX file from `python -m validator export-xception` (required to serve)"))
    host: str = field(default="127.0.0.1", metadata=option(
        "address to listen on (0.0.0.0 or [::]: every interface, e.g. in a container)"))
    port: int = field(default=50052, metadata=option("gRPC port (0: any free port)",
                                                     minimum=0, maximum=65535))
    max_workers: int = field(default=2, metadata=option(
        "validations run at once; a call beyond them gets RESOURCE_EXHAUSTED",
        minimum=1, maximum=64))
    token: str | None = field(default=None, repr=False, metadata=option(
        "bearer token every call except the health check must carry as 'authorization: Bearer "
        "<token>' metadata (better set as $DERMSYNTH_VALIDATOR_SERVE_TOKEN than as a flag)"))
    tls_cert: Path | None = field(default=None, metadata=option(
        "PEM certificate chain: serve TLS (needs --tls-key)"))
    tls_key: Path | None = field(default=None, metadata=option("PEM private key for --tls-cert"))
    grace_seconds: float = field(default=30.0, metadata=option(
        "on SIGTERM/SIGINT, how long running validations may finish", minimum=0))
    drain_announce_seconds: float = field(default=2.0, metadata=option(
        "on SIGTERM/SIGINT, how long health answers NOT_SERVING while calls are still accepted, "
        "before the listener closes and --grace-seconds begins", minimum=0, maximum=300))
    stream_idle_seconds: float = field(default=60.0, metadata=option(
        "a Validate stream whose client reads nothing for this long is cancelled and frees "
        "its worker", minimum=1))
    allowed_targets: tuple[str, ...] = field(default=(), metadata=option(
        "generation servers (HOST:PORT) requests may fetch from; repeat --allowed-target; "
        "none: requests may not use a generator", flag=False))
    generator_token: str | None = field(default=None, repr=False, metadata=option(
        "bearer token sent to the allowed generation servers (better "
        "$DERMSYNTH_VALIDATOR_SERVE_GENERATOR_TOKEN)"))
    generator_tls_ca: Path | None = field(default=None, metadata=option(
        "PEM root certificate: reach the generation servers over TLS, trusting this CA"))
    max_count: int = field(default=10_000, metadata=option(
        "most images one request may fetch from a generation server", minimum=1,
        maximum=1_000_000))
    checks: tuple[str, ...] = field(default=DEFAULT_CHECKS, metadata=option(
        "checks run when a request names none"))
    thresholds: Path | None = field(default=None, metadata=option(
        "gate thresholds file used when a request names none"))
    allow_random_weights: bool = field(default=False, metadata=option(
        "for every request: accept a verdict without quality evidence when the features have "
        "random weights and no weight-free quality check ran (privacy-only runs, tests); "
        "without it a request asking for that is refused (PERMISSION_DENIED)"))
    cache_dir: Path = field(default_factory=_default_cache, metadata=option(
        "feature cache directory"))
    cache: bool = field(default=True, metadata=option("read and write the feature cache"))
    batch_size: int = field(default=32, metadata=option("feature batch size", minimum=1,
                                                        maximum=1024))
    pixel_size: int = field(default=64, metadata=option(
        "side in px of the images kept for pixel-space checks and thumbnails", minimum=16,
        maximum=256))
    tsne: bool = field(default=True, metadata=option("draw the t-SNE views"))
    threads: int = field(default=0, metadata=option("ONNX Runtime threads (0: its default)",
                                                    minimum=0))
    blas_threads: int = field(default=1, metadata=option(
        "BLAS threads for the checks and views (0: the library default)", minimum=0))

    def validate(self) -> None:
        """Checks that span fields or touch the file system."""
        if not self.data_roots:
            raise ConfigError("--data-root is required: the folder(s) requests may read")
        for root in self.data_roots:
            if not root.is_dir():
                raise ConfigError(f"--data-root {root}: not a directory")
        if self.output_root is None:
            raise ConfigError("--output-root is required: the folder report folders go in")
        if not self.output_root.is_dir():
            raise ConfigError(f"--output-root {self.output_root}: not a directory "
                              "(create it first)")
        for target in self.allowed_targets:
            host, sep, port = target.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(f"--allowed-target {target!r}: expected HOST:PORT")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        for name, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key),
                           ("--generator-tls-ca", self.generator_tls_ca),
                           ("--thresholds", self.thresholds)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a file")
        from common.auth import check_token  # imports grpc: the server's business only
        check_token(self.token, "--token")
        check_token(self.generator_token, "--generator-token")

    def run_defaults(self) -> ValidateConfig:
        """The per-run settings every Validate call starts from."""
        return ValidateConfig(
            features_model=self.features_model, checks=self.checks, thresholds=self.thresholds,
            allow_random_weights=self.allow_random_weights, cache_dir=self.cache_dir,
            cache=self.cache, batch_size=self.batch_size, pixel_size=self.pixel_size,
            tsne=self.tsne, threads=self.threads, blas_threads=self.blas_threads,
            generator_token=self.generator_token, generator_tls_ca=self.generator_tls_ca,
            progress=False)

    def for_log(self) -> dict:
        """The resolved config as a JSON-ready dict with the tokens redacted."""
        out = to_dict(self)
        for key in ("token", "generator_token"):
            out[key] = "<set>" if out[key] else None
        return out
