"""trainer.export writes model.json through common.manifest: what it writes loads strictly,
and invalid training facts are refused before a file of the model directory is replaced."""

from __future__ import annotations

import shutil

import pytest

from common.hashing import fingerprint
from common.manifest import ManifestError, ModelManifest

FACTS = {
    "training_data": {
        "fingerprint": fingerprint([]),
        "image_count": 0,
        "layout": None,
        "filters": {"benign_malignant": None, "diagnosis": None},
    },
    "epochs": 0,
    "seed": 0,
    "ema": False,
}


def test_the_exported_manifest_loads_strictly(tiny_model_dir):
    m = ModelManifest.load(tiny_model_dir)
    assert (m.latent_dim, m.resolution, m.channels, m.opset) == (16, 32, 3, 17)
    assert m.checkpoint is None and m.versions["dermsynth"]
    assert m.check_onnx(tiny_model_dir) == tiny_model_dir / "model.onnx"


def test_invalid_facts_are_refused_before_anything_is_replaced(tiny_model_dir, tmp_path):
    import keras

    from tests.conftest import TINY_LATENT_DIM, TINY_RESOLUTION
    from trainer.export import export_generator
    from trainer.model import build_generator

    out = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    keras.utils.set_random_seed(1)
    generator = build_generator(TINY_RESOLUTION, TINY_LATENT_DIM)
    bad = {**FACTS, "training_data": {**FACTS["training_data"], "image_count": -1}}
    with pytest.raises(ManifestError, match="field 'training_data.image_count'"):
        export_generator(generator, out, manifest=bad)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
