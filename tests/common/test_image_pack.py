"""common.image_pack: a pack written from rows reads back the same rows, in any order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from common.image_pack import ArraySource, PackError, PackReader, write_pack


def _rows(n: int, size: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _pack(tmp_path, rows: np.ndarray):
    shas = [f"{i:064x}" for i in range(len(rows))]
    path = write_pack(tmp_path / "p" / "x.pack", shas, rows.shape[1], "s5-test", lambda i: rows[i])
    return path, shas


def test_round_trip_in_the_requested_order(tmp_path):
    rows = _rows(37)
    path, shas = _pack(tmp_path, rows)
    reader = PackReader(path)
    assert (reader.count, reader.image_shape, reader.policy_key) == (37, (5, 5, 3), "s5-test")
    assert list(reader.sha256) == shas and reader.path == path
    order = np.array([36, 0, 5, 5, 17, 1])
    np.testing.assert_array_equal(reader.read(order), rows[order])
    np.testing.assert_array_equal(reader.read(np.arange(37)), rows)
    assert reader.read(np.array([], dtype=np.int64)).shape == (0, 5, 5, 3)
    with pytest.raises(IndexError):
        reader.read([37])
    assert not list(path.parent.glob("*.tmp"))  # the temporary was renamed into place


def test_reads_from_many_threads_agree(tmp_path):
    rows = _rows(64)
    reader = PackReader(_pack(tmp_path, rows)[0])
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(50):
            idx = rng.integers(0, 64, 8)
            if not np.array_equal(reader.read(idx), rows[idx]):
                errors.append(f"thread {seed}: wrong rows")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_truncated_or_foreign_files_are_refused(tmp_path):
    path, _ = _pack(tmp_path, _rows(4))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(PackError, match="truncated"):
        PackReader(path)
    path.write_bytes(b"")
    with pytest.raises(PackError, match="not a dermsynth pack"):
        PackReader(path)
    path.write_bytes(b"P6\n5 5\n255\n" + bytes(200))
    with pytest.raises(PackError):
        PackReader(path)


def test_a_failing_writer_leaves_no_pack(tmp_path):
    def row(i: int) -> np.ndarray:
        if i == 2:
            raise RuntimeError("source went away")
        return np.zeros((5, 5, 3), np.uint8)

    with pytest.raises(RuntimeError):
        write_pack(tmp_path / "x.pack", ["00" * 32] * 4, 5, "k", row)
    assert list(tmp_path.iterdir()) == []


def test_array_source_has_the_same_members():
    rows = _rows(6)
    source = ArraySource(rows)
    assert source.count == 6 and source.image_shape == (5, 5, 3)
    np.testing.assert_array_equal(source.read([5, 0]), rows[[5, 0]])
    with pytest.raises(ValueError, match="uint8"):
        ArraySource(rows.astype(np.float32))
