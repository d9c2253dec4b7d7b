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
- :func:`load_square` / :func:`load_images`: the above from paths, one image or a batch;
- :func:`to_unit_range` / :func:`to_uint8`: uint8 [0, 255] <-> float [-1, 1], the value range
  of the generator's input and output.
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
