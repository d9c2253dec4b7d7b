"""Trainer tests never touch the user's image cache: the whole session (and the trainer
processes it starts) shares one temporary DERMSYNTH_CACHE_DIR."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-cache")
    saved = os.environ.get("DERMSYNTH_CACHE_DIR")
    os.environ["DERMSYNTH_CACHE_DIR"] = str(root)
    yield root
    if saved is None:
        os.environ.pop("DERMSYNTH_CACHE_DIR", None)
    else:
        os.environ["DERMSYNTH_CACHE_DIR"] = saved
