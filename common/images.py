"""Image files to pixels and back: decoding, verification, centre crop + resize, value ranges.

Pure Pillow + NumPy (no TensorFlow), shared by the trainer, the validator and the generator
server. The building blocks compose so that a caller can decode each file once::

    data = path.read_bytes()
    image = decode(data)              # raises one of DECODE_ERRORS on a bad file
    pixels = centre_square(image, 64)  # uint8 [64, 64, 3]

- :func:`decode`: full decode (a truncated file fails here, not later), EXIF orientation
  applied, converted to RGB;
- :func:`verify`: ``(sha256, None)`` for a usable file, ``(None, reason)`` otherwise;
- :func:`centre_square`: centre crop to a square, then Lanczos resize to ``size``;
- :func:`decode_square`: bytes to uint8 [size, size, 3] in one go, with JPEG draft mode (below);
- :func:`load_square` / :func:`load_images`: the above from paths, one image or a batch (plain
  full-resolution decode, no draft mode);
- :func:`to_unit_range` / :func:`to_uint8`: uint8 [0, 255] <-> float [-1, 1], the value range
  of the generator's input and output.

JPEG draft mode (:func:`decode_square` with ``draft=True``): libjpeg's DCT scaling decodes a
JPEG at 1/2, 1/4 or 1/8 of its size, much faster than a full decode. The rule
(:data:`DRAFT_FACTOR` = 2): the largest reduction that keeps BOTH sides >= 2 * size, so the
short side never drops below twice the target (a source smaller than that is decoded at full
size, i.e. identically); then the same EXIF transpose, RGB, centre crop and Lanczos as the plain
path. Other formats (PNG, BMP) ignore it. Measured against the plain path (uint8 abs difference
over all pixels; PSNR pooled over images), command ``python draft_tolerance.py FOLDER N SIZES 2``
(issue 9 report):

- 401 ISIC sample images (256 px long side) at 32 px, the only size where the rule reduces
  them: mean 0.50 (worst image 3.1), max 28, PSNR 46.8 dB (worst image 33.8 dB); at 64 and
  128 px nothing is reduced and the pixels are identical;
- 150 images at 1024x768: mean 0.22 / 0.19 at 64 / 128 px, max 2, PSNR 54.7 / 55.3 dB;
- 25 images at 4000x3000 (1/8 is the largest reduction): mean 0.34-0.62, max 12, PSNR >= 48 dB.

tests/common/test_image_cache.py asserts mean < 1.0 (and < 6 per image) on the bundled images.
Which path each side uses: the trainer's pixels and the validator's pixel-space pixels (dcr's
pixel space, swd, colour, pixel_c2st, thumbnails; at ``--pixel-size``) both come from
:func:`common.image_cache.prepare` with ``draft=True`` and the shared cache, so at the same
size they are bit-identical. The validator's Xception features are computed from the plain
:func:`load_images` (full decode) at the feature model's input size, as before (the feature
cache is keyed by file, model and size, not by decode path); they can differ from a draft
decode by the tolerance above.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# What decode() raises for a file that is not a usable image. PIL's UnidentifiedImageError
# and truncated-file errors are OSErrors; DecompressionBombError is not.
DECODE_ERRORS = (Image.DecompressionBombError, OSError, ValueError, SyntaxError)
# JPEG draft mode keeps both sides >= DRAFT_FACTOR * size (see the module docstring).
DRAFT_FACTOR = 2


class HasPath(Protocol):
    """Anything with a ``path`` (e.g. :class:`common.datasets.ImageRecord`)."""

    @property
    def path(self) -> Path: ...


ImageSource = str | Path | HasPath


def decode(data: bytes) -> Image.Image:
    """Fully decode ``data`` into an RGB image, EXIF orientation applied.

    Raises one of :data:`DECODE_ERRORS` for truncated, oversized or non-image bytes.
    """
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def decode_error_reason(exc: BaseException) -> str:
    """The one-line reason :func:`verify` gives for an exception raised by :func:`decode`."""
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large: {exc}"
    return f"not a decodable image: {exc}"


def verify(path: Path) -> tuple[str | None, str | None]:
    """``(sha256 of the file, None)`` for a usable image, ``(None, reason)`` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if not data:
        return None, "empty file (0 bytes)"
    try:
        img = decode(data)
        if img.width < 1 or img.height < 1:
            return None, "image has no pixels"
    except DECODE_ERRORS as exc:
        return None, decode_error_reason(exc)
    return hashlib.sha256(data).hexdigest(), None


def centre_square(img: Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB: centre crop ``img`` to a square, then Lanczos resize."""
    side = min(img.width, img.height)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def decode_square(data: bytes, size: int, *, draft: bool = True) -> np.ndarray:
    """uint8 [size, size, 3] RGB from encoded bytes: decode (JPEG draft mode when ``draft``,
    see the module docstring), EXIF transpose, RGB, centre crop, Lanczos resize.

    Raises one of :data:`DECODE_ERRORS` for truncated, oversized or non-image bytes.
    """
    with Image.open(io.BytesIO(data)) as img:
        if draft and img.format == "JPEG":
            side = DRAFT_FACTOR * size
            img.draft("RGB", (side, side))  # the largest reduction keeping both sides >= side
        img.load()
        img = ImageOps.exif_transpose(img).convert("RGB")
    if img.width < 1 or img.height < 1:
        raise ValueError("image has no pixels")
    return centre_square(img, size)


def load_square(path: str | Path, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB of the image file at ``path`` (see :func:`centre_square`)."""
    return centre_square(decode(Path(path).read_bytes()), size)


def source_path(source: ImageSource) -> Path:
    """The file of ``source``: a path itself, or the ``path`` of a record."""
    return Path(source) if isinstance(source, (str, Path)) else source.path


def load_images(sources: Sequence[ImageSource], size: int, *, progress: bool = True) -> np.ndarray:
    """uint8 [N, size, size, 3] for ``sources`` (paths or records with a ``path``), in order."""
    from tqdm import tqdm

    out = np.empty((len(sources), size, size, 3), dtype=np.uint8)
    for i, source in enumerate(
        tqdm(sources, desc=f"loading {size}px", unit="img", disable=not progress)
    ):
        out[i] = load_square(source_path(source), size)
    return out


def to_unit_range(images_uint8: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] from uint8 in [0, 255]."""
    return np.asarray(images_uint8, dtype=np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 from values in [-1, 1]: round((x + 1) * 127.5) (half to even), clipped.

    Computed in float32 whatever the input's dtype, so the served bytes depend only on the
    model's float32 output (part of the generator's byte-identity promise).
    """
    x = np.add(images, 1.0, dtype=np.float32)
    x *= np.float32(127.5)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)
