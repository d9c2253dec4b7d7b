"""common.images: decoding, verification, centre crop + resize, and the value-range conversions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from common import images
from tests.trainer.helpers import DEMO, PYTHON, REPO, write_corrupt


def test_load_square_crops_centre_then_resizes(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides black
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = images.load_square(tmp_path / "wide.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out.min() >= 250
    batch = images.load_images([tmp_path / "wide.png"] * 3, 8, progress=False)
    assert batch.shape == (3, 8, 8, 3)
    unit = images.to_unit_range(np.array([0, 255], np.uint8))
    assert unit.dtype == np.float32 and unit.tolist() == [-1.0, 1.0]


def test_decode_applies_exif_orientation_and_converts_to_rgb(tmp_path):
    img = Image.new("L", (6, 2), 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    decoded = images.decode((tmp_path / "rotated.jpg").read_bytes())
    assert decoded.mode == "RGB" and decoded.size == (2, 6)


def test_load_images_takes_paths_or_records_like_one_decode(tmp_path):
    from common.datasets import scan

    records = scan(DEMO, progress=False).records[:3]
    by_record = images.load_images(records, 24, progress=False)
    by_path = images.load_images([str(r.path) for r in records], 24, progress=False)
    one_decode = np.stack(
        [images.centre_square(images.decode(r.path.read_bytes()), 24) for r in records]
    )
    assert np.array_equal(by_record, by_path) and np.array_equal(by_record, one_decode)
    assert len({a.tobytes() for a in by_record}) == 3


def test_verify_gives_a_sha256_or_a_reason(tmp_path, monkeypatch):
    good = DEMO / "ISIC_0000002.jpg"
    sha, reason = images.verify(good)
    assert reason is None and len(sha) == 64
    truncated, text, empty = write_corrupt(tmp_path, "t", "x", "z")
    assert images.verify(truncated)[1].startswith("not a decodable image")
    assert images.verify(text)[1].startswith("not a decodable image")
    assert images.verify(empty) == (None, "empty file (0 bytes)")
    assert images.verify(tmp_path / "missing.jpg")[1].startswith("unreadable")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # Pillow's own decompression-bomb guard
    sha, reason = images.verify(good)
    assert sha is None and reason.startswith("too large")


def _old_trainer_to_uint8(x):  # trainer/rundir.py's and trainer/quality.py's former copy
    return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_to_uint8_clips_and_inverts_to_unit_range():
    x = np.array([-1.5, -1.0, 0.0, 1.0, 1.5, -1 + 1 / 127.5], np.float32)
    assert images.to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1]
    u = np.arange(256, dtype=np.uint8)
    assert np.array_equal(images.to_uint8(images.to_unit_range(u)), u)


def test_to_uint8_matches_the_trainers_former_copy_on_float32_and_computes_in_float32():
    """The trainer's generator output is float32: the one shared to_uint8 gives it the same
    bytes as before. Any other dtype is rounded to float32 first (the served bytes' rule)."""
    k = np.arange(-4, 260)
    edges = ((k + 0.5) / 127.5 - 1).astype(np.float32)
    x = np.concatenate(
        [
            edges,
            np.nextafter(edges, np.float32(2)),
            np.nextafter(edges, np.float32(-2)),
            np.random.default_rng(0).uniform(-1.1, 1.1, 100_000).astype(np.float32),
        ]
    )
    assert np.array_equal(images.to_uint8(x), _old_trainer_to_uint8(x))
    x64 = np.concatenate([(k + 0.5) / 127.5 - 1, np.linspace(-1.1, 1.1, 10_001)])
    assert np.array_equal(images.to_uint8(x64), images.to_uint8(x64.astype(np.float32)))


def test_image_modules_import_without_tensorflow_or_a_service():
    code = (
        "import sys, common.datasets;"
        "common.datasets.scan('data/isic-demo', progress=False);"
        "bad = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'tensorflow', 'keras', 'trainer', 'serving', 'validator'});"
        "assert not bad, bad"
    )
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    result = subprocess.run(
        [python, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
