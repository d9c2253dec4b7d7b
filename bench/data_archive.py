"""A large synthetic ISIC archive for bench/data_bench.py, made from the bundled images.

Each output image is one bundled image (../shared/data/isic-sample, else data/isic-demo), with a
small random 4:3 crop (94-99 % of the largest one, sub-pixel offsets) and a random horizontal
flip, upscaled (bilinear) to the target size, with mild sensor-like noise (sigma 4) so that the
JPEG is about as large as a real dermoscopy photo at that size (about 120 KB at 1024x768 and
1.6 MB at 4000x3000, quality 90), then JPEG-encoded. Every image's crop is drawn from its own
seeded generator, so every file differs (the sha256s are checked for duplicates).

Layouts: ``isic-cli`` (``ISIC_<7 digits>.jpg`` + ``metadata.csv`` with the source's labels, as
``isic image download`` writes) or ``folder`` (plain JPEGs). Files are written atomically
(temp + rename) by parallel processes; an archive that already holds the images is reused,
a larger N only adds the missing ones. ``subset(archive, n)`` gives a folder of the first n
(hard links + its own metadata.csv), so that the trainer can be pointed at N images.

    .venv/bin/python bench/data_archive.py --size 1024x768 --count 20000 [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path("/tmp/dermsynth-data-bench")
SOURCES = (ROOT.parent / "shared" / "data" / "isic-sample", ROOT / "data" / "isic-demo")
VERSION = 1  # bump when the images change: archives of another version are rebuilt
NOISE_SIGMA = 4.0
QUALITY = 90
CHUNK = 64
META_COLUMNS = ("isic_id", "benign_malignant", "diagnosis", "source_id", "pixels_x", "pixels_y")


def source_folder() -> Path:
    for folder in SOURCES:
        if any(folder.glob("ISIC_*.jpg")):
            return folder
    raise SystemExit(f"error: no bundled images in {' or '.join(map(str, SOURCES))}")


def _labels(folder: Path) -> dict[str, dict]:
    meta = folder / "metadata.csv"
    if not meta.is_file():
        return {}
    with meta.open(newline="") as f:
        return {row["isic_id"]: row for row in csv.DictReader(f)}


def image_name(i: int, layout: str) -> str:
    return f"ISIC_{i:07d}.jpg" if layout == "isic-cli" else f"img_{i:07d}.jpg"


_WORKER: dict = {}


def _init_worker(sources: list[str], size: tuple[int, int]) -> None:
    from PIL import Image

    images = []
    for path in sources:
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    width, height = size
    pad = 64
    noise = np.random.default_rng(12345).normal(0.0, NOISE_SIGMA, (height + pad, width + pad, 3))
    _WORKER.update(images=images, noise=np.rint(noise).astype(np.int16), pad=pad)


def _make_one(i: int, seed: int, size: tuple[int, int]) -> bytes:
    """The JPEG bytes of image ``i``: a function of (i, seed, size) only."""
    from PIL import Image

    images, noise, pad = _WORKER["images"], _WORKER["noise"], _WORKER["pad"]
    rng = np.random.default_rng([seed, i])
    src = images[i % len(images)]
    width, height = size
    aspect = width / height
    crop_w = min(src.width, src.height * aspect) * rng.uniform(0.94, 0.99)
    crop_h = crop_w / aspect
    left, top = rng.uniform(0, src.width - crop_w), rng.uniform(0, src.height - crop_h)
    img = src.resize(
        (width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
    )
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    oy, ox = rng.integers(0, pad, size=2)
    pixels = np.asarray(img, dtype=np.int16) + noise[oy : oy + height, ox : ox + width]
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def _make_chunk(folder: str, indices: list[int], seed: int, size, layout: str) -> list[tuple]:
    """Writes the missing images among ``indices``; (i, sha256, source index) for each."""
    out = []
    for i in indices:
        path = Path(folder) / image_name(i, layout)
        if path.is_file():  # written by an earlier run (atomically: it is complete)
            data = path.read_bytes()
        else:
            data = _make_one(i, seed, size)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        out.append((i, hashlib.sha256(data).hexdigest(), i % len(_WORKER["images"])))
    return out


def _spec(size: tuple[int, int], seed: int, layout: str, sources: list[Path]) -> dict:
    return {
        "version": VERSION,
        "size": list(size),
        "seed": seed,
        "layout": layout,
        "quality": QUALITY,
        "noise_sigma": NOISE_SIGMA,
        "sources": [p.name for p in sources],
    }


def build(
    work: Path,
    size: tuple[int, int],
    count: int,
    *,
    seed: int = 0,
    layout: str = "isic-cli",
    workers: int = 0,
    log=print,
) -> Path:
    """The archive folder with at least ``count`` images of ``size`` (made or reused)."""
    folder = work / f"archive-{size[0]}x{size[1]}-{layout}"
    folder.mkdir(parents=True, exist_ok=True)
    src_folder = source_folder()
    sources = sorted(src_folder.glob("ISIC_*.jpg"))
    spec = _spec(size, seed, layout, sources)
    manifest_path = folder / "archive.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest.get("spec") == spec and manifest.get("count", 0) >= count:
        log(f"archive {folder}: {manifest['count']} images (cached)")
        return folder
    workers = workers or os.cpu_count() or 1
    chunks = [list(range(s, min(s + CHUNK, count))) for s in range(0, count, CHUNK)]
    t0 = time.perf_counter()
    log(f"archive {folder}: making {count} images {size[0]}x{size[1]}, {workers} processes")
    rows: list[tuple] = []
    with ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=([str(p) for p in sources], size)
    ) as pool:
        futures = [pool.submit(_make_chunk, str(folder), c, seed, size, layout) for c in chunks]
        for k, future in enumerate(futures, 1):
            rows.extend(future.result())
            if k % max(1, len(futures) // 10) == 0:
                done = sum(len(c) for c in chunks[:k])
                log(f"  {done}/{count} ({done / (time.perf_counter() - t0):.0f} images/s)")
    rows.sort()
    shas = [r[1] for r in rows]
    if len(set(shas)) != len(shas):
        raise SystemExit(f"error: {len(shas) - len(set(shas))} duplicate images in {folder}")
    labels = _labels(src_folder)
    meta_rows = [_meta_row(i, sources[s].stem, labels, size, layout) for i, _, s in rows]
    if layout == "isic-cli":
        _write_metadata(folder / "metadata.csv", meta_rows)
    seconds = time.perf_counter() - t0
    manifest = {"spec": spec, "count": count, "seconds": round(seconds, 1), "sha256": shas}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, manifest_path)
    mb = sum((folder / image_name(i, layout)).stat().st_size for i in range(count)) / 1e6
    log(f"archive {folder}: {count} images, {mb:.0f} MB, made in {seconds:.0f} s")
    return folder


def _meta_row(i: int, source_id: str, labels: dict, size, layout: str) -> dict:
    src = labels.get(source_id, {})
    return {
        "isic_id": Path(image_name(i, layout)).stem,
        "benign_malignant": src.get("benign_malignant", ""),
        "diagnosis": src.get("diagnosis", ""),
        "source_id": source_id,
        "pixels_x": size[0],
        "pixels_y": size[1],
    }


def _write_metadata(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=META_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def files(archive: Path, n: int) -> list[Path]:
    """The first ``n`` image files of ``archive``."""
    layout = json.loads((archive / "archive.json").read_text())["spec"]["layout"]
    return [archive / image_name(i, layout) for i in range(n)]


def subset(archive: Path, n: int) -> Path:
    """A folder holding the first ``n`` images of ``archive`` (hard links), same layout."""
    manifest = json.loads((archive / "archive.json").read_text())
    if manifest["count"] < n:
        raise ValueError(f"{archive} holds {manifest['count']} images, fewer than {n}")
    folder = archive.parent / "sets" / f"{archive.name}-n{n}"
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for path in files(archive, n):
        target = folder / path.name
        if not target.exists():
            os.link(path, target)
    if manifest["spec"]["layout"] == "isic-cli":
        with (archive / "metadata.csv").open(newline="") as f:
            rows = [row for _, row in zip(range(n), csv.DictReader(f))]
        _write_metadata(folder / "metadata.csv", rows)
    marker.touch()
    return folder


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= width <= 8000 and 16 <= height <= 8000):
        raise argparse.ArgumentTypeError(f"size out of range: {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=(1024, 768), help="WIDTHxHEIGHT")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--layout", choices=("isic-cli", "folder"), default="isic-cli")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    build(
        args.work, args.size, args.count, seed=args.seed, layout=args.layout, workers=args.workers
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
