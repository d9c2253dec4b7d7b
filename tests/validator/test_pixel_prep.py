"""The validator's pixels come through the trainer's preparation path and the shared image cache
(validator.inputs.pixel_policy): the same pixels as common.images.decode_square with draft mode,
a second run decodes nothing, --no-cache writes nothing to the cache, and an unwritable default
cache root is a warning, an unwritable --image-cache-dir an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from common.images import decode_square
from validator.config import ValidateConfig
from validator.inputs import load_inputs
from validator.pipeline import _load_pixels as _load_into


def _load_pixels(index, size, on_chunk):
    out = np.zeros((len(index.records), size, size, 3), np.uint8)
    return _load_into(index, out, on_chunk)


def _folder(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True)
    for path in sorted(src.glob("*.jpg"))[:n]:
        shutil.copy(path, dst / path.name)
    return dst


def _config(tmp_path, real, synthetic, **kw) -> ValidateConfig:
    return ValidateConfig(
        real=real,
        synthetic=synthetic,
        out=tmp_path / "out",
        cache_dir=tmp_path / "features",
        pixel_size=32,
        prep_workers=1,
        progress=False,
        **kw,
    )


def test_pixels_are_prepared_once_into_the_shared_cache(split, tmp_path):
    real = _folder(split.train, tmp_path / "real", 6)
    synthetic = _folder(split.other, tmp_path / "synthetic", 4)
    cache = tmp_path / "images"
    config = _config(tmp_path, real, synthetic, image_cache_dir=cache)
    first = load_inputs(config, progress=False)
    prepared = first.real.index.prepared
    assert (prepared.decoded, prepared.hits) == (6, 0)
    entries = sorted(cache.rglob("*.u8"))
    assert len(entries) == 10  # every real and synthetic file, once
    seen = []
    pixels = _load_pixels(first.real.index, 32, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (6, 6)
    for rec, got in zip(first.real.records, pixels):
        expected = decode_square(Path(rec.path).read_bytes(), 32, draft=True)
        np.testing.assert_array_equal(got, expected)  # the trainer's pixels, exactly
    again = load_inputs(config, progress=False)
    assert (again.real.index.prepared.decoded, again.real.index.prepared.hits) == (0, 6)
    assert (again.synthetic.index.prepared.decoded, again.synthetic.index.prepared.hits) == (0, 4)
    # an entry pruned between the scan and the pixel read is prepared again from its file
    for entry in entries:
        entry.unlink()
    np.testing.assert_array_equal(_load_pixels(again.real.index, 32, lambda d, t: None), pixels)


def test_no_cache_prepares_into_a_temporary_folder(split, tmp_path):
    real = _folder(split.train, tmp_path / "real", 3)
    synthetic = _folder(split.other, tmp_path / "synthetic", 3)
    cache = tmp_path / "images"
    config = _config(tmp_path, real, synthetic, image_cache_dir=cache, cache=False)
    inputs = load_inputs(config, progress=False)
    pixels = _load_pixels(inputs.synthetic.index, 32, lambda d, t: None)
    assert pixels.shape == (3, 32, 32, 3) and pixels.std() > 0
    assert not cache.exists()


def test_an_unwritable_cache_root(split, tmp_path, monkeypatch, caplog):
    """The default root unwritable (a read-only home, as in the Kubernetes Jobs): a warning and
    a temporary cache, the run goes on; an --image-cache-dir that cannot be written: exit 2."""
    real = _folder(split.train, tmp_path / "real", 2)
    synthetic = _folder(split.other, tmp_path / "synthetic", 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DERMSYNTH_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level("WARNING", logger="validator.inputs"):
        inputs = load_inputs(_config(tmp_path, real, synthetic), progress=False)
    assert "temporary folder" in caplog.text
    assert _load_pixels(inputs.real.index, 32, lambda d, t: None).shape == (2, 32, 32, 3)
    config = _config(tmp_path, real, synthetic, image_cache_dir=blocker / "images")
    with pytest.raises(UserError, match=r"^--image-cache-dir .*a-file/images: cannot write"):
        load_inputs(config, progress=False)
