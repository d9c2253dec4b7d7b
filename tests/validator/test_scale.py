"""The validator at scale: chunked computations equal unchunked ones whatever the memory budget,
the chunk follows the budget, and the subsamples (t-SNE, thumbnails, c2st) are seeded and stated."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from validator.checks.c2st import c2st_auc
from validator.checks.fid import frechet_distance, mean_cov
from validator.checks.prdc import prdc_values
from validator.neighbours import CELL_BYTES, chunk_rows, nearest
from validator.views import draw_views, pca_2d, subsample, subsample_note

BUDGETS = (1e-4, 0.05, 1024)  # MiB: one row per chunk, a few rows, everything at once


def _data(n, dim=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_chunk_rows_follows_the_budget():
    assert chunk_rows(1000, 1) == 2**20 // (CELL_BYTES * 1000)
    assert chunk_rows(1000, 2) == 2**21 // (CELL_BYTES * 1000)  # twice the memory: ~twice
    assert chunk_rows(2000, 1) == 2**20 // (CELL_BYTES * 2000)  # twice the reference: ~half
    rows = chunk_rows(30_000, 64)
    assert rows * 30_000 * CELL_BYTES <= 64 * 2**20 < (rows + 1) * 30_000 * CELL_BYTES
    assert chunk_rows(30_000, 1e-6) == 1  # a budget below one row still runs, a row at a time
    with pytest.raises(ValueError):
        chunk_rows(10, 0)


def _brute(q, views, k, exclude_self=False, groups=None):
    d = np.min([cdist(q.astype(np.float64), v.astype(np.float64), "cosine") for v in views], 0)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    if groups is not None:
        d[groups[0][:, None] == groups[1][None, :]] = np.inf
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


@pytest.mark.parametrize("k", [1, 3, 12])  # 12: the partition path
def test_nearest_is_the_same_for_every_memory_budget(k):
    query, ref = _data(57, seed=1), _data(40, seed=2)
    views = [ref, ref[:, ::-1].copy(), 0.5 * ref + _data(40, seed=3)]
    codes, qcodes = np.arange(40) // 3, np.arange(57) % 13
    for kwargs, brute in (
        ({}, _brute(query, views, k)),
        ({"exclude_self": True}, None),
        ({"groups": (qcodes, codes)}, _brute(query, views, k, groups=(qcodes, codes))),
    ):
        q = ref if kwargs.get("exclude_self") else query
        if brute is None:
            brute = _brute(q, views, k, exclude_self=True)
        runs = [nearest(q, views, k, memory_mb=mb, **kwargs) for mb in BUDGETS]
        runs.append(nearest(q, views, k, chunk=7, **kwargs))
        for dist, idx in runs:
            np.testing.assert_allclose(dist, brute[0], atol=1e-5)
            np.testing.assert_array_equal(idx, brute[1])


def _prdc_reference(real, syn, k):
    """The unchunked float64 computation (Naeem et al.'s reference code)."""
    real, syn = real.astype(np.float64), syn.astype(np.float64)
    r_real = np.partition(cdist(real, real), k, axis=1)[:, k]
    r_syn = np.partition(cdist(syn, syn), k, axis=1)[:, k]
    d = cdist(real, syn)
    inside = d < r_real[:, None]
    return {
        "precision": inside.any(axis=0).mean(),
        "recall": (d < r_syn[None, :]).any(axis=1).mean(),
        "density": inside.sum(axis=0).mean() / k,
        "coverage": (d.min(axis=1) < r_real).mean(),
    }


def test_prdc_chunked_equals_the_full_matrix_computation():
    real, syn = _data(80, seed=4), 1.3 * _data(65, seed=5) + 0.3
    expected = _prdc_reference(real, syn, 5)
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1  # not degenerate
    for mb in BUDGETS:
        got = prdc_values(real, syn, 5, memory_mb=mb)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, abs=1e-9), (mb, name)


def test_fid_chunked_covariance_equals_numpy():
    x = _data(300, dim=8, seed=6)
    mu, cov = mean_cov(x, rows=7)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), atol=1e-9)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False), atol=1e-9)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_pca_on_all_equals_scikit_learn_up_to_sign():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    a, b = _data(70, seed=7) * np.linspace(0.5, 3, 24), _data(30, seed=8)
    x = StandardScaler().fit_transform(np.concatenate([a, b]).astype(np.float64))
    expected = PCA(2, svd_solver="full").fit_transform(x)
    for mb in BUDGETS[1:]:
        got = np.concatenate(pca_2d([a, b], memory_mb=mb))
        signs = np.sign((got * expected).sum(0))
        np.testing.assert_allclose(got * signs, expected, atol=1e-6)


def test_tsne_subsample_is_seeded_and_stated(tmp_path):
    counts = {"real": 30, "synthetic": 80}
    first, again = subsample(counts, 25, seed=3), subsample(counts, 25, seed=3)
    assert len(first["synthetic"]) == 25 and len(first["real"]) == 25
    assert all(np.array_equal(first[n], again[n]) for n in counts)
    assert not np.array_equal(first["synthetic"], subsample(counts, 25, seed=4)["synthetic"])
    assert np.all(np.diff(first["synthetic"]) > 0)  # distinct, in order
    note = subsample_note(counts, first)
    assert note == "seeded random subsample: 25 of 30 real, 25 of 80 synthetic"
    assert subsample_note(counts, subsample(counts, 100, seed=3)) == ""
    images = np.zeros((110, 8, 8, 3), np.uint8)
    written = draw_views(
        {"real": (_data(30), images[:30]), "synthetic": (_data(80, seed=9), images[30:])},
        tmp_path,
        label="test",
        tsne_max_per_source=25,
        thumbnails_max_per_source=10,
    )
    assert sorted(written) == ["pca_scatter", "pca_thumbnails", "tsne_scatter", "tsne_thumbnails"]
    assert all(p.stat().st_size > 0 for p in written.values())


def test_c2st_subsample_cap_is_stated():
    real, syn = _data(60, seed=10), _data(90, seed=11)
    values = c2st_auc(real, syn, folds=3, pca=5, seed=0, max_per_set=40)
    assert (values["real"], values["synthetic"], values["subsampled"]) == (40, 40, True)
    assert (values["real_total"], values["synthetic_total"]) == (60, 90)
    assert c2st_auc(real, syn, folds=3, pca=5, seed=0, max_per_set=40) == values  # seeded
    assert not c2st_auc(real, syn, folds=3, pca=5, seed=0)["subsampled"]
