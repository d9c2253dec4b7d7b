"""The run's images (trainer.inputs): prepared by the scan into the shared cache, then a pack
that a resume or another run on the same files reuses; the cache serves a rebuilt pack."""

from __future__ import annotations

import logging
import shutil

import numpy as np

from common.config import resolve
from tests.trainer.helpers import isic_cli_folder


def test_a_second_run_hits_the_cache_and_reuses_the_pack(tmp_path, caplog):
    from common.images import load_square
    from trainer.config import TrainConfig
    from trainer.inputs import open_images, scan

    data = isic_cli_folder(tmp_path / "isic", 8, 0, corrupt=True)
    config = resolve(
        TrainConfig,
        {"data": data, "run": tmp_path / "run", "resolution": 32, "cache_dir": tmp_path / "c"},
        env={},
    )
    caplog.set_level(logging.INFO, logger="trainer")

    def opened():  # what a run does: scan (+ prepare), then the pack
        caplog.clear()
        checked = []
        index = scan(config)
        assert index.prepared is not None and len(index.skipped) == 3  # the corrupt files
        source, final = open_images(config, index, check=checked.append)
        assert checked == [final] and source.count == len(final.records) == 8
        return source, " | ".join(r.getMessage() for r in caplog.records)

    first, log = opened()
    assert "8 decoded, 0 from the cache" in log and "written to" in log
    assert first.image_shape == (32, 32, 3)
    # the pack's rows are the scan's records in order (draft decode: within a few levels of
    # the plain decode, common.images)
    plain = np.stack([load_square(data / f"{s}.jpg", 32) for s in _ids(data)]).astype(int)
    assert np.abs(first.read(np.arange(8)).astype(int) - plain).mean() < 3
    again, log = opened()  # a resume, or another run on the same files: nothing decoded
    assert "0 decoded, 8 from the cache" in log and f"8 from {first.path}" in log
    assert "written" not in log
    assert again.path == first.path
    shutil.rmtree(first.path.parent)  # packs are derived: the cache rebuilds one
    rebuilt, log = opened()
    assert "0 decoded, 8 from the cache" in log and "written to" in log
    assert np.array_equal(rebuilt.read(np.arange(8)), first.read(np.arange(8)))


def _ids(data) -> list[str]:
    import csv

    with open(data / "metadata.csv", newline="") as fh:
        return [r["isic_id"] for r in csv.DictReader(fh) if not r["isic_id"].startswith("ISIC_9")]
