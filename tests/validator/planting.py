"""Near-copies of training images for the privacy tests: the edits a careless generator (or a
person laundering a patient's image) would make. Each function takes and returns a PIL image."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps


def jpeg(img: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def mirror(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def crop(img: Image.Image, keep: float = 0.9) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * keep), round(h * keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.LANCZOS)


def jitter(img: Image.Image, brightness: float = 1.1, contrast: float = 0.9) -> Image.Image:
    return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(brightness)).enhance(contrast)


EDITS = {"jpeg70": jpeg, "mirror": mirror, "crop90": crop, "jitter": jitter}


def plant(sources: list[Path], out_dir: Path) -> dict[str, Path]:
    """Write an exact copy and every edit of each source into ``out_dir``; returns
    {planted file name: source path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    planted: dict[str, Path] = {}
    for i, src in enumerate(sources):
        name = f"copy_{i:03d}_exact{src.suffix}"
        shutil.copyfile(src, out_dir / name)
        planted[name] = src
        with Image.open(src) as raw:
            img = raw.convert("RGB")
        for kind, edit in EDITS.items():
            name = f"copy_{i:03d}_{kind}.png"
            edit(img).save(out_dir / name)
            planted[name] = src
    return planted
