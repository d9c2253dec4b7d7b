"""Registry of the validator's checks (privacy and quality), after stylegan2-ada's
``metrics/metric_main.py``: each check module registers a function by name with
:func:`register`; the CLI's ``--checks`` choices come from :func:`names`; :func:`run_check`
times one check, turns an exception into a failed result carrying the error (the gate then
fails closed), and appends the result as one JSON line to ``checks.jsonl``.

What the command line shows (names, kinds, one-line descriptions) comes from :data:`CATALOG`,
without importing the check modules: they need scikit-learn and scipy, which neither
``--help`` nor ``list-checks`` should load. A module registering a check that the catalog does
not list, or with another kind, fails on import.

A check registered with ``weight_free=True`` reads only pixels (no feature network): the gate
lets it decide even when the features come from random weights (:mod:`validator.gate`).
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from validator.budget import release_freed
from validator.thresholds import Thresholds


@dataclass
class CheckInputs:
    """What every check sees: features (Xception, L2 not applied), pixels (uint8, small) and
    the file paths, for the real training set, the optional held-out set and the synthetic set;
    ``memory_mb`` bounds the chunked distance computations (:mod:`validator.neighbours`)."""

    real: np.ndarray
    synthetic: np.ndarray
    holdout: np.ndarray | None
    real_pixels: np.ndarray
    synthetic_pixels: np.ndarray
    holdout_pixels: np.ndarray | None
    real_paths: list[str]
    synthetic_paths: list[str]
    holdout_paths: list[str] | None
    thresholds: Thresholds = field(default_factory=Thresholds)
    seed: int = 0
    memory_mb: int = 1024  # working memory of one chunk of the distance computations (MiB)
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Share one expensive computation (e.g. the nearest-neighbour search) between checks."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


@dataclass
class CheckResult:
    name: str
    kind: str  # "privacy" | "quality"
    passed: bool
    applicable: bool = True
    thresholds: dict = field(default_factory=dict)
    numbers: dict = field(default_factory=dict)
    flagged: list = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class CheckSpec:
    """A check as the command line and the gate know it before its module is imported; the
    check ``NAME`` lives in ``validator/checks/NAME.py``."""

    kind: str  # "privacy" | "quality"
    doc: str
    weight_free: bool = False  # reads pixels only: meaningful without pretrained weights


CATALOG: dict[str, CheckSpec] = {
    "c2st": CheckSpec(
        "quality",
        "Classifier two-sample test: cross-validated logistic regression AUC (Lopez-Paz 2017).",
    ),
    "dcr": CheckSpec(
        "privacy",
        "Distance to closest record: per-image conformal p-values, feature + pixel space, BH.",
    ),
    "data_copying": CheckSpec(
        "privacy",
        "Meehan et al. 2020 Z_U: synthetic vs held-out distances to the training set, per cell.",
    ),
    "fid": CheckSpec(
        "quality", "Fréchet Inception(-style) Distance on Xception features (Heusel et al. 2017)."
    ),
    "kid": CheckSpec(
        "quality",
        "Kernel Inception(-style) Distance, unbiased cubic-kernel MMD² (Bińkowski et al. 2018).",
    ),
    "nndr": CheckSpec(
        "privacy",
        "1st/2nd nearest-real distance ratio of DCR-flagged synthetic images (likely copies).",
    ),
    "prdc": CheckSpec(
        "quality",
        "Precision/recall (Kynkäänniemi 2019) and density/coverage (Naeem 2020), k-NN balls.",
    ),
    "holdout_share": CheckSpec(
        "privacy",
        "Platzer & Reutterer 2021: share of synthetic images nearer to training than held-out.",
    ),
    "colour": CheckSpec(
        "quality",
        "CIELAB colour histograms and background (border) colour, real vs synthetic.",
        weight_free=True,
    ),
    "pixel_c2st": CheckSpec(
        "quality",
        "Classifier two-sample test on colour and texture statistics, no network (Lopez-Paz 2017).",
        weight_free=True,
    ),
    "swd": CheckSpec(
        "quality",
        "Sliced Wasserstein distance of Laplacian-pyramid patches per level (Karras et al. 2018).",
        weight_free=True,
    ),
}


@dataclass(frozen=True)
class _Entry:
    kind: str
    fn: Callable[[CheckInputs], CheckResult]
    doc: str
    weight_free: bool = False  # reads pixels only: meaningful without pretrained weights


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, kind: str, *, weight_free: bool = False):
    """Decorator: ``@register("fid", "quality")`` over ``fn(inputs) -> CheckResult``;
    ``weight_free=True`` for a check that needs no feature network (pixels only). The name,
    kind and weight_free must be the ones :data:`CATALOG` lists."""
    spec = CATALOG.get(name)
    if spec is None or (spec.kind, spec.weight_free) != (kind, weight_free):
        raise ValueError(
            f"check {name!r} ({kind}, weight_free={weight_free}) does not match "
            f"validator.checks.CATALOG: {spec}"
        )

    def wrap(fn):
        _REGISTRY[name] = _Entry(kind, fn, (fn.__doc__ or "").strip().splitlines()[0], weight_free)
        return fn

    return wrap


def _load(name: str) -> _Entry:
    """Import the module of check ``name`` (it registers itself) and return its entry."""
    if name not in CATALOG:
        raise KeyError(f"no check named {name!r}")
    if name not in _REGISTRY:
        importlib.import_module(f"validator.checks.{name}")
    return _REGISTRY[name]


def _load_all() -> None:
    for name in CATALOG:
        _load(name)


def names() -> list[str]:
    return list(CATALOG)


def describe() -> dict[str, str]:
    return {
        n: f"[{s.kind}{', weight-free' if s.weight_free else ''}] {s.doc}"
        for n, s in CATALOG.items()
    }


def is_weight_free(name: str) -> bool:
    """True for a check that reads pixels only (False for unknown names)."""
    spec = CATALOG.get(name)
    return spec is not None and spec.weight_free


def run_check(
    name: str, inputs: CheckInputs, log: Path | None = None, run_id: str | None = None
) -> CheckResult:
    """Run one registered check; an exception becomes ``passed=False`` with ``error`` set."""
    entry = _load(name)
    start = time.perf_counter()
    try:
        result = entry.fn(inputs)
    except Exception as exc:  # a broken check must fail the gate, not crash the report
        result = CheckResult(
            name=name,
            kind=entry.kind,
            passed=False,
            error=f"{type(exc).__name__}: {exc}",
            note=traceback.format_exc(limit=3),
        )
    result.seconds = round(time.perf_counter() - start, 4)
    release_freed()  # the next check starts from this one's inputs, not its high-water mark
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(
                json.dumps(
                    {
                        **result.to_dict(),
                        "flagged": len(result.flagged),
                        "run_id": run_id,
                        "timestamp": time.time(),
                    }
                )
                + "\n"
            )
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
