"""common.image_cache.prepare + common.datasets.scan(policy=): one read per file, a cache that is
reused, survives kill -9 and concurrent runs, skips bad files, and draft mode within tolerance."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from common import datasets
from common.image_cache import ImageCache, PrepPolicy, prepare
from common.images import decode_square, load_square
from tests.trainer.helpers import DEMO, REPO, isic_cli_folder, write_corrupt

DEMO_JPEGS = sorted(DEMO.glob("*.jpg"))

CHILD = """
import sys, time
from pathlib import Path
from common.image_cache import ImageCache, PrepPolicy, prepare
if __name__ == "__main__":
    root, slow = sys.argv[1], sys.argv[2] == "slow"
    paths = [Path(p) for p in sys.argv[3:]]
    stop = (lambda: time.sleep(0.05) or False) if slow else None
    out = prepare(paths, PrepPolicy(32), cache=ImageCache(root), workers=1 if slow else 2,
                  progress=False, should_stop=stop, chunk=1 if slow else 16)
    print(len(out.kept), len(out.skipped))
"""


def _child(tmp_path, root, mode: str, paths, **kw) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, str(script), str(root), mode, *map(str, paths)]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True, **kw)


def _assert_entries_valid(cache: ImageCache, paths, policy: PrepPolicy) -> None:
    for path in paths:
        data = path.read_bytes()
        got = cache.get(hashlib.sha256(data).hexdigest(), policy)
        assert got is not None, path
        np.testing.assert_array_equal(got, decode_square(data, policy.size, draft=policy.draft))


def test_scan_with_a_policy_reads_once_and_matches_the_plain_scan(tmp_path):
    folder = isic_cli_folder(tmp_path / "cli", 6, 4)  # 10 images + 3 corrupt files
    plain = datasets.scan(folder, progress=False)
    cache = ImageCache(tmp_path / "cache")
    first = datasets.scan(folder, progress=False, policy=PrepPolicy(16), cache=cache, workers=1)
    assert first.records == plain.records and first.fingerprint == plain.fingerprint

    def reasons(index):  # PIL's message names a BytesIO address: compare up to it
        return {(s.path, s.reason.split(" <")[0]) for s in index.skipped}

    assert len(first.skipped) == 3 and reasons(first) == reasons(plain)
    assert first.prepared.decoded == 10 and first.prepared.kept == [r.sha256 for r in first.records]
    again = datasets.scan(folder, progress=False, policy=PrepPolicy(16), cache=cache, workers=1)
    assert again.prepared.decoded == 0 and again.prepared.hits == 10  # nothing decoded
    np.testing.assert_array_equal(again.prepared.load_all(), first.prepared.load_all())
    assert plain.prepared is None


def test_bad_files_are_skipped_with_reasons_and_the_rest_prepared(tmp_path):
    bad = write_corrupt(tmp_path / "bad", "trunc", "text", "empty")
    paths = DEMO_JPEGS[:4] + bad + [tmp_path / "missing.jpg"]
    out = prepare(paths, PrepPolicy(16), cache=ImageCache(tmp_path / "c"), progress=False)
    reasons = {p.name: r for p, r in out.skipped}
    assert set(reasons) == {"trunc.jpg", "text.jpg", "empty.jpg", "missing.jpg"}
    assert "truncated" in reasons["trunc.jpg"] and "0 bytes" in reasons["empty.jpg"]
    assert "not a decodable image" in reasons["text.jpg"] and "unreadable" in reasons["missing.jpg"]
    assert out.sha256[4:] == [None] * 4 and all(out.sha256[:4])
    assert out.load_all().shape == (4, 16, 16, 3)


def _draft_vs_plain(datas, size: int) -> np.ndarray:
    means = []
    for data in datas:
        a = decode_square(data, size, draft=True).astype(np.int16)
        b = decode_square(data, size, draft=False).astype(np.int16)
        means.append(np.abs(a - b).mean())
    return np.array(means)


def test_draft_mode_stays_within_the_stated_tolerance():
    # the demo images are 128x96: the draft rule (short side >= 2 * size) halves them at 16 px
    means = _draft_vs_plain([p.read_bytes() for p in DEMO_JPEGS[:40]], 16)
    assert means.max() > 0  # draft mode really decoded at a reduced size
    assert means.mean() < 1.0 and means.max() < 6.0  # measured 0.41 / 4.2 on all 128
    assert _draft_vs_plain([DEMO_JPEGS[0].read_bytes()], 32).max() == 0  # not reduced: identical
    np.testing.assert_array_equal(  # the plain path is load_square's
        decode_square(DEMO_JPEGS[0].read_bytes(), 32, draft=False), load_square(DEMO_JPEGS[0], 32)
    )
    # a 1024x768 source at 64 px: decoded at 1/4 (256x192 >= 128)
    big = []
    for p in DEMO_JPEGS[:3]:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC).save(
            buf, "JPEG", quality=92
        )
        big.append(buf.getvalue())
    means = _draft_vs_plain(big, 64)
    assert 0 < means.max() and means.mean() < 1.0  # measured 0.22


def test_a_kill_mid_way_leaves_a_valid_cache_that_a_rerun_completes(tmp_path):
    root, paths = tmp_path / "cache", DEMO_JPEGS[:40]
    proc = _child(tmp_path, root, "slow", paths, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(root.rglob("*.u8"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(root.rglob("*.u8")))
    assert proc.returncode == -signal.SIGKILL and 5 <= done < 40  # killed mid-way
    cache, policy = ImageCache(root), PrepPolicy(32)
    out = prepare(paths, policy, cache=cache, workers=1, progress=False)
    assert out.skipped == [] and out.hits >= done and out.decoded == 40 - out.hits
    _assert_entries_valid(cache, paths, policy)


def test_two_processes_prepare_the_same_files_at_once(tmp_path):
    root, paths = tmp_path / "cache", DEMO_JPEGS[:48]
    procs = [_child(tmp_path, root, "fast", paths) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs == [["48", "0"]] * 2
    _assert_entries_valid(ImageCache(root), paths, PrepPolicy(32))
    assert not list(root.rglob("*.tmp"))


def test_prune_removes_entries_unused_for_n_days(tmp_path):
    cache, policy = ImageCache(tmp_path / "c"), PrepPolicy(8)
    out = prepare(DEMO_JPEGS[:3], policy, cache=cache, workers=1, progress=False)
    old = cache.entry(out.kept[0], policy)
    past = time.time() - 40 * 86400
    os.utime(old, (past, past))
    assert cache.prune(older_than_days=30) == 1
    assert not old.exists() and all(cache.has(s, policy) for s in out.kept[1:])
    again = prepare(DEMO_JPEGS[:3], policy, cache=cache, workers=1, progress=False)
    assert again.decoded == 1 and again.hits == 2
    # a cache hit through prepare (scan(policy=...)) counts as a use: prune keeps that entry
    hit = cache.entry(out.kept[1], policy)
    os.utime(hit, (past, past))
    prepare(DEMO_JPEGS[:3], policy, cache=cache, workers=1, progress=False)
    assert cache.prune(older_than_days=30) == 0 and hit.exists()


def test_an_unwritable_cache_is_a_user_error(tmp_path):
    """A cache root that cannot be made or written is refused up front, naming the option."""
    from common.errors import UserError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="--cache-dir"):
        prepare(DEMO_JPEGS[:2], PrepPolicy(8), cache=ImageCache(blocker / "c"), progress=False)
