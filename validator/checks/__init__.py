"""Registry of the validator's checks (privacy and quality), after stylegan2-ada's
``metrics/metric_main.py``: each check module registers a function by name with
:func:`register`; the CLI's ``--checks`` choices come from :func:`names`; :func:`run_check`
times one check, turns an exception into a failed result carrying the error (the gate then
fails closed), and appends the result as one JSON line to ``checks.jsonl``.

A check registered with ``weight_free=True`` reads only pixels (no feature network): the gate
lets it decide even when the features come from random weights (:mod:`validator.gate`).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from validator.config import Thresholds


@dataclass
class CheckInputs:
    """What every check sees: features (Xception, L2 not applied), pixels (uint8, small) and
    the file paths, for the real training set, the optional held-out set and the synthetic set."""
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
class _Entry:
    kind: str
    fn: Callable[[CheckInputs], CheckResult]
    doc: str
    weight_free: bool = False  # reads pixels only: meaningful without pretrained weights


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, kind: str, *, weight_free: bool = False):
    """Decorator: ``@register("fid", "quality")`` over ``fn(inputs) -> CheckResult``;
    ``weight_free=True`` for a check that needs no feature network (pixels only)."""
    def wrap(fn):
        _REGISTRY[name] = _Entry(kind, fn, (fn.__doc__ or "").strip().splitlines()[0],
                                 weight_free)
        return fn
    return wrap


def _load_all() -> None:
    from validator.checks import c2st, data_copying, dcr, fid, kid, nndr, prdc  # noqa: F401
    from validator.checks import holdout_share  # noqa: F401  (H5: privacy)
    from validator.checks import colour, pixel_c2st, swd  # noqa: F401  (weight-free quality)


def names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def describe() -> dict[str, str]:
    _load_all()
    return {n: f"[{e.kind}{', weight-free' if e.weight_free else ''}] {e.doc}"
            for n, e in _REGISTRY.items()}


def is_weight_free(name: str) -> bool:
    """True for a registered check that reads pixels only (False for unknown names)."""
    _load_all()
    entry = _REGISTRY.get(name)
    return entry is not None and entry.weight_free


def kind_of(name: str) -> str:
    _load_all()
    return _REGISTRY[name].kind


def run_check(name: str, inputs: CheckInputs, log: Path | None = None,
              run_id: str | None = None) -> CheckResult:
    """Run one registered check; an exception becomes ``passed=False`` with ``error`` set."""
    _load_all()
    entry = _REGISTRY[name]
    start = time.perf_counter()
    try:
        result = entry.fn(inputs)
    except Exception as exc:  # a broken check must fail the gate, not crash the report
        result = CheckResult(name=name, kind=entry.kind, passed=False,
                             error=f"{type(exc).__name__}: {exc}",
                             note=traceback.format_exc(limit=3))
    result.seconds = round(time.perf_counter() - start, 4)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**result.to_dict(), "flagged": len(result.flagged),
                                 "run_id": run_id, "timestamp": time.time()}) + "\n")
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
