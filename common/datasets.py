"""The data set index: which image files of an ISIC folder are usable, with their labels.

Three layouts are understood:

- ``isic-cli``: ``ISIC_*.jpg`` files beside a ``metadata.csv`` with an ``isic_id`` column, as
  written by the ISIC Archive's ``isic image download`` (github.com/ImageMarkup/isic-cli);
- ``isic-challenge``: the ISIC 2017 challenge layout, an images folder plus a ground-truth CSV
  with ``image_id,melanoma,seborrheic_keratosis`` (benign_malignant = malignant iff
  melanoma == 1; diagnosis melanoma / seborrheic_keratosis / nevus);
- ``folder``: any folder of ``.jpg/.jpeg/.png/.bmp`` files, searched recursively (no metadata).

:func:`scan` reads each file once: without a policy it fully decodes it to verify it
(:func:`common.images.verify`); with ``policy=`` it prepares it instead
(:func:`common.image_cache.prepare`: sha256, decode and resize from the same bytes).
Unreadable, truncated and non-image files become :class:`Skipped` entries with a reason. The
data set's fingerprint is :func:`common.hashing.fingerprint` over the usable files' sha256
(name- and order-independent). Used by the trainer (``--data``) and the validator (the real
and holdout sets); the trainer's pixels come from ``scan(policy=...)``, the validator's from
:func:`common.images.load_images`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.hashing import fingerprint as _fingerprint
from common.images import IMAGE_SUFFIXES, verify

LAYOUTS = ("auto", "isic-cli", "isic-challenge", "folder")
CHALLENGE_COLUMNS = ("image_id", "melanoma", "seborrheic_keratosis")


class DataError(UserError):
    """The data folder is missing, holds no usable image, or its metadata is malformed."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    image_id: str
    sha256: str
    benign_malignant: str | None
    diagnosis: str | None


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    layout: str  # "isic-cli" | "isic-challenge" | "folder"
    records: tuple[ImageRecord, ...]
    skipped: tuple[Skipped, ...]
    fingerprint: str
    # the scan's common.image_cache.Prepared when it ran with a policy (rows == records)
    prepared: object | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Candidate:
    path: Path
    image_id: str
    benign_malignant: str | None
    diagnosis: str | None


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError):
        return []


def _challenge_csv(root: Path) -> Path | None:
    for path in sorted(root.glob("*.csv")):
        header = _read_header(path)
        if all(c in header for c in CHALLENGE_COLUMNS):
            return path
    return None


