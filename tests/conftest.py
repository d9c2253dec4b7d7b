"""Shared fixtures for every service's tests.

``tiny_model_dir``: a real (untrained, seeded) 32 px DCGAN generator with a 16-d latent,
exported through the real ``trainer.export.export_generator`` into a model directory
(``model.onnx`` + ``model.json``). Serving and validator tests load it like any exported model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_RESOLUTION = 32
TINY_LATENT_DIM = 16


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory):
    """No test touches the user's image cache: the session (and every process it starts)
    shares one temporary DERMSYNTH_CACHE_DIR."""
    root = tmp_path_factory.mktemp("image-cache")
    saved = os.environ.get("DERMSYNTH_CACHE_DIR")
    os.environ["DERMSYNTH_CACHE_DIR"] = str(root)
    yield root
    if saved is None:
        os.environ.pop("DERMSYNTH_CACHE_DIR", None)
    else:
        os.environ["DERMSYNTH_CACHE_DIR"] = saved


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import keras

    from common.hashing import fingerprint
    from trainer.export import export_generator
    from trainer.model import build_generator

    keras.utils.set_random_seed(0)
    generator = build_generator(TINY_RESOLUTION, TINY_LATENT_DIM)
    out = tmp_path_factory.mktemp("tiny_model")
    manifest = {
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
    return export_generator(generator, out, manifest=manifest)
