"""The statistics of a visual Turing test, as published studies of synthetic dermoscopy report
them (e.g. "dermatologists told real from StyleGAN2 images apart at 66.5 %").

- accuracy (answers that name the true source) with the Wilson score 95 % interval (Wilson
  1927; no continuity correction, as ``scipy.stats.binomtest(...).proportion_ci("wilson")``)
  and the exact two-sided binomial test against 50 % (``scipy.stats.binomtest``: the sum of
  the probabilities of all outcomes no more likely than the one observed);
- sensitivity and specificity with synthetic = positive: sensitivity is the share of synthetic
  images called synthetic, specificity the share of real images called real;
- accuracy by confidence level (1-5) and per rater;
- per-image "fooled" rates: how often a synthetic image was taken for real, and a real image
  for synthetic (the :data:`TOP` images with the highest rates, among those fooling anyone);
- Fleiss' kappa (Fleiss 1971, "Measuring nominal scale agreement among many raters") over the
  raters who finished, every one of whom rated every image of the study once.

Everything is computed from the raw answers; :func:`results` is the JSON object of
``python -m validator turing results --json``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

FORMAT = "dermsynth-turing-results"
FORMAT_VERSION = 1
Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal distribution
TOP = 10  # images listed per "fooled" list
RESULT_KEYS = ("study", "raters", "answers", "accuracy", "binomial_test", "summary")


def load_results(path, what: str = "--turing-results") -> dict:
    """The JSON that ``python -m validator turing results --json`` wrote, checked (UserError,
    naming ``what``), for a validation report or a release bundle's card."""
    import json
    from pathlib import Path

    from common.errors import UserError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{what} {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: should hold a JSON object")
    if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{what} {path}: not the output of `python -m validator turing results --json` "
            f"({FORMAT} v{FORMAT_VERSION})"
        )
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        raise UserError(f"{what} {path}: has no {', '.join(map(repr, missing))}")
    return data


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` successes in ``n`` trials; None when n == 0."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_p(k: int, n: int, p: float = 0.5) -> float | None:
    """The exact two-sided binomial test of ``k`` in ``n`` against ``p``; None when n == 0."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(k, n, p, alternative="two-sided").pvalue)


def proportion(k: int, n: int) -> dict:
    ci = wilson(k, n)
    return {"n": n, "k": k, "value": k / n if n else None, "ci95": list(ci) if ci else None}


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories table of counts, each row summing to the same
    number of raters (>= 2). None when chance agreement is 1 (a single category used)."""
    counts = np.asarray(counts, dtype=np.float64)
    raters = counts.sum(axis=1)
    if counts.ndim != 2 or counts.shape[0] == 0 or raters[0] < 2 or np.any(raters != raters[0]):
        raise ValueError("every item needs the same number (>= 2) of ratings")
    n_items, n = counts.shape[0], raters[0]
    p_j = counts.sum(axis=0) / (n_items * n)
    p_i = (np.sum(counts * counts, axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), float(np.sum(p_j * p_j))
    if p_e >= 1.0:
        return None
    return float((p_bar - p_e) / (1 - p_e))


def _fooled(answers, images: Sequence[tuple[int, str, str]], top: int) -> dict:
    shown: dict[int, int] = defaultdict(int)
    fooled: dict[int, int] = defaultdict(int)
    for a in answers:
        shown[a.image] += 1
        fooled[a.image] += a.answer != a.role
    lists: dict[str, list] = {"synthetic_taken_for_real": [], "real_taken_for_synthetic": []}
    for idx, role, name in images:
        if fooled[idx]:
            key = "synthetic_taken_for_real" if role == "synthetic" else "real_taken_for_synthetic"
            entry = {"image": idx, "name": name, "n": shown[idx], "fooled": fooled[idx]}
            lists[key].append({**entry, "rate": fooled[idx] / shown[idx]})
    for key, entries in lists.items():
        entries.sort(key=lambda e: (-e["rate"], -e["fooled"], e["image"]))
        lists[key] = entries[:top]
    return lists


def _kappa(answers, images, sessions) -> dict | None:
    done = [s["id"] for s in sessions if s["total"] and s["answered"] == s["total"]]
    if len(done) < 2:
        return None
    row = {idx: i for i, (idx, _role, _name) in enumerate(images)}
    counts = np.zeros((len(images), 2), dtype=np.int64)
    finished = set(done)
    for a in answers:
        if a.session in finished:
            counts[row[a.image], int(a.answer == "synthetic")] += 1
    return {"value": fleiss_kappa(counts), "raters": len(done), "items": len(images)}


def results(study, images, sessions, answers, *, top: int = TOP) -> dict:
    """The results of ``study`` (a :class:`~validator.turing.store.Study`) from its images
    ``(idx, role, name)``, its sessions (:meth:`Store.sessions`) and every answer given."""
    n = len(answers)
    correct = sum(a.answer == a.role for a in answers)
    synthetic = [a for a in answers if a.role == "synthetic"]
    real = [a for a in answers if a.role == "real"]
    accuracy = proportion(correct, n)
    by_rater: dict[str, list] = defaultdict(list)
    for a in answers:
        by_rater[a.session].append(a)
    per_rater = []
    for s in sessions:
        given = by_rater.get(s["id"], [])
        if given:
            per_rater.append(
                {
                    "rater": s["rater"],
                    "completed": s["answered"] == s["total"],
                    **proportion(sum(a.answer == a.role for a in given), len(given)),
                }
            )
    summary = "no answers yet"
    if n:
        lo, hi = accuracy["ci95"]
        summary = (
            f"{len(per_rater)} rater(s) told real from synthetic images apart in "
            f"{100 * accuracy['value']:.1f} % of {n} answers (95 % CI {100 * lo:.1f}-"
            f"{100 * hi:.1f} %; chance is 50 %, binomial p = {binomial_p(correct, n):.3g})"
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "study": {
            "name": study.name,
            "created": study.created,
            "seed": study.seed,
            "size": study.size,
            "per_rater": study.per_rater,
            "images": {
                role: sum(r == role for _i, r, _n in images) for role in ("real", "synthetic")
            },
            "fingerprint": {
                "real": study.real_fingerprint,
                "synthetic": study.synthetic_fingerprint,
            },
        },
        "raters": {
            "sessions": len(sessions),
            "started": sum(s["answered"] > 0 for s in sessions),
            "completed": sum(s["total"] > 0 and s["answered"] == s["total"] for s in sessions),
        },
        "answers": n,
        "accuracy": accuracy,
        "binomial_test": {
            "null": 0.5,
            "alternative": "two-sided",
            "p_value": binomial_p(correct, n),
        },
        "sensitivity": proportion(sum(a.answer == "synthetic" for a in synthetic), len(synthetic)),
        "specificity": proportion(sum(a.answer == "real" for a in real), len(real)),
        "by_confidence": [
            {
                "confidence": c,
                **proportion(
                    sum(a.answer == a.role for a in answers if a.confidence == c),
                    sum(a.confidence == c for a in answers),
                ),
            }
            for c in range(1, 6)
        ],
        "per_rater": per_rater,
        "fooled": _fooled(answers, images, top),
        "fleiss_kappa": _kappa(answers, images, sessions),
        "summary": summary,
    }


CSV_COLUMNS = (
    "rater",
    "rater_number",
    "position",
    "image",
    "truth",
    "answer",
    "correct",
    "confidence",
    "source_file",
    "shown_at",
    "answered_at",
)


def _cell(text: str) -> str:
    """A free-text cell that a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(answers) -> str:
    """Every answer as CSV, one row per answer (the raw data behind :func:`results`)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in answers:
        writer.writerow(
            (
                _cell(a.rater),
                a.seq,
                a.position + 1,
                a.image,
                a.role,
                a.answer,
                int(a.answer == a.role),
                a.confidence,
                _cell(a.name),
                a.shown_at or "",
                a.answered_at,
            )
        )
    return buf.getvalue()
