"""Which real images show the same lesion (or the same patient): ISIC metadata's ``lesion_id``
and ``patient_id``.

The ISIC Archive holds several images of many lesions (follow-up visits, close-ups, often
consecutive ``isic_id``s); ``isic image download`` (isic-cli) writes ``lesion_id`` and
``patient_id`` columns into ``metadata.csv`` where the archive knows them, and the ISIC 2019 /
2020 challenge CSVs carry ``lesion_id`` / ``patient_id`` beside ``image`` / ``image_name``.
Two images of one lesion are genuine near-duplicates: a held-out image whose lesion is also in
the training set is not "unseen", and a training image's nearest neighbour of the same lesion
says nothing about a generator. The privacy checks use these groups (:mod:`validator.checks.dcr`).

Only the metadata beside the images is read (the image's folder and up to two parents, CSV files
with an image id column); no column or no match means "no group" (``None``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ID_COLUMNS = ("isic_id", "image_id", "image", "image_name")
GROUP_COLUMNS = ("lesion_id", "patient_id")  # in order of preference
_MAX_CSV_BYTES = 64 * 1024 * 1024


@lru_cache(maxsize=64)
def _table(folder: Path, mtimes: tuple) -> dict[str, dict[str, str]]:
    """image id -> {lesion_id, patient_id} from the CSVs directly in ``folder``."""
    del mtimes  # cache key only: a rewritten CSV is read again
    found: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.csv")):
        try:
            if path.stat().st_size > _MAX_CSV_BYTES:
                continue
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = [(c or "").strip() for c in reader.fieldnames or []]
                id_col = next((c for c in ID_COLUMNS if c in header), None)
                cols = [c for c in GROUP_COLUMNS if c in header]
                if id_col is None or not cols:
                    continue
                reader.fieldnames = header
                for row in reader:
                    image_id = (row.get(id_col) or "").strip()
                    values = {c: (row.get(c) or "").strip() for c in cols}
                    if image_id and any(values.values()):
                        found.setdefault(image_id, {}).update(
                            {c: v for c, v in values.items() if v}
                        )
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return found


def _lookup(path: Path) -> dict[str, str]:
    folder = path.parent
    for _ in range(3):
        csvs = sorted(folder.glob("*.csv"))
        if csvs:
            table = _table(folder, tuple((p.name, p.stat().st_mtime_ns) for p in csvs))
            if path.stem in table:
                return table[path.stem]
        if folder.parent == folder:
            break
        folder = folder.parent
    return {}


@dataclass(frozen=True)
class Groups:
    """Per image of one set: its lesion and patient ids (``None``: unknown)."""

    lesion: tuple[str | None, ...]
    patient: tuple[str | None, ...]

    @classmethod
    def read(cls, paths: Sequence[str | Path] | None) -> Groups:
        rows = [_lookup(Path(p)) for p in paths or []]
        return cls(
            tuple(r.get("lesion_id") for r in rows), tuple(r.get("patient_id") for r in rows)
        )

    def column(self, name: str) -> tuple[str | None, ...]:
        return self.lesion if name == "lesion_id" else self.patient

    def known(self, name: str) -> int:
        return sum(v is not None for v in self.column(name))


def grouping_column(*sets: Groups) -> str | None:
    """``lesion_id`` if every given set has some lesion ids, else ``patient_id`` likewise,
    else ``None`` (no grouping)."""
    for name in GROUP_COLUMNS:
        if sets and all(g.known(name) for g in sets):
            return name
    return None


def group_codes(*columns: Sequence[str | None]) -> list[np.ndarray]:
    """Integer codes shared across the given columns: equal ids get equal codes; every
    ``None`` gets a code of its own (it matches nothing)."""
    codes: dict[str, int] = {}
    out, fresh = [], 0
    for column in columns:
        arr = np.empty(len(column), dtype=np.int64)
        for i, value in enumerate(column):
            if value is None:
                arr[i] = -1 - fresh
                fresh += 1
            else:
                arr[i] = codes.setdefault(value, len(codes))
        out.append(arr)
    return out


def split_by_group(
    keys: Sequence[str | None], fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Random split of items into parts of about ``fractions`` of the items, keeping every
    group (equal non-None key) inside one part; items without a key are groups of one."""
    (codes,) = group_codes(keys)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(codes):
        groups.setdefault(int(c), []).append(i)
    order = rng.permutation(len(groups))
    members = list(groups.values())
    bounds = np.cumsum(fractions) / np.sum(fractions) * len(keys)
    parts: list[list[int]] = [[] for _ in fractions]
    filled = 0
    part = 0
    for g in order:
        while part < len(parts) - 1 and filled >= bounds[part]:
            part += 1
        parts[part].extend(members[g])
        filled += len(members[g])
    return [np.array(sorted(p), dtype=np.int64) for p in parts]
