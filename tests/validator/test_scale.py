"""The validator at scale: chunked computations equal unchunked ones whatever the memory budget
(nearest neighbours over blocks of views made on demand, PCA and c2st from chunked covariances,
the whole DCR analysis), the chunks and blocks follow the budget, and the subsamples (t-SNE,
thumbnails, c2st, k-means) are seeded and stated."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from validator.budget import fit_pca, left_for_chunks, square_mb
from validator.checks import CheckInputs, run_check
from validator.checks.c2st import c2st_auc
from validator.checks.data_copying import kmeans_rows
from validator.checks.dcr import analyse
from validator.checks.fid import frechet_distance, mean_cov
from validator.checks.pixel_space import pixel_rows, pixel_vectors, pixel_views
from validator.checks.prdc import prdc_values
from validator.checks.weight_free import (
    MIN_PER_SET,
    WORK_BYTES_PER_VALUE,
    comparison_pixels,
    images_within,
    pixel_sample,
)
from validator.neighbours import CELL_BYTES, Rows, chunk_rows, nearest, plan
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
    y = 1.2 * _data(200, dim=8, seed=7) + 0.1
    whole = frechet_distance(x, y)
    assert whole > 0.1
    for mb in BUDGETS[:2]:  # chunks of one row, a few rows
        assert frechet_distance(x, y, memory_mb=mb) == pytest.approx(whole, rel=1e-9)


def test_fixed_square_arrays_leave_the_chunks_the_rest_of_the_budget():
    assert square_mb(2048) == pytest.approx(96.0)  # 3 float64 2048 x 2048 arrays
    assert left_for_chunks(1024, 96) == 928
    assert left_for_chunks(64, 96) == 16  # d x d alone over the budget: chunks get a quarter


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
    names = ["pca_scatter", "pca_thumbnails", "tsne_scatter", "tsne_thumbnails"]
    assert sorted(written.files) == sorted(written.samples) == names
    assert all(p.stat().st_size > 0 for p in written.files.values())
    # what each view shows goes to report.json too, not only into the plot titles
    samples = written.samples
    assert samples["pca_scatter"]["shown"] == {"real": 30, "synthetic": 80}
    assert not samples["pca_scatter"]["subsampled"] and samples["pca_scatter"]["seed"] is None
    assert samples["tsne_scatter"] == {
        "shown": {"real": 25, "synthetic": 25},
        "of": {"real": 30, "synthetic": 80},
        "subsampled": True,
        "seed": 0,
        "note": "seeded random subsample: 25 of 30 real, 25 of 80 synthetic",
    }
    assert samples["tsne_thumbnails"]["shown"] == {"real": 10, "synthetic": 10}
    assert samples["tsne_thumbnails"]["seed"] == 1


def test_c2st_subsample_cap_is_stated():
    real, syn = _data(60, seed=10), _data(90, seed=11)
    values = c2st_auc(real, syn, folds=3, pca=5, seed=0, max_per_set=40)
    assert (values["real"], values["synthetic"], values["subsampled"]) == (40, 40, True)
    assert (values["real_total"], values["synthetic_total"]) == (60, 90)
    assert c2st_auc(real, syn, folds=3, pca=5, seed=0, max_per_set=40) == values  # seeded
    assert not c2st_auc(real, syn, folds=3, pca=5, seed=0)["subsampled"]


def test_nearest_on_rows_made_block_by_block_equals_brute_force():
    """A reference made on demand (like dcr's pixel views) is searched a block at a time and
    the running k best merged: the same neighbours as one pass, for every block size."""
    query, ref = _data(57, seed=12), _data(40, seed=13)
    views = [ref, ref[:, ::-1].copy(), 0.5 * ref + _data(40, seed=14)]
    made = []

    def make(start, stop):
        made.append(stop - start)
        return [v[start:stop] for v in views]

    lazy = Rows(40, 24, 3, make)
    codes, qcodes = np.arange(40) // 3, np.arange(57) % 13
    for k in (1, 3, 12):
        brute = _brute(query, views, k)
        brute_g = _brute(query, views, k, groups=(qcodes, codes))
        brute_self = _brute(ref, views, k, exclude_self=True)
        for block in (1, 6, 17, 40):
            made.clear()
            dist, idx = nearest(query, lazy, k, block=block, chunk=11)
            assert max(made) == block and sum(made) == 40  # each row made once
            np.testing.assert_allclose(dist, brute[0], atol=1e-5)
            np.testing.assert_array_equal(idx, brute[1])
            dist, idx = nearest(query, lazy, k, block=block, groups=(qcodes, codes))
            np.testing.assert_array_equal(idx, brute_g[1])
            self_q = Rows(40, 24, 1, lambda a, b: [ref[a:b]])
            dist, idx = nearest(self_q, lazy, k, block=block, chunk=9, exclude_self=True)
            np.testing.assert_allclose(dist, brute_self[0], atol=1e-5)
            np.testing.assert_array_equal(idx, brute_self[1])
        for mb in BUDGETS:  # the budget picks the block: the same answer
            np.testing.assert_array_equal(nearest(query, lazy, k, memory_mb=mb)[1], brute[1])


def test_nearest_blocks_and_chunks_follow_the_budget():
    query = Rows.of(_data(5000, dim=768))
    lazy = Rows(30_000, 768, 12, lambda a, b: [])
    block, rows = plan(query, lazy, 1024, None)
    # a block of reference views takes at most half the budget, the query cells the other half
    assert block * (12 * 768 * 4 + 4) <= 512 * 2**20 < (block + 1) * (12 * 768 * 4 + 4)
    assert rows * (block * CELL_BYTES + 2 * 768 * 4) <= 512 * 2**20
    assert plan(query, lazy, 2048, None)[0] in (2 * block, 2 * block + 1)  # twice the budget
    eager = Rows.of(_data(300, dim=768))  # held already: one block whatever the budget
    assert plan(query, eager, 1, None)[0] == 300
    assert plan(query, lazy, 1e-6, None) == (1, 1)  # below one row: a row at a time


def test_fit_pca_on_index_subsets_equals_scikit_learn_and_ignores_the_chunks():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    a, b = _data(90, seed=15) * np.linspace(0.5, 3, 24).astype(np.float32), _data(50, seed=16)
    ra, rb = np.array([0, 3, 4, 10, 33, 34, 60, 89]), np.arange(0, 50, 3)
    x = np.concatenate([a[ra], b[rb]]).astype(np.float64)
    scaler = StandardScaler().fit(x)
    pca = PCA(5, svd_solver="full").fit(scaler.transform(x))
    expected = pca.transform(scaler.transform(np.concatenate([a, b]).astype(np.float64)))
    for mb in BUDGETS:
        fit = fit_pca([(a, ra), (b, rb)], 5, mb)
        np.testing.assert_allclose(fit.variances, pca.explained_variance_, rtol=1e-6)
        got = fit.transform([(a, None), (b, None)], mb)
        signs = np.sign((got * expected).sum(0))
        np.testing.assert_allclose(got * signs, expected, atol=1e-6)


def test_c2st_equals_the_scikit_learn_pipeline_for_every_budget():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, syn = _data(120, seed=17), 1.1 * _data(100, seed=18) + 0.1
    x, y = np.concatenate([real, syn]).astype(np.float64), np.r_[np.zeros(120), np.ones(100)]
    model = make_pipeline(
        StandardScaler(), PCA(6, svd_solver="full"), LogisticRegression(C=1.0, max_iter=2000)
    )
    cv = StratifiedKFold(4, shuffle=True, random_state=3)
    proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    expected = roc_auc_score(y, proba)
    assert 0.55 < expected < 1  # not degenerate
    for mb in BUDGETS:
        got = c2st_auc(real, syn, folds=4, pca=6, seed=3, memory_mb=mb)
        assert got["auc"] == pytest.approx(expected, abs=1e-9), mb


def test_kmeans_fit_rows_follow_the_budget():
    assert np.array_equal(kmeans_rows(1000, 2048, 1024, seed=0), np.arange(1000))
    limit = 512 * 2**20 // (4 * 2048)  # rows whose float32 copy fits half the budget
    assert len(kmeans_rows(limit, 2048, 1024, 0)) == limit
    picked = kmeans_rows(100_000, 2048, 1024, seed=0)
    assert len(picked) == limit and np.all(np.diff(picked) > 0)
    assert np.array_equal(picked, kmeans_rows(100_000, 2048, 1024, seed=0))  # seeded


def test_dcr_pixel_rows_made_in_blocks_equal_the_whole_set_views():
    images = np.random.default_rng(19).integers(0, 256, (23, 20, 20, 3), dtype=np.uint8)
    rows = np.array([1, 4, 5, 9, 22])
    whole = pixel_views(images[rows], 8, (1.0, 0.9), True)
    lazy = pixel_rows(images, 8, (1.0, 0.9), mirrors=True, vertical=True, rows=rows)
    assert (len(lazy), lazy.views, lazy.dim) == (5, 8, 8 * 8 * 3)
    for view, got in zip(whole, lazy.make(2, 5)):
        np.testing.assert_array_equal(got, view[2:5])
    single = pixel_rows(images, 8)
    np.testing.assert_array_equal(single.make(0, 23)[0], pixel_vectors(images, 8))


def test_dcr_analysis_is_the_same_for_every_memory_budget():
    """The whole DCR analysis (both spaces, held-out and leave-one-out baselines): budgets that
    split the pixel views into many blocks give the same neighbours and p-values."""
    rng = np.random.default_rng(20)
    sets = {name: n for name, n in (("real", 40), ("holdout", 15), ("synthetic", 30))}
    feats = {name: _data(n, seed=21 + i) for i, (name, n) in enumerate(sets.items())}
    pix = {name: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for name, n in sets.items()}
    paths = {name: [f"/nowhere/{name}/{i}.png" for i in range(n)] for name, n in sets.items()}
    runs = []
    for mb in (0.01, 1024):
        inputs = CheckInputs(
            real=feats["real"],
            synthetic=feats["synthetic"],
            holdout=feats["holdout"],
            real_pixels=pix["real"],
            synthetic_pixels=pix["synthetic"],
            holdout_pixels=pix["holdout"],
            real_paths=paths["real"],
            synthetic_paths=paths["synthetic"],
            holdout_paths=paths["holdout"],
            memory_mb=mb,
        )
        runs.append(analyse(inputs))
    small, large = runs
    for space in ("feature", "pixel"):
        a, b = small.spaces()[space], large.spaces()[space]
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.distances, b.distances, atol=1e-6)
        np.testing.assert_allclose(a.to_holdout, b.to_holdout, atol=1e-6)
        np.testing.assert_array_equal(a.loo_nearest, b.loo_nearest)
        np.testing.assert_allclose(a.p, b.p, rtol=1e-5)  # float32 products: rounding


def test_weight_free_checks_compare_a_stated_subsample_within_the_budget():
    rng = np.random.default_rng(22)
    real = rng.integers(0, 256, (500, 16, 16, 3), dtype=np.uint8)
    syn = rng.integers(0, 256, (300, 16, 16, 3), dtype=np.uint8)

    def inputs(mb):
        return CheckInputs(
            real=_data(500),
            synthetic=_data(300),
            holdout=None,
            real_pixels=real,
            synthetic_pixels=syn,
            holdout_pixels=None,
            real_paths=[f"/nowhere/r{i}.png" for i in range(500)],
            synthetic_paths=[f"/nowhere/s{i}.png" for i in range(300)],
            holdout_paths=None,
            memory_mb=mb,
        )

    per_image = WORK_BYTES_PER_VALUE * 16 * 16 * 3
    assert images_within(1, 16) == 2**20 // per_image
    small = inputs(1)  # 1 MiB: 42 images, below the minimum per set
    r, s, side = comparison_pixels(small)
    assert (len(r), len(s), side) == (MIN_PER_SET, MIN_PER_SET, 16)
    again = comparison_pixels(inputs(1))
    assert np.array_equal(r, again[0]) and np.array_equal(s, again[1])  # seeded
    assert any(np.array_equal(r[0], x) for x in real)  # rows of the set, not made up
    mid = inputs(per_image * 2 * 250 / 2**20)  # 250 per set
    assert pixel_sample(mid) == {
        "real_compared": 250,
        "synthetic_compared": 250,
        "real_total": 500,
        "synthetic_total": 300,
        "subsampled": True,
    }
    result = run_check("colour", mid)
    assert result.error is None and result.numbers["real_compared"] == 250
    assert "seeded random subsample of 250 of 500 real and 250 of 300 synthetic" in result.note
    whole = inputs(1024)
    assert not pixel_sample(whole)["subsampled"]
    assert np.shares_memory(comparison_pixels(whole)[0], real)  # no copy when nothing is left out
