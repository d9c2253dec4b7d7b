"""The release gate: check results + feature-model facts -> PASS or FAIL, with reasons.

Fails closed. FAIL when:
- a check raised (its error is the reason) or did not pass its threshold;
- the features come from a random-weight Xception and ``--allow-random-weights`` was not given
  (such features say nothing about the images: every output labels them);
- the distance-to-closest-record check did not run (no privacy evidence, no release);
- a check that cannot run on these inputs reports so with ``passed=False``: the data-copying
  test without a held-out set fails unless the thresholds say ``require_holdout = false``,
  in which case it is a warning.
Missing inputs never reach the gate: they are usage errors (exit 2) before any check runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from validator.checks import CheckResult

REQUIRED_CHECKS = ("dcr",)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "PASS" | "FAIL"
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


def decide(results: list[CheckResult], *, random_weights: bool,
           allow_random_weights: bool) -> Verdict:
    reasons, warnings = [], []
    if random_weights:
        if allow_random_weights:
            warnings.append("features come from a RANDOM-WEIGHT Xception (allowed by "
                            "--allow-random-weights): quality numbers are not meaningful")
        else:
            reasons.append("features come from a RANDOM-WEIGHT Xception: export ImageNet "
                           "weights (`python -m validator export-xception --weights imagenet`) "
                           "or pass --allow-random-weights (tests only)")
    ran = {r.name for r in results}
    for name in REQUIRED_CHECKS:
        if name not in ran:
            reasons.append(f"required check {name!r} did not run")
    for r in results:
        if r.error:
            reasons.append(f"{r.name}: error: {r.error}")
        elif not r.passed:
            reasons.append(f"{r.name}: failed: {r.note or 'threshold not met'}")
        elif not r.applicable:
            warnings.append(f"{r.name}: {r.note or 'not applicable'}")
    return Verdict("FAIL" if reasons else "PASS", reasons, warnings)
