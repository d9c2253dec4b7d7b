"""common.manifest: model.json as one strict, versioned dataclass. Manifests as dermsynth 0.1
wrote them load unchanged; another format version, an unknown or missing key, a wrong type or
a bad value is refused with a UserError (exit 2) that names the file and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common.errors import UserError
from common.hashing import sha256_file
from common.manifest import MANIFEST_FILE, ManifestError, ModelManifest

# model.json exactly as dermsynth 0.1.0 exported it before exports recorded the checkpoint
# (trainer/export.py at the first snapshot): every key but "checkpoint".
V01 = {
    "channels": 3,
    "created": "2025-01-31T12:00:00Z",
    "ema": True,
    "epochs": 2,
    "format": "dermsynth-generator",
    "format_version": 1,
    "input_name": "latent",
    "latent_dim": 16,
    "latent_distribution": "standard_normal",
    "layout": "NHWC",
    "onnx_file": "model.onnx",
    "onnx_sha256": "ab" * 32,
    "opset": 17,
    "output_name": "images",
    "parity_max_abs_diff": 2.384185791015625e-07,
    "resolution": 32,
    "seed": 0,
    "training_data": {
        "fingerprint": "cd" * 32,
        "image_count": 24,
        "layout": "isic-cli",
        "filters": {"benign_malignant": "benign", "diagnosis": None},
    },
    "value_range": [-1.0, 1.0],
    "versions": {
        "dermsynth": "0.1.0",
        "keras": "3.6.0",
        "onnx": "1.17.0",
        "onnxruntime": "1.20.1",
        "tensorflow": "2.18.0",
        "tf2onnx": "1.16.1",
    },
}
BEST = {
    "selected": "best",
    "epoch": 2,
    "reason": "lowest quality_score 1.2 of 2 measured epochs",
    "quality": {"epoch": 2, "quality_score": 1.2},
    "quality_reference": {"swd_avg": 0.1},
}


def write(folder: Path, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return folder


def with_(**changes) -> dict:
    doc = copy.deepcopy(V01)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = doc
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return doc


DELETE = object()


def test_a_manifest_written_by_0_1_loads_and_round_trips(tmp_path):
    m = ModelManifest.load(write(tmp_path / "m", V01))
    assert (m.latent_dim, m.resolution, m.channels, m.format_version) == (16, 32, 3, 1)
    assert m.training_data.image_count == 24 and m.training_data.filters["diagnosis"] is None
    assert m.checkpoint is None and m.seed == 0 and m.ema is True
    assert m.to_dict() == {**V01, "checkpoint": None}
    m.write(tmp_path / "again")
    assert ModelManifest.load(tmp_path / "again" / MANIFEST_FILE) == m
    assert [p.name for p in (tmp_path / "again").iterdir()] == [MANIFEST_FILE]  # no temp file


def test_the_checkpoint_record_round_trips(tmp_path):
    doc = with_(checkpoint=BEST)
    m = ModelManifest.load(write(tmp_path, doc))
    assert (m.checkpoint.selected, m.checkpoint.epoch) == ("best", 2)
    assert m.to_dict() == doc
    last = {"selected": "last", "epoch": 2, "reason": "the last complete checkpoint"}
    assert ModelManifest.from_dict(with_(checkpoint=last)).to_dict()["checkpoint"] == last


@pytest.mark.parametrize(
    "version, advice",
    [(2, "upgrade dermsynth"), (0, "export the model again"), ("1", "export the model again")],
)
def test_another_format_version_is_refused_naming_it(tmp_path, version, advice):
    with pytest.raises(ManifestError) as info:
        ModelManifest.load(write(tmp_path, with_(format_version=version)))
    text = str(info.value)
    assert info.value.field == "format_version" and f"is {version!r}" in text
    assert "reads dermsynth-generator version 1 only" in text and advice in text
    assert str(tmp_path / MANIFEST_FILE) in text


def test_a_0_1_manifest_missing_a_key_is_refused_naming_version_and_writer(tmp_path):
    with pytest.raises(
        ManifestError,
        match=r"field 'opset' is missing from this "
        r"dermsynth-generator v1 manifest \(written by dermsynth 0\.1\.0\); "
        r"export the model again",
    ) as info:
        ModelManifest.load(write(tmp_path, with_(opset=DELETE)))
    assert info.value.field == "opset"


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"format": "onnx"}, "format", "not a dermsynth generator manifest"),
        ({"extra": 1}, "extra", "unknown key"),
        ({"training_data__extra": 1}, "training_data.extra", "unknown key"),
        ({"training_data__layout": DELETE}, "training_data.layout", "is missing"),
        ({"checkpoint": {"selected": "last", "epoch": 1}}, "checkpoint.reason", "is missing"),
        ({"latent_dim": "16"}, "latent_dim", "should be an integer"),
        ({"latent_dim": 16.0}, "latent_dim", "should be an integer"),
        ({"epochs": True}, "epochs", "should be an integer"),
        ({"ema": 1}, "ema", "should be true or false"),
        ({"seed": "0"}, "seed", "should be an integer or null"),
        ({"training_data": [1]}, "training_data", "should be a JSON object"),
        ({"training_data__image_count": "24"}, "training_data.image_count", "should be an integer"),
        (
            {"training_data__filters__diagnosis": 3},
            "training_data.filters.diagnosis",
            "should be a string or null",
        ),
        ({"versions__onnx": 1.17}, "versions.onnx", "should be a string"),
        ({"value_range": [-1.0]}, "value_range", "should be a list of 2 numbers"),
        ({"value_range": [0.0, 1.0]}, "value_range", "only [-1.0, 1.0]"),
        ({"latent_dim": 0}, "latent_dim", "positive"),
        ({"resolution": 2**40}, "resolution", "positive"),
        ({"channels": 4}, "channels", "only 3"),
        ({"layout": "NCHW"}, "layout", "only 'NHWC'"),
        ({"latent_distribution": "uniform"}, "latent_distribution", "only 'standard_normal'"),
        ({"onnx_file": "../model.onnx"}, "onnx_file", "inside the model directory"),
        ({"onnx_sha256": "abc"}, "onnx_sha256", "not a hex sha256"),
        ({"training_data__fingerprint": "x"}, "training_data.fingerprint", "hex sha256"),
        ({"parity_max_abs_diff": 0.5}, "parity_max_abs_diff", "within 0.0001"),
        ({"parity_max_abs_diff": float("nan")}, "parity_max_abs_diff", "within"),
        ({"created": "yesterday"}, "created", "expected UTC time"),
        ({"checkpoint": {**BEST, "epoch": -1}}, "checkpoint.epoch", ">= 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_manifests_are_refused_naming_the_field(tmp_path, changes, field, words):
    with pytest.raises(ManifestError) as info:
        ModelManifest.load(write(tmp_path, with_(**changes)))
    text = str(info.value)
    assert info.value.field == field, text
    assert text.startswith(f"{tmp_path / MANIFEST_FILE}: field '{field}' "), text
    assert words in text, text
    assert "\n" not in text


def test_unreadable_model_directories_are_user_errors(tmp_path):
    cases = {
        "does not exist": tmp_path / "nope",
        "is missing": tmp_path / "empty",
        "is not valid JSON": write(tmp_path / "truncated", '{"format": "derm'),
        "should hold a JSON object": write(tmp_path / "list", [V01]),
    }
    (tmp_path / "empty").mkdir()
    for words, folder in cases.items():
        with pytest.raises(UserError, match=words) as info:
            ModelManifest.load(folder)
        assert isinstance(info.value, ManifestError) and info.value.exit_code == 2
        assert str(folder) in str(info.value)


def test_check_onnx_compares_the_file_with_its_sha256(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"graph")
    m = ModelManifest.from_dict(with_(onnx_sha256=sha256_file(tmp_path / "model.onnx").upper()))
    assert m.onnx_sha256 == sha256_file(tmp_path / "model.onnx")  # stored lower-case
    assert m.check_onnx(tmp_path) == tmp_path / "model.onnx"
    (tmp_path / "model.onnx").write_bytes(b"graph2")
    with pytest.raises(ManifestError, match="corrupt or was replaced") as info:
        m.check_onnx(tmp_path)
    assert info.value.field == "onnx_sha256"
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="model.onnx is missing"):
        m.check_onnx(tmp_path)


def test_an_instance_is_always_valid_and_frozen():
    m = ModelManifest.from_dict(V01)
    with pytest.raises(AttributeError):
        m.latent_dim = 17
    with pytest.raises(ManifestError, match="field 'latent_dim'"):
        ModelManifest(**{**V01, "latent_dim": -1})
