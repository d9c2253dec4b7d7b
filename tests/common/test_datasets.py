"""common.datasets on real ISIC images in each layout, with corrupt files mixed in."""

from __future__ import annotations

import shutil

import pytest

from common import datasets
from tests.trainer.helpers import challenge_folder, isic_cli_folder, plain_folder, write_corrupt


def _reasons(index):
    return {s.path.name: s.reason for s in index.skipped}


def test_isic_cli_layout_skips_corrupt_files(tmp_path):
    folder = isic_cli_folder(tmp_path / "cli", 16, 8)
    index = datasets.scan(folder, progress=False)
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
    benign = datasets.scan(folder, benign_malignant="benign", progress=False)
    assert len(benign.records) == 16
    assert all(r.diagnosis == "nevus" for r in benign.records)
    melanoma = datasets.scan(folder, diagnosis="melanoma", progress=False)
    assert len(melanoma.records) == 8
    assert all(r.benign_malignant == "malignant" for r in melanoma.records)
    assert benign.fingerprint != melanoma.fingerprint
    with pytest.raises(datasets.DataError, match="filtered out by diagnosis=basal"):
        datasets.scan(folder, diagnosis="basal_cell_carcinoma", progress=False)


def test_challenge_layout_labels(tmp_path):
    index = datasets.scan(challenge_folder(tmp_path / "c17"), progress=False)
    assert index.layout == "isic-challenge"
    by_dx = {}
    for r in index.records:
        by_dx.setdefault(r.diagnosis, []).append(r)
    assert len(by_dx["melanoma"]) == 4
    assert all(r.benign_malignant == "malignant" for r in by_dx["melanoma"])
    assert len(by_dx["seborrheic_keratosis"]) == 2 and len(by_dx["nevus"]) == 4
    benign = by_dx["nevus"] + by_dx["seborrheic_keratosis"]
    assert all(r.benign_malignant == "benign" for r in benign)
    assert not any("superpixels" in r.path.name for r in index.records)
    assert len(index.skipped) == 3
    sk = datasets.scan(tmp_path / "c17", diagnosis="seborrheic_keratosis", progress=False)
    assert len(sk.records) == 2


def test_plain_folder_recursive(tmp_path):
    index = datasets.scan(plain_folder(tmp_path / "plain"), progress=False)
    assert index.layout == "folder"
    assert sorted(r.path.suffix for r in index.records) == [
        ".bmp",
        ".bmp",
        ".jpg",
        ".jpg",
        ".png",
        ".png",
    ]
    assert sorted(s.path.name for s in index.skipped) == ["empty.jpg", "text.jpg", "truncated.jpg"]
    with pytest.raises(datasets.DataError, match="without metadata"):
        datasets.scan(tmp_path / "plain", benign_malignant="benign", progress=False)


def test_fingerprint_ignores_names_order_and_folder(tmp_path):
    first = datasets.scan(isic_cli_folder(tmp_path / "one", 6, 2, corrupt=False), progress=False)
    other = tmp_path / "elsewhere" / "nested"
    other.mkdir(parents=True)
    for i, rec in enumerate(reversed(first.records)):
        shutil.copy(rec.path, other / f"renamed_{i:02d}.png.jpg")
    second = datasets.scan(tmp_path / "elsewhere", progress=False)
    assert second.layout == "folder"
    assert second.fingerprint == first.fingerprint
    (other / "renamed_00.png.jpg").unlink()
    assert datasets.scan(tmp_path / "elsewhere", progress=False).fingerprint != first.fingerprint


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(datasets.DataError, match="does not exist"):
        datasets.scan(tmp_path / "nope", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datasets.DataError, match="no usable images"):
        datasets.scan(empty, progress=False)
    only_bad = tmp_path / "bad"
    write_corrupt(only_bad, "t", "x", "z")
    with pytest.raises(datasets.DataError, match=r"3 skipped: .*0 bytes|3 skipped: .*truncated"):
        datasets.scan(only_bad, progress=False)


def test_forced_layouts_and_bad_metadata_are_refused(tmp_path):
    plain = plain_folder(tmp_path / "plain")
    with pytest.raises(datasets.DataError, match="unknown layout 'zip'"):
        datasets.scan(plain, layout="zip", progress=False)
    with pytest.raises(datasets.DataError, match="no metadata.csv"):
        datasets.scan(plain, layout="isic-cli", progress=False)
    with pytest.raises(datasets.DataError, match="no CSV with columns image_id"):
        datasets.scan(plain, layout="isic-challenge", progress=False)
    assert datasets.scan(plain, layout="folder", progress=False).layout == "folder"
    c17 = challenge_folder(tmp_path / "c17")
    truth = next(c17.glob("*.csv"))
    truth.write_text(truth.read_text().replace(",1.0,", ",yes,", 1))
    with pytest.raises(datasets.DataError, match="column 'melanoma' has a non-numeric value 'yes'"):
        datasets.scan(c17, progress=False)
