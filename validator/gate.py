"""The release gate: check results + feature-model facts -> PASS or FAIL, with reasons, and the
status each check shows (``pass``, ``fail``, ``info``, ``error``, ``n/a``).

Which checks decide (:func:`policy`):
- Privacy checks (dcr, nndr, data_copying, holdout_share) always decide; they are calibrated on
  real images and flag in pixel space as well as in feature space.
- Weight-free quality checks (registered ``weight_free=True``: swd, colour, pixel_c2st) always
  decide: they read pixels only, so they mean the same with or without pretrained weights.
- Feature-space quality checks (fid, kid, prdc, c2st) decide only when the feature model has
  pretrained (ImageNet) weights. With RANDOM weights their numbers describe a random projection,
  not the images: they are report-only, shown as ``info``, and can never decide the verdict.
- A quality check with no limit configured (e.g. ``fid_max = 'none'``) is report-only too.

FAIL (fails closed) when:
- a check raised (its error is the reason; also for a report-only check: the run is broken);
- a deciding check did not pass its threshold (a report-only one is ``info`` whatever it says);
- the distance-to-closest-record check did not run (no privacy evidence, no release);
- the features have random weights and no weight-free quality check ran, so no quality evidence
  decides, unless ``--allow-random-weights`` (then it is a warning): that flag now means "accept
  a verdict without quality evidence" (privacy-only runs, tests of the machinery);
- a check that cannot run on these inputs reports so with ``passed=False``: the data-copying
  test without a held-out set fails unless the thresholds say ``require_holdout = false``,
  in which case it is a warning.
Missing inputs never reach the gate: they are usage errors (exit 2) before any check runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from validator import checks as registry
from validator.checks import CheckResult

REQUIRED_CHECKS = ("dcr",)
STATUSES = ("pass", "fail", "info", "error", "n/a")


@dataclass(frozen=True)
class Verdict:
    decision: str  # "PASS" | "FAIL"
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # check name -> one of STATUSES
    policy: str = ""  # one line: which checks decided and why

    @property
    def passed(self) -> bool:
        return self.decision == "PASS"

    def status(self, name: str) -> str:
        return self.statuses.get(name, "info")


def report_only(result: CheckResult, *, random_weights: bool) -> bool:
    """True when ``result`` cannot decide the verdict (see the module docstring)."""
    if result.kind != "quality":
        return False
    if random_weights and not registry.is_weight_free(result.name):
        return True
    return bool(result.thresholds) and all(v is None for v in result.thresholds.values())


def status_of(result: CheckResult, *, random_weights: bool) -> str:
    if result.error:
        return "error"
    if report_only(result, random_weights=random_weights):
        return "info"
    if not result.applicable:
        return "n/a"
    return "pass" if result.passed else "fail"


def policy(*, random_weights: bool) -> str:
    if random_weights:
        return (
            "features from RANDOM weights: privacy checks and the weight-free quality checks "
            "(pixels only) decide; feature-space quality checks are report-only (info)"
        )
    return (
        "features from pretrained weights: privacy checks and all quality checks with a "
        "limit decide"
    )


def decide(
    results: list[CheckResult], *, random_weights: bool, allow_random_weights: bool
) -> Verdict:
    reasons, warnings = [], []
    statuses = {r.name: status_of(r, random_weights=random_weights) for r in results}
    ran = {r.name for r in results}
    for name in REQUIRED_CHECKS:
        if name not in ran:
            reasons.append(f"required check {name!r} did not run")
    if random_weights:
        info = [
            r.name
            for r in results
            if statuses[r.name] == "info" and not registry.is_weight_free(r.name)
        ]
        deciding = [
            r.name for r in results if r.kind == "quality" and registry.is_weight_free(r.name)
        ]
        if info:
            warnings.append(
                f"features come from a RANDOM-WEIGHT Xception: {', '.join(info)} "
                "are report-only (info); export ImageNet weights to let them decide"
            )
        if not deciding:
            message = (
                "features come from a RANDOM-WEIGHT Xception and no weight-free quality "
                "check (swd, colour, pixel_c2st) ran: nothing judged image quality"
            )
            if allow_random_weights:
                warnings.append(message + " (accepted by --allow-random-weights)")
            else:
                reasons.append(
                    message + "; run them, export ImageNet weights "
                    "(`python -m trainer export-xception --weights imagenet`) or "
                    "pass --allow-random-weights"
                )
    for r in results:
        state = statuses[r.name]
        if state == "error":
            reasons.append(f"{r.name}: error: {r.error}")
        elif state == "fail" or (state == "n/a" and not r.passed):
            reasons.append(f"{r.name}: failed: {r.note or 'threshold not met'}")
        elif state == "n/a":
            warnings.append(f"{r.name}: {r.note or 'not applicable'}")
        warnings.extend(f"{r.name}: {w}" for w in r.numbers.get("warnings") or [])
    return Verdict(
        "FAIL" if reasons else "PASS",
        reasons,
        warnings,
        statuses,
        policy(random_weights=random_weights),
    )
