"""The image cache checks what it reads: an entry carries the CRC-32 of its pixels (a damaged or
old-format entry is a miss, prepared and written again), and a file that does not decode is
remembered (``<sha256>.bad``) so that the next run does not decode it again."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from common.image_cache import ImageCache, PrepPolicy, prepare
from common.images import decode_square
from tests.trainer.helpers import DEMO, write_corrupt

JPEGS = sorted(DEMO.glob("*.jpg"))[:3]


def test_a_damaged_or_old_format_entry_is_a_miss_and_is_written_again(tmp_path):
    cache, policy = ImageCache(tmp_path / "c"), PrepPolicy(16)
    out = prepare(JPEGS, policy, cache=cache, workers=1, progress=False)
    assert out.decoded == 3
    damaged, old = (cache.entry(s, policy) for s in out.kept[:2])
    data = bytearray(damaged.read_bytes())
    assert len(data) == 16 * 16 * 3 + 4  # pixels + CRC-32
    data[100] ^= 0xFF  # one flipped byte, same length
    damaged.write_bytes(bytes(data))
    old.write_bytes(old.read_bytes()[:-4])  # the format before the checksum
    for sha in out.kept[:2]:
        assert cache.get(sha, policy) is None and not cache.has(sha, policy)
    assert cache.has(out.kept[2], policy)
    again = prepare(JPEGS, policy, cache=cache, workers=1, progress=False)
    assert (again.decoded, again.hits) == (2, 1)
    for path in JPEGS:
        raw = path.read_bytes()
        got = cache.get(hashlib.sha256(raw).hexdigest(), policy)
        np.testing.assert_array_equal(got, decode_square(raw, 16))


def test_a_file_that_does_not_decode_is_not_decoded_again(tmp_path):
    truncated, text, _ = write_corrupt(tmp_path / "bad", "trunc", "text", "empty")
    cache, policy = ImageCache(tmp_path / "c"), PrepPolicy(16)
    paths = [truncated, text, JPEGS[0]]
    first = prepare(paths, policy, cache=cache, workers=1, progress=False)
    reasons = dict(first.skipped)
    assert set(reasons) == {truncated, text} and first.kept == first.sha256[2:]
    marks = {p: cache.entry(hashlib.sha256(p.read_bytes()).hexdigest(), policy) for p in paths}
    bad = {p: m.with_suffix(".bad") for p, m in marks.items()}
    assert bad[truncated].read_text() == reasons[truncated] and not bad[JPEGS[0]].exists()
    # the second run takes the reason from the cache: a marker shows no decode ran
    bad[truncated].write_text("remembered: truncated")
    second = prepare(paths, policy, cache=cache, workers=1, progress=False)
    assert dict(second.skipped) == {truncated: "remembered: truncated", text: reasons[text]}
    assert (second.decoded, second.hits) == (0, 1)
    # only the same bytes under the same policy count as known bad
    other = prepare(paths, PrepPolicy(8), cache=cache, workers=1, progress=False)
    assert dict(other.skipped)[truncated] == reasons[truncated]
    # prune removes a remembered failure like an entry
    past = time.time() - 40 * 86400
    os.utime(bad[truncated], (past, past))
    assert cache.prune(older_than_days=30) == 1 and not bad[truncated].exists()
