"""Distance to closest record (DCR), calibrated: which synthetic images are closer to a training
image than unseen real images come?

Method: the DCR test of the synthetic-data privacy literature (Yale et al., "Generation and
evaluation of privacy preserving synthetic health data", Neurocomputing 2020; synthcity's
"distance to closest record"), turned into per-image tests with a known false-flag rate:
1. For every synthetic image, its distance to the nearest training image, in two spaces:
   - feature space: cosine distance between Xception features;
   - pixel space: the image shrunk to ``dcr_pixel_size`` px (box filter), mean removed, so the
     cosine distance is 1 - Pearson correlation (cancels brightness/contrast changes); every
     training image is also compared mirrored and zoomed (centre crops ``dcr_zooms``, undoing a
     crop-and-resize), the minimum counts; low resolution ignores JPEG re-encoding. These
     vectors are made a block of images at a time within ``--memory-mb``
     (:mod:`validator.checks.pixel_space`).
2. The baseline: the same distance for real images the generator never saw
   (:mod:`validator.checks.real_baseline`): held-out images of lesions not in the training
   set; without a held-out set (or fewer than ``MIN_HOLDOUT``), leave-one-out training images.
3. Per space, a conformal p-value of each synthetic distance against the baseline, continued
   below the baseline's minimum by the nearest-neighbour power-law tail (exponent from the
   held-out and leave-one-out distances; :mod:`validator.checks.calibration`); Bonferroni over
   the two spaces; Benjamini-Hochberg over the synthetic images at false-discovery rate
   ``dcr_fdr``. Images with a pixel- or feature-identical training image are always flagged.
4. The same procedure on the baseline images, each left out of the baseline in turn, gives the
   real-vs-real false-flag rate reported beside the synthetic one. Training images it flags
   against the baseline (leave-one-out), and held-out images of training lesions, are
   near-duplicates inside the real data: listed, never counted against the synthetic set.
Also reported: the fraction of synthetic images with p <= ``dcr_quantile`` (uncorrected),
expected at most ``dcr_quantile`` for a sample of the real distribution, with its binomial
(Clopper-Pearson) interval. The check fails when more than ``dcr_max_flagged_fraction`` of the
synthetic set is flagged (default 0: any flagged image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from validator.checks import CheckInputs, CheckResult, register
from validator.checks.calibration import (
    EXACT,
    benjamini_hochberg,
    clopper_pearson,
    combine_spaces,
    conformal_p,
    leave_one_out_p,
    tail_exponent,
)
from validator.checks.pixel_space import pixel_rows
from validator.checks.real_baseline import RealSets, real_sets
from validator.neighbours import Rows, nearest

K = 3  # nearest real images kept per synthetic image (report thumbnails, NNDR)
MIN_HOLDOUT = 10  # fewer held-out images (of unseen lesions): leave-one-out baseline
MIN_BASELINE = 10  # fewer baseline distances: no calibrated test, dcr fails closed
MAX_LISTED = 200


@dataclass
class SpaceDCR:
    distances: np.ndarray  # [Ns, K] synthetic -> training, ascending
    indices: np.ndarray  # [Ns, K] into the training set
    to_holdout: np.ndarray | None  # [Ns] synthetic -> nearest kept held-out image
    holdout_baseline: np.ndarray  # [Nh kept] held-out -> training (empty without holdout)
    holdout_nearest: np.ndarray  # [Nh kept] index of that training image
    loo: np.ndarray  # [Nl] leave-one-out training -> rest (other lesions)
    loo_nearest: np.ndarray  # [Nl] index of that training image
    baseline: np.ndarray  # holdout_baseline (or loo without a held-out set)
    tail_k: float  # power-law exponent of the lower tail (holdout + loo)
    p: np.ndarray  # [Ns] per-image p-value in this space
    real_p: np.ndarray  # leave-one-out p-values of the baseline images
    loo_p: np.ndarray  # [Nl] p-values of the leave-one-out training images

    @property
    def exact(self) -> np.ndarray:
        return self.distances[:, 0] <= EXACT


@dataclass
class DCRAnalysis:
    baseline_kind: str  # "holdout" | "leave-one-out"
    sets: RealSets
    feature: SpaceDCR
    pixel: SpaceDCR
    p: np.ndarray  # [Ns] combined over spaces (Bonferroni)
    flagged: np.ndarray  # bool [Ns]: BH at dcr_fdr, or an exact copy
    cutoff: float  # largest combined p flagged by BH (0: none)
    real_p: np.ndarray  # combined leave-one-out p of the baseline images
    real_flagged: np.ndarray  # bool: BH over the baseline images (real-vs-real flags)
    loo_flagged: np.ndarray  # bool [Nl]: BH over the leave-one-out training images

    @property
    def holdout_baseline(self) -> bool:
        return self.baseline_kind == "holdout"

    def spaces(self) -> dict[str, SpaceDCR]:
        return {"feature": self.feature, "pixel": self.pixel}


def _space(syn, train_ref, hold_q, hold_ref, loo_q, sets: RealSets, mb: float) -> SpaceDCR:
    """Distances and p-values in one space. ``train_ref``/``hold_ref``: reference arrays or
    view lists; ``hold_q``/``loo_q``: query vectors of the kept held-out images and of the
    leave-one-out training images."""
    dist, idx = nearest(syn, train_ref, K, memory_mb=mb)
    empty = np.zeros(0, np.float32)
    to_h, hb, hn = None, empty, np.zeros(0, np.int64)
    if hold_q is not None and len(hold_q):
        to_h = nearest(syn, hold_ref, 1, memory_mb=mb)[0][:, 0]
        d, i = nearest(hold_q, train_ref, 1, memory_mb=mb)
        hb, hn = d[:, 0], i[:, 0]
    loo, ln = empty, np.zeros(0, np.int64)
    if len(sets.loo_members):
        codes = sets.train_codes
        groups = (codes[sets.loo_members], codes)
        d, i = nearest(loo_q, train_ref, 1, groups=groups, memory_mb=mb)
        loo, ln = d[:, 0], i[:, 0]
    pooled = np.concatenate([hb, loo])
    k = tail_exponent(pooled)
    # ranks against held-out images only: they and an unseen image are exchangeable given the
    # training set; leave-one-out training distances are not (measured: ~2x too few very small
    # values), so they only shape the tail exponent, or serve as baseline without a holdout
    base = hb if len(hb) >= MIN_HOLDOUT else loo
    p = conformal_p(dist[:, 0], base, k)
    real_p = leave_one_out_p(base, np.arange(len(base)), k)
    dup_p = conformal_p(loo, base, k) if base is hb else real_p
    return SpaceDCR(dist, idx, to_h, hb, hn, loo, ln, base, k, p, real_p, dup_p)


def analyse(inputs: CheckInputs) -> DCRAnalysis:
    """Nearest training images of every synthetic image in both spaces, the real baseline and
    the calibrated flags (memoized: shared with the NNDR, holdout-share and data-copying
    checks)."""

    def compute() -> DCRAnalysis:
        t = inputs.thresholds
        has_h = inputs.holdout is not None
        sets = real_sets(
            inputs.real_paths,
            inputs.real_pixels,
            inputs.holdout_paths if has_h else None,
            inputs.holdout_pixels if has_h else None,
            inputs.seed,
        )
        kept, members = sets.holdout_kept, sets.loo_members
        size, zooms, vert = t.dcr_pixel_size, t.dcr_zooms, t.dcr_vertical_mirror
        # pixel vectors and views made a block at a time, never for a whole set
        train_views = pixel_rows(inputs.real_pixels, size, zooms, mirrors=True, vertical=vert)
        loo_px = pixel_rows(inputs.real_pixels, size, rows=members)
        syn_px = pixel_rows(inputs.synthetic_pixels, size)
        hold_px = hold_views = hold_f = None
        if has_h and len(kept):
            hold_px = pixel_rows(inputs.holdout_pixels, size, rows=kept)
            hold_views = pixel_rows(
                inputs.holdout_pixels, size, zooms, mirrors=True, vertical=vert, rows=kept
            )
            hold_f = Rows.of(inputs.holdout, kept)
        mb = inputs.memory_mb
        loo_f = Rows.of(inputs.real, members)
        feat = _space(inputs.synthetic, inputs.real, hold_f, hold_f, loo_f, sets, mb)
        pix = _space(syn_px, train_views, hold_px, hold_views, loo_px, sets, mb)
        p = combine_spaces(feat.p, pix.p)
        flagged = benjamini_hochberg(p, t.dcr_fdr)
        cutoff = float(p[flagged].max()) if flagged.any() else 0.0
        flagged |= feat.exact | pix.exact
        real_p = combine_spaces(feat.real_p, pix.real_p)
        kind = "holdout" if feat.baseline is feat.holdout_baseline else "leave-one-out"
        return DCRAnalysis(
            kind,
            sets,
            feat,
            pix,
            p,
            flagged,
            cutoff,
            real_p,
            benjamini_hochberg(real_p, t.dcr_fdr),
            benjamini_hochberg(combine_spaces(feat.loo_p, pix.loo_p), t.dcr_fdr),
        )

    return inputs.memo("dcr", compute)


def flagged_items(inputs: CheckInputs, a: DCRAnalysis) -> list[dict]:
    """One dict per flagged synthetic image, smallest p-value first."""
    items = []
    spaces = a.spaces()
    for i in np.flatnonzero(a.flagged):
        hit = [
            n
            for n, s in spaces.items()
            if s.exact[i] or len(spaces) * s.p[i] <= max(a.cutoff, EXACT)
        ]
        lead = a.pixel if "pixel" in hit else a.feature
        items.append(
            {
                "synthetic": inputs.synthetic_paths[i],
                "index": int(i),
                "spaces": hit,
                "p_value": float(a.p[i]),
                "feature_distance": float(a.feature.distances[i, 0]),
                "pixel_distance": float(a.pixel.distances[i, 0]),
                "nearest_real": [inputs.real_paths[j] for j in lead.indices[i]],
                "nearest_real_indices": [int(j) for j in lead.indices[i]],
                "nearest_distances": [float(d) for d in lead.distances[i]],
                "score": float(a.p[i]),
            }
        )
    return sorted(items, key=lambda item: item["score"])


def real_near_duplicates(inputs: CheckInputs, a: DCRAnalysis, limit: int = 20) -> list[dict]:
    """Near-duplicates inside the real data, never counted against the synthetic set: held-out
    images left out for sharing a lesion or pixels with a training image, and real images the
    procedure flags against the rest of the real data (other images of one lesion without
    metadata saying so, re-encoded copies)."""
    out = [
        {"real": e["holdout"], "nearest_real": e["train"], "reason": e["reason"]}
        for e in a.sets.holdout_excluded
    ]
    kept, members = a.sets.holdout_kept, a.sets.loo_members
    found = [(inputs.real_paths[members[j]], "loo", j) for j in np.flatnonzero(a.loo_flagged)]
    if a.holdout_baseline:
        found = [
            (inputs.holdout_paths[kept[j]], "holdout", j) for j in np.flatnonzero(a.real_flagged)
        ] + found
    for path, where, j in found:
        pix, feat = (
            (s.holdout_baseline, s.holdout_nearest)
            if where == "holdout"
            else (s.loo, s.loo_nearest)
            for s in (a.pixel, a.feature)
        )
        out.append(
            {
                "real": path,
                "nearest_real": inputs.real_paths[pix[1][j]],
                "reason": "closer to a training image than the real baseline explains",
                "pixel_distance": float(pix[0][j]),
                "feature_distance": float(feat[0][j]),
            }
        )
    return out[:limit] + ([{"more": len(out) - limit}] if len(out) > limit else [])


def _rate(k: int, n: int) -> dict:
    lo, hi = clopper_pearson(k, n)
    return {"count": k, "of": n, "rate": k / n if n else None, "ci95_low": lo, "ci95_high": hi}


def _summary(s: SpaceDCR, alpha: float) -> dict:
    return {
        "tail_exponent": s.tail_k,
        "close": int(np.sum(2 * s.p <= alpha)),
        "synthetic_min": float(s.distances[:, 0].min()),
        "synthetic_median": float(np.median(s.distances[:, 0])),
        "baseline_min": float(s.baseline.min()) if len(s.baseline) else None,
        "baseline_median": float(np.median(s.baseline)) if len(s.baseline) else None,
    }


@register("dcr", "privacy")
def dcr(inputs: CheckInputs) -> CheckResult:
    """Distance to closest record: per-image conformal p-values, feature + pixel space, BH."""
    t = inputs.thresholds
    a = analyse(inputs)
    n, n_real = len(a.flagged), len(a.real_p)
    if n_real < MIN_BASELINE:
        return CheckResult(
            name="dcr",
            kind="privacy",
            passed=False,
            applicable=False,
            numbers={"baseline": a.baseline_kind, "baseline_count": n_real},
            note=f"cannot test: {n_real} real baseline images, needs {MIN_BASELINE} (held-out "
            "images of lesions not in the training set, or training images)",
        )
    fraction = float(a.flagged.mean())
    items = flagged_items(inputs, a)
    dups = real_near_duplicates(inputs, a)
    warnings = []
    if a.sets.holdout_excluded:
        warnings.append(
            f"{len(a.sets.holdout_excluded)} held-out image(s) share a "
            f"{a.sets.grouping or 'pixel content'} with the training set: left "
            "out of the baseline (they are not unseen)"
        )
    return CheckResult(
        name="dcr",
        kind="privacy",
        passed=fraction <= t.dcr_max_flagged_fraction,
        thresholds={
            "dcr_fdr": t.dcr_fdr,
            "dcr_quantile": t.dcr_quantile,
            "dcr_max_flagged_fraction": t.dcr_max_flagged_fraction,
        },
        numbers={
            "baseline": a.baseline_kind,
            "baseline_count": n_real,
            "holdout_in_baseline": int(len(a.sets.holdout_kept)),
            "holdout_excluded": len(a.sets.holdout_excluded),
            "grouping": a.sets.grouping,
            "synthetic_count": n,
            "flagged": int(a.flagged.sum()),
            "flagged_fraction": fraction,
            "synthetic_flags": _rate(int(a.flagged.sum()), n),
            "real_vs_real_flags": _rate(int(a.real_flagged.sum()), n_real),
            "synthetic_close": _rate(int(np.sum(a.p <= t.dcr_quantile)), n),
            "real_vs_real_close": _rate(int(np.sum(a.real_p <= t.dcr_quantile)), n_real),
            "feature_space": _summary(a.feature, t.dcr_quantile),
            "pixel_space": _summary(a.pixel, t.dcr_quantile),
            "real_near_duplicates": dups,
            "warnings": warnings,
        },
        flagged=items[:MAX_LISTED],
        note=(
            f"{int(a.flagged.sum())} of {n} synthetic images flagged (p-values against "
            f"{n_real} real {a.baseline_kind} baseline images, BH at FDR {t.dcr_fdr}); "
            f"real vs real: {int(a.real_flagged.sum())} of {n_real} flagged; "
            f"p <= {t.dcr_quantile}: synthetic {np.mean(a.p <= t.dcr_quantile):.1%}, "
            f"real {np.mean(a.real_p <= t.dcr_quantile):.1%}"
            + (f" (first {MAX_LISTED} listed)" if len(items) > MAX_LISTED else "")
        ),
    )
