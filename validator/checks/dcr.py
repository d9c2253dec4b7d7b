"""Distance to closest record (DCR): is any synthetic image closer to a training image than
real, unseen images are?

Method: the DCR test of the synthetic-data privacy literature (e.g. Yale et al., "Generation
and evaluation of privacy preserving synthetic health data", Neurocomputing 2020; the
"distance to closest record" of SDV/synthcity): for every synthetic image, the distance to its
nearest training image, compared with a baseline of real images that were not trained on
(held-out -> training set) or, without a held-out set, leave-one-out real -> real. A synthetic
image closer than the baseline's ``dcr_quantile`` (default 1 %) is flagged.

Two spaces, a synthetic image is flagged if either flags it:
- feature space: cosine distance between Xception features;
- pixel space: the image shrunk to ``dcr_pixel_size`` px (box filter), each image centred (mean
  removed) so cosine distance is 1 - Pearson correlation, which cancels brightness/contrast
  changes; each real image is also compared mirrored (horizontal, and vertical) and zoomed
  (centre crops ``dcr_zooms``, undoing a crop-and-resize), the minimum counts. Low resolution
  makes it insensitive to JPEG re-encoding and small shifts.
The check fails when more than ``dcr_max_flagged_fraction`` of the synthetic set is flagged;
single near-copies are the job of :mod:`validator.checks.nndr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from validator.checks import CheckInputs, CheckResult, register
from validator.neighbours import nearest

K = 3  # nearest real images kept per synthetic image (report thumbnails, NNDR)
MAX_LISTED = 200
EXACT = 1e-6


def pixel_vectors(images: np.ndarray, size: int, zoom: float = 1.0) -> np.ndarray:
    """[N, size*size*3] float32: centre crop ``zoom`` of each uint8 image, box-resized to
    ``size``, mean removed per image."""
    out = np.empty((len(images), size * size * 3), dtype=np.float32)
    for i, img in enumerate(images):
        side = img.shape[0]
        crop = max(1, round(side * zoom))
        off = (side - crop) // 2
        pil = Image.fromarray(img[off:off + crop, off:off + crop])
        v = np.asarray(pil.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
        out[i] = v.reshape(-1) - v.mean()
    return out


def pixel_views(images: np.ndarray, size: int, zooms, vertical: bool) -> list[np.ndarray]:
    """Every (zoom, mirror) view of the reference images, each [N, D] in the same order."""
    views = []
    for zoom in zooms:
        base = pixel_vectors(images, size, zoom).reshape(len(images), size, size, 3)
        flips = [base, base[:, :, ::-1]]
        if vertical:
            flips += [base[:, ::-1], base[:, ::-1, ::-1]]
        views += [f.reshape(len(images), -1) for f in flips]
    return views


@dataclass
class SpaceDCR:
    distances: np.ndarray   # [Ns, K] ascending
    indices: np.ndarray     # [Ns, K] into the real set
    baseline: np.ndarray    # [Nb] nearest distance of each baseline image
    threshold: float
    flagged: np.ndarray     # bool [Ns]


@dataclass
class DCRAnalysis:
    baseline_kind: str      # "holdout" | "leave-one-out"
    feature: SpaceDCR
    pixel: SpaceDCR
    flagged: np.ndarray     # bool [Ns], union


def _space(synthetic, real_views, baseline_query, q, loo) -> SpaceDCR:
    dist, idx = nearest(synthetic, real_views, K)
    base, _ = nearest(baseline_query, real_views, 1, exclude_self=loo)
    thr = float(np.quantile(base[:, 0], q))
    flagged = (dist[:, 0] < thr) | (dist[:, 0] <= EXACT)
    return SpaceDCR(dist, idx, base[:, 0], thr, flagged)


def analyse(inputs: CheckInputs) -> DCRAnalysis:
    """Nearest real images of every synthetic image in both spaces, and the baseline (memoized:
    shared with the NNDR check)."""
    def compute() -> DCRAnalysis:
        t = inputs.thresholds
        loo = inputs.holdout is None
        size, zooms, vert = t.dcr_pixel_size, t.dcr_zooms, t.dcr_vertical_mirror
        real_views = pixel_views(inputs.real_pixels, size, zooms, vert)
        syn_px = pixel_vectors(inputs.synthetic_pixels, size)
        if loo:
            base_feat, base_px = inputs.real, pixel_vectors(inputs.real_pixels, size)
        else:
            base_feat, base_px = inputs.holdout, pixel_vectors(inputs.holdout_pixels, size)
        feat = _space(inputs.synthetic, inputs.real, base_feat, t.dcr_quantile, loo)
        pix = _space(syn_px, real_views, base_px, t.dcr_quantile, loo)
        return DCRAnalysis("leave-one-out" if loo else "holdout", feat, pix,
                           feat.flagged | pix.flagged)
    return inputs.memo("dcr", compute)


def flagged_items(inputs: CheckInputs, a: DCRAnalysis) -> list[dict]:
    """One dict per flagged synthetic image, closest (relative to its threshold) first."""
    items = []
    for i in np.flatnonzero(a.flagged):
        spaces = [n for n, s in (("feature", a.feature), ("pixel", a.pixel)) if s.flagged[i]]
        lead = a.pixel if "pixel" in spaces else a.feature
        items.append({
            "synthetic": inputs.synthetic_paths[i], "index": int(i), "spaces": spaces,
            "feature_distance": float(a.feature.distances[i, 0]),
            "pixel_distance": float(a.pixel.distances[i, 0]),
            "nearest_real": [inputs.real_paths[j] for j in lead.indices[i]],
            "nearest_real_indices": [int(j) for j in lead.indices[i]],
            "nearest_distances": [float(d) for d in lead.distances[i]],
            "score": float(min(s.distances[i, 0] / max(s.threshold, 1e-12)
                               for s in (a.feature, a.pixel) if s.flagged[i])),
        })
    return sorted(items, key=lambda item: item["score"])


def _summary(s: SpaceDCR) -> dict:
    return {"threshold": s.threshold, "flagged": int(s.flagged.sum()),
            "synthetic_min": float(s.distances[:, 0].min()),
            "synthetic_median": float(np.median(s.distances[:, 0])),
            "baseline_min": float(s.baseline.min()),
            "baseline_median": float(np.median(s.baseline))}


@register("dcr", "privacy")
def dcr(inputs: CheckInputs) -> CheckResult:
    """Distance to closest record, feature + pixel space, against a real baseline quantile."""
    t = inputs.thresholds
    a = analyse(inputs)
    fraction = float(a.flagged.mean())
    items = flagged_items(inputs, a)
    return CheckResult(
        name="dcr", kind="privacy", passed=fraction <= t.dcr_max_flagged_fraction,
        thresholds={"dcr_quantile": t.dcr_quantile,
                    "dcr_max_flagged_fraction": t.dcr_max_flagged_fraction},
        numbers={"baseline": a.baseline_kind, "baseline_count": int(len(a.feature.baseline)),
                 "synthetic_count": int(len(a.flagged)), "flagged": int(a.flagged.sum()),
                 "flagged_fraction": fraction,
                 "feature_space": _summary(a.feature), "pixel_space": _summary(a.pixel)},
        flagged=items[:MAX_LISTED],
        note=(f"{int(a.flagged.sum())} of {len(a.flagged)} synthetic images are closer to a "
              f"training image than {t.dcr_quantile:.1%} of {a.baseline_kind} real images"
              + (f" (first {MAX_LISTED} listed)" if len(items) > MAX_LISTED else "")))
