"""trainer.data on real ISIC images in each layout, with corrupt files mixed in."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.trainer.helpers import PYTHON, REPO, challenge_folder, isic_cli_folder, plain_folder
from trainer import data


def _reasons(index):
    return {s.path.name: s.reason for s in index.skipped}


def test_isic_cli_layout_skips_corrupt_files(tmp_path):
    folder = isic_cli_folder(tmp_path / "cli", 16, 8)
    index = data.scan(folder, progress=False)
    assert index.layout == "isic-cli"
    assert len(index.records) == 24
    reasons = _reasons(index)
    assert set(reasons) == {"ISIC_9000001.jpg", "ISIC_9000002.jpg", "ISIC_9000003.jpg"}
    assert "truncated" in reasons["ISIC_9000001.jpg"]
    assert "not a decodable image" in reasons["ISIC_9000002.jpg"]
    assert "0 bytes" in reasons["ISIC_9000003.jpg"]
    assert {r.benign_malignant for r in index.records} == {"benign", "malignant"}


def test_isic_cli_filters(tmp_path):
    folder = isic_cli_folder(tmp_path / "cli", 16, 8)
    benign = data.scan(folder, benign_malignant="benign", progress=False)
    assert len(benign.records) == 16
    assert all(r.diagnosis == "nevus" for r in benign.records)
    melanoma = data.scan(folder, diagnosis="melanoma", progress=False)
    assert len(melanoma.records) == 8
    assert all(r.benign_malignant == "malignant" for r in melanoma.records)
    assert benign.fingerprint != melanoma.fingerprint
    with pytest.raises(data.DataError, match="filtered out by diagnosis=basal"):
        data.scan(folder, diagnosis="basal_cell_carcinoma", progress=False)


def test_challenge_layout_labels(tmp_path):
    index = data.scan(challenge_folder(tmp_path / "c17"), progress=False)
    assert index.layout == "isic-challenge"
    by_dx = {}
    for r in index.records:
        by_dx.setdefault(r.diagnosis, []).append(r)
    assert len(by_dx["melanoma"]) == 4
    assert all(r.benign_malignant == "malignant" for r in by_dx["melanoma"])
    assert len(by_dx["seborrheic_keratosis"]) == 2 and len(by_dx["nevus"]) == 4
    assert all(r.benign_malignant == "benign" for r in by_dx["nevus"] + by_dx["seborrheic_keratosis"])
    assert not any("superpixels" in r.path.name for r in index.records)
    assert len(index.skipped) == 3
    sk = data.scan(tmp_path / "c17", diagnosis="seborrheic_keratosis", progress=False)
    assert len(sk.records) == 2


def test_plain_folder_recursive(tmp_path):
    index = data.scan(plain_folder(tmp_path / "plain"), progress=False)
    assert index.layout == "folder"
    assert sorted(r.path.suffix for r in index.records) == [".bmp", ".bmp", ".jpg", ".jpg",
                                                           ".png", ".png"]
    assert sorted(s.path.name for s in index.skipped) == ["empty.jpg", "text.jpg", "truncated.jpg"]
    with pytest.raises(data.DataError, match="without metadata"):
        data.scan(tmp_path / "plain", benign_malignant="benign", progress=False)


def test_fingerprint_ignores_names_order_and_folder(tmp_path):
    first = data.scan(isic_cli_folder(tmp_path / "one", 6, 2, corrupt=False), progress=False)
    other = tmp_path / "elsewhere" / "nested"
    other.mkdir(parents=True)
    for i, rec in enumerate(reversed(first.records)):
        shutil.copy(rec.path, other / f"renamed_{i:02d}.png.jpg")
    second = data.scan(tmp_path / "elsewhere", progress=False)
    assert second.layout == "folder"
    assert second.fingerprint == first.fingerprint
    (other / "renamed_00.png.jpg").unlink()
    assert data.scan(tmp_path / "elsewhere", progress=False).fingerprint != first.fingerprint


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.scan(tmp_path / "nope", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match="no usable images"):
        data.scan(empty, progress=False)
    only_bad = tmp_path / "bad"
    from tests.trainer.helpers import write_corrupt
    write_corrupt(only_bad, "t", "x", "z")
    with pytest.raises(data.DataError, match=r"3 skipped: .*0 bytes|3 skipped: .*truncated"):
        data.scan(only_bad, progress=False)


def test_load_square_crops_centre_then_resizes(tmp_path):
    from PIL import Image
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides black
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = data.load_square(tmp_path / "wide.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out.min() >= 250
    batch = data.load_images([tmp_path / "wide.png"] * 3, 8, progress=False)
    assert batch.shape == (3, 8, 8, 3)
    unit = data.to_unit_range(np.array([0, 255], np.uint8))
    assert unit.dtype == np.float32 and unit.tolist() == [-1.0, 1.0]


def test_data_module_does_not_import_tensorflow():
    code = ("import sys, trainer, trainer.data; trainer.data.scan('data/isic-demo', progress=False);"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported';"
            "assert 'keras' not in sys.modules, 'keras imported'")
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    result = subprocess.run([python, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
