"""The real baseline of the privacy checks: how close real images the generator never saw come
to the training set, in each space.

- Held-out -> training set, for the held-out images that are really unseen: a held-out image
  whose lesion (or patient, :mod:`validator.lesions`) is also in the training set, or whose
  pixels equal a training image's, is left out (and listed: a warning). Given the training set,
  these distances and a memorisation-free synthetic image's are exchangeable: the conformal
  p-values rank against them (at least ``dcr.MIN_HOLDOUT`` images).
- Leave-one-out training -> rest of the training set, skipping the image's own lesion and its
  pixel-identical duplicates (at most ``LOO_MAX`` training images, a seeded random subset).
  Not exchangeable with an unseen image (measured on isic-sample: about 2x fewer values below
  the 1 % level), so they only shape the power-law tail, find near-duplicates inside the
  training set, and serve as the baseline when there is no held-out set (then the per-image
  false-flag rate can exceed the nominal one: the report says which baseline it used).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from validator.lesions import Groups, group_codes, grouping_column

LOO_MAX = 1000  # training images scored leave-one-out (bounds the n_loo x n_train search)


@dataclass
class RealSets:
    """Which real images form the baseline, and why some held-out images do not."""

    grouping: str | None  # "lesion_id" | "patient_id" | None
    train_codes: np.ndarray  # [Nt] group code (lesion or patient, merged with dups)
    holdout_kept: np.ndarray  # indices into the held-out set
    holdout_excluded: list = field(default_factory=list)  # dicts: holdout, reason, train
    loo_members: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    repeated_groups: int = 0  # training lesions/patients with 2+ images
    duplicate_images: int = 0  # training images whose pixels equal another's


def _pixel_keys(pixels: np.ndarray) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() for img in pixels]


def _merge(codes: np.ndarray, keys: list[str]) -> np.ndarray:
    """Union of two groupings of the same items: equal code OR equal key -> one group."""
    parent = list(range(len(codes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for mapping in (codes.tolist(), keys):
        first: dict = {}
        for i, value in enumerate(mapping):
            j = first.setdefault(value, i)
            if j != i:
                parent[find(i)] = find(j)
    return np.array([find(i) for i in range(len(codes))], dtype=np.int64)


def real_sets(train_paths, train_pixels, holdout_paths, holdout_pixels, seed: int) -> RealSets:
    """Group the training images and choose the held-out images and the leave-one-out subset
    that make up the baseline."""
    train_groups = Groups.read(train_paths)
    holdout_groups = Groups.read(holdout_paths) if holdout_paths is not None else None
    column = grouping_column(*(g for g in (train_groups, holdout_groups) if g is not None))
    train_col = train_groups.column(column) if column else (None,) * len(train_pixels)
    hold_col = (
        holdout_groups.column(column)
        if column and holdout_groups is not None
        else (None,) * (0 if holdout_pixels is None else len(holdout_pixels))
    )
    codes_t, codes_h = group_codes(train_col, hold_col)
    train_keys = _pixel_keys(train_pixels)
    merged = _merge(codes_t, train_keys)
    sizes = np.bincount(np.unique(codes_t, return_inverse=True)[1]) if len(codes_t) else []
    dups = len(train_keys) - len(set(train_keys))
    kept, excluded = np.arange(0), []
    if holdout_pixels is not None:
        first_of = {}
        for i, key in enumerate(train_keys):
            first_of.setdefault(key, i)
        code_of = {}
        for i, c in enumerate(codes_t.tolist()):
            code_of.setdefault(c, i)
        keep = []
        for i, key in enumerate(_pixel_keys(holdout_pixels)):
            same = code_of.get(int(codes_h[i]))
            if same is not None:
                excluded.append(
                    {
                        "holdout": holdout_paths[i],
                        "train": train_paths[same],
                        "reason": f"same {column} as a training image",
                    }
                )
            elif key in first_of:
                excluded.append(
                    {
                        "holdout": holdout_paths[i],
                        "train": train_paths[first_of[key]],
                        "reason": "pixels identical to a training image",
                    }
                )
            else:
                keep.append(i)
        kept = np.array(keep, dtype=np.int64)
    n = len(train_pixels)
    members = (
        np.arange(n)
        if n <= LOO_MAX
        else np.sort(np.random.default_rng(seed).choice(n, LOO_MAX, replace=False))
    )
    # a leave-one-out query needs another group to compare with
    members = members[np.bincount(merged, minlength=merged.max() + 1)[merged[members]] < n]
    return RealSets(
        column,
        merged,
        kept,
        excluded,
        members,
        repeated_groups=int(np.sum(np.asarray(sizes) > 1)) if column else 0,
        duplicate_images=dups,
    )
