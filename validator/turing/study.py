"""A study's images and each rater's order.

At creation a study draws ``per_rater / 2`` real and ``per_rater / 2`` synthetic images (seeded)
from the two folders, and re-encodes every one the same way: EXIF orientation applied, centre
crop to a square, Lanczos resize to ``size`` px, RGB, then PNG at compression level 0 with no
metadata chunk (no EXIF, ICC profile, text or time). An uncompressed PNG of a given size has the
same byte length whatever its pixels, so neither format, encoder settings nor byte size can tell
a real image from a synthetic one. The encoded images live in the study's database; the server
reads no image file after creation.

Every rater sees every image of the study once, in an order shuffled with the seed
``(study seed, rater number)``: 50/50 real and synthetic, reproducible per rater, different
between raters (so that Fleiss' kappa can be computed over the same items).
"""

from __future__ import annotations

import io
import json
import re
import secrets
from pathlib import Path

import numpy as np

from common.errors import UserError
from validator.turing.store import Store, Study, StudyImage, now

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
THUMB = 96
PER_RATER = 100  # images each rater sees (half real, half synthetic)
SIZE = 256  # px, the side of every image shown
ENCODING = {
    "crop": "centre square",
    "resize": "lanczos",
    "format": "png",
    "png_compress_level": 0,
    "metadata": "none",
}


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise UserError(
            f"study name {name[:70]!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 [H, W, 3] as an uncompressed PNG without metadata (IHDR, IDAT, IEND only)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def encode_thumb(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(pixels, "RGB").resize((THUMB, THUMB), Image.Resampling.LANCZOS)
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _records(folder: Path, role: str) -> list:
    """The usable images of ``folder`` that really lie in it (a link leading out is skipped)."""
    from common.datasets import DataError, scan

    try:
        index = scan(folder, progress=False)
    except DataError as exc:
        raise UserError(f"--{role}: {exc}") from None
    root = Path(folder).resolve()
    return [r for r in index.records if Path(r.path).resolve().is_relative_to(root)]


def _fingerprint(records) -> str:
    from common.hashing import fingerprint

    return fingerprint(r.sha256 for r in records)


def folder_fingerprints(real: Path, synthetic: Path) -> tuple[str, str]:
    return _fingerprint(_records(real, "real")), _fingerprint(_records(synthetic, "synthetic"))


def create_study(
    store: Store,
    name: str,
    real: Path,
    synthetic: Path,
    *,
    per_rater: int,
    size: int,
    seed: int | None = None,
) -> Study:
    """Choose, encode and store the images of a new study ``name``."""
    from common.images import DECODE_ERRORS, load_square

    check_name(name)
    if per_rater < 2 or per_rater % 2:
        raise UserError(f"--per-rater {per_rater}: an even number >= 2 (half real, half synthetic)")
    seed = secrets.randbits(63) if seed is None else seed
    rng = np.random.default_rng([seed, 0])
    images: list[StudyImage] = []
    fingerprints = {}
    for role, folder in (("real", real), ("synthetic", synthetic)):
        records = sorted(_records(folder, role), key=lambda r: str(r.path))
        fingerprints[role] = _fingerprint(records)
        half = per_rater // 2
        if len(records) < half:
            raise UserError(
                f"--{role}: {folder} holds {len(records)} usable images; --per-rater "
                f"{per_rater} needs {half} real and {half} synthetic"
            )
        chosen = sorted(rng.choice(len(records), size=half, replace=False))
        for i in chosen:
            record = records[i]
            try:
                pixels = load_square(record.path, size)
            except DECODE_ERRORS as exc:
                raise UserError(f"--{role}: {record.path}: not a decodable image ({exc})") from None
            images.append(
                StudyImage(
                    idx=len(images),
                    role=role,
                    name=str(Path(record.path).resolve().relative_to(Path(folder).resolve())),
                    sha256=record.sha256,
                    png=encode_png(pixels),
                    thumb=encode_thumb(pixels),
                )
            )
    study = Study(
        name=name,
        created=now(),
        seed=seed,
        size=size,
        per_rater=per_rater,
        real_fingerprint=fingerprints["real"],
        synthetic_fingerprint=fingerprints["synthetic"],
        settings=json.dumps(
            {**ENCODING, "real": str(real), "synthetic": str(synthetic)}, sort_keys=True
        ),
    )
    store.create_study(study, images)
    return study


def open_study(
    store: Store,
    name: str,
    real: Path | None,
    synthetic: Path | None,
    *,
    per_rater: int | None = None,
    size: int | None = None,
    seed: int | None = None,
) -> tuple[Study, bool]:
    """The study ``name``: created from the folders when new (``(study, True)``; ``per_rater``
    and ``size`` default to :data:`PER_RATER` and :data:`SIZE`); when it exists, the folders
    and settings given (None: not given) must be those it was created with."""
    check_name(name)
    study = store.study(name)
    if study is None:
        if real is None or synthetic is None:
            raise UserError(f"study {name!r} does not exist yet: give --real and --synthetic")
        per_rater, size = per_rater or PER_RATER, size or SIZE
        study = create_study(
            store, name, real, synthetic, per_rater=per_rater, size=size, seed=seed
        )
        return study, True
    changed = []
    if per_rater is not None and per_rater != study.per_rater:
        changed.append(f"--per-rater {per_rater} (study: {study.per_rater})")
    if size is not None and size != study.size:
        changed.append(f"--size {size} (study: {study.size})")
    if seed is not None and seed != study.seed:
        changed.append("--seed")
    if real is not None or synthetic is not None:
        if real is None or synthetic is None:
            raise UserError("give both --real and --synthetic, or neither to resume a study")
        fp_real, fp_synthetic = folder_fingerprints(real, synthetic)
        if fp_real != study.real_fingerprint:
            changed.append(f"the images in --real {real}")
        if fp_synthetic != study.synthetic_fingerprint:
            changed.append(f"the images in --synthetic {synthetic}")
    if changed:
        raise UserError(
            f"study {name!r} is immutable and was started with other settings: "
            f"{'; '.join(changed)}; a changed image set or setting means a new study "
            "(choose another --study name)"
        )
    return study, False


def rater_order(study: Study, n_images: int, seq: int) -> list[int]:
    """The image indices in the order rater number ``seq`` (1, 2, ...) sees them."""
    return [int(i) for i in np.random.default_rng([study.seed, seq]).permutation(n_images)]


def new_session(store: Store, study: Study, rater: str) -> str:
    """A new rater session (its id is the secret part of the rater's link)."""
    rater = " ".join(rater.split())[:80] or "rater"
    n = len(store.image_roles(study.name))
    return store.create_session(study.name, rater, lambda seq: rater_order(study, n, seq))
