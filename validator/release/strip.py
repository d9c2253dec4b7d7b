"""Images without metadata: every synthetic image is decoded and re-encoded as a PNG that holds
only its critical chunks (IHDR, IDAT, IEND): no EXIF (``eXIf``), text (``tEXt``/``iTXt``/
``zTXt``), time (``tIME``), physical size or colour-profile chunk. The pixels are unchanged
(PNG is lossless; a JPEG source is decoded once). The bytes are deterministic for given pixels
(zlib level 6, no options), so re-stripping a bundle's image gives the same sha256.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from common.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def stripped_png(path: Path) -> bytes:
    """The image at ``path`` as RGB PNG bytes with critical chunks only. UserError if it is
    not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())  # no info dict carried over
    buf = io.BytesIO()
    clean.save(buf, format="PNG", compress_level=6)
    data = buf.getvalue()
    extra = [c for c in chunk_types(data) if c not in CRITICAL]
    if extra:  # Pillow added one: drop it rather than ship metadata
        data = _only_critical(data)
    return data


def chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of PNG ``data`` in order (ValueError if it is not a PNG)."""
    return [kind for kind, _body in _chunks(data)]


def _chunks(data: bytes):
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def _only_critical(data: bytes) -> bytes:
    out = [PNG_SIGNATURE]
    for kind, body in _chunks(data):
        if kind in CRITICAL:
            crc = zlib.crc32(kind + body) & 0xFFFFFFFF
            out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)