def detect_layout(root: Path) -> str:
    """``isic-cli`` if ``metadata.csv`` has ``isic_id``; ``isic-challenge`` if a CSV in the
    root has the challenge ground-truth columns; otherwise ``folder``."""
    meta = root / "metadata.csv"
    if meta.is_file() and "isic_id" in _read_header(meta):
        return "isic-cli"
    if _challenge_csv(root) is not None:
        return "isic-challenge"
    return "folder"


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [
                {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(fh)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _by_stem(files: Iterable[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        found.setdefault(path.stem, path)
    return found


def _isic_cli(root: Path) -> tuple[list[_Candidate], list[Skipped]]:
    rows = _read_rows(root / "metadata.csv")
    files = _by_stem(_image_files(root))
    candidates, skipped, listed = [], [], set()
    for row in rows:
        image_id = row.get("isic_id", "")
        if not image_id:
            continue
        listed.add(image_id)
        path = files.get(image_id)
        if path is None:
            skipped.append(
                Skipped(root / f"{image_id}.jpg", "listed in metadata.csv, file missing")
            )
            continue
        candidates.append(
            _Candidate(
                path, image_id, row.get("benign_malignant") or None, row.get("diagnosis") or None
            )
        )
    for stem, path in files.items():
        if stem not in listed:
            skipped.append(Skipped(path, "no row in metadata.csv"))
    return candidates, skipped


def _flag(value: str, column: str, csv_path: Path) -> bool:
    try:
        return float(value) >= 0.5
    except ValueError:
        raise DataError(
            f"{csv_path}: column {column!r} has a non-numeric value {value!r}"
        ) from None


def _isic_challenge(root: Path) -> tuple[list[_Candidate], list[Skipped]]:
    csv_path = _challenge_csv(root)
    assert csv_path is not None
    files = _by_stem(_image_files(root))
    candidates, skipped = [], []
    for row in _read_rows(csv_path):
        image_id = row.get("image_id", "")
        if not image_id:
            continue
        melanoma = _flag(row.get("melanoma", ""), "melanoma", csv_path)
        sk = _flag(row.get("seborrheic_keratosis", ""), "seborrheic_keratosis", csv_path)
        diagnosis = "melanoma" if melanoma else "seborrheic_keratosis" if sk else "nevus"
        path = files.get(image_id)
        if path is None:
            skipped.append(
                Skipped(root / f"{image_id}.jpg", f"listed in {csv_path.name}, file missing")
            )
            continue
        candidates.append(
            _Candidate(path, image_id, "malignant" if melanoma else "benign", diagnosis)
        )
    return candidates, skipped


def _folder(root: Path) -> tuple[list[_Candidate], list[Skipped]]:
    return [
        _Candidate(p, p.relative_to(root).with_suffix("").as_posix(), None, None)
        for p in _image_files(root)
    ], []


def scan(
    root: str | Path,
    *,
    benign_malignant: str | None = None,
    diagnosis: str | None = None,
    layout: str = "auto",
    progress: bool = True,
    policy=None,
    cache=None,
    workers: int = 0,
    should_stop=None,
) -> DatasetIndex:
    """Index the usable images under ``root`` that match the filters.

    Without ``policy``, each file is verified here (one full decode, serial). With a
    :class:`common.image_cache.PrepPolicy`, the files are instead prepared once
    (:func:`common.image_cache.prepare` with ``cache``, ``workers``, ``should_stop``: one read
    per file gives its sha256, its decodability and its pixels; cache hits decode nothing) and
    the result is ``index.prepared``, whose usable rows are ``index.records`` in order.

    Raises DataError for a missing folder, a filter on a layout without metadata, malformed
    metadata, or when no usable image remains (saying how many were filtered out or skipped).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data folder {root} is not a directory")
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "isic-cli" and not (root / "metadata.csv").is_file():
        raise DataError(f"{root} has no metadata.csv (isic-cli layout)")
    if layout == "isic-challenge" and _challenge_csv(root) is None:
        raise DataError(f"{root} has no CSV with columns {', '.join(CHALLENGE_COLUMNS)}")
    if layout == "folder" and (benign_malignant or diagnosis):
        raise DataError(
            f"{root} is a plain image folder without metadata: "
            "--benign-malignant/--diagnosis filters need the isic-cli or "
            "isic-challenge layout"
        )
    reader = {"isic-cli": _isic_cli, "isic-challenge": _isic_challenge, "folder": _folder}[layout]
    candidates, skipped = reader(root)
    kept = [
        c
        for c in candidates
        if (benign_malignant is None or c.benign_malignant == benign_malignant)
        and (diagnosis is None or c.diagnosis == diagnosis)
    ]
    filtered_out = len(candidates) - len(kept)
    records: list[ImageRecord] = []
    prepared = None
    if policy is not None:
        from common.image_cache import prepare

        prepared = prepare(
            [c.path for c in kept],
            policy,
            cache=cache,
            workers=workers,
            progress=progress,
            should_stop=should_stop,
        )
        reasons = dict(prepared.skipped)
        results = [(sha, reasons.get(c.path)) for c, sha in zip(kept, prepared.sha256)]
    else:
        from tqdm import tqdm

        checking = tqdm(kept, desc="checking images", unit="img", disable=not progress)
        results = [verify(c.path) for c in checking]
    for cand, (sha, reason) in zip(kept, results):
        if sha is None:
            skipped.append(Skipped(cand.path, reason or "unusable"))
            continue
        records.append(
            ImageRecord(cand.path, cand.image_id, sha, cand.benign_malignant, cand.diagnosis)
        )
    if not records:
        filters = ", ".join(
            f"{k}={v}"
            for k, v in (("benign_malignant", benign_malignant), ("diagnosis", diagnosis))
            if v
        )
        reasons = _summarise(skipped)
        raise DataError(
            f"no usable images in {root} (layout {layout}): {len(candidates)} found, "
            f"{filtered_out} filtered out{' by ' + filters if filters else ''}, "
            f"{len(skipped)} skipped{': ' + reasons if reasons else ''}"
        )
    return DatasetIndex(
        root=root,
        layout=layout,
        records=tuple(records),
        skipped=tuple(skipped),
        fingerprint=_fingerprint(r.sha256 for r in records),
        prepared=prepared,
    )


def _summarise(skipped: Sequence[Skipped], limit: int = 3) -> str:
    shown = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:limit])
    more = len(skipped) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
