"""Quality metrics on real ISIC features: FID of a set with itself, the two-sample test of real
vs real and real vs noise, KID and precision/recall/density/coverage. Assertions hold on any
CPU: relative comparisons with wide margins on random-weight features, geometry by construction
on synthetic vectors, and weight-free (plain numpy) features where a bound is absolute."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from tests.validator.conftest import make_inputs
from validator.checks import run_check
from validator.checks.c2st import c2st_auc
from validator.checks.fid import frechet_distance
from validator.checks.kid import kid_subsets
from validator.checks.prdc import prdc_values


@pytest.fixture(scope="module")
def noise_features(xception_onnx):
    from validator.features import FeatureModel

    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(100, 71, 71, 3), dtype=np.uint8)
    return FeatureModel(xception_onnx)(noise)


def _sqrtm_reference(a, b):
    """pytorch-fid's formula with scipy.linalg.sqrtm."""
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    d = a.mean(0) - b.mean(0)
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_fid_low_rank_path_matches_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 64)), rng.normal(size=(30, 64)) * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(_sqrtm_reference(a, b), rel=1e-5)
    big_a, big_b = rng.normal(size=(300, 16)), rng.normal(size=(200, 16)) + 0.5
    assert frechet_distance(big_a, big_b) == pytest.approx(_sqrtm_reference(big_a, big_b), rel=1e-6)


def test_fid_full_path_matches_sqrtm_on_correlated_features():
    """More images than dimensions: the symmetric-eigendecomposition trace equals pytorch-fid's
    sqrtm formula, also for strongly correlated, ill-conditioned covariances."""
    rng = np.random.default_rng(3)
    for dim, scale in ((24, 1.0), (48, 1e-3)):
        mix_a, mix_b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
        mix_a[:, : dim // 2] *= scale  # half the directions nearly flat
        a = rng.normal(size=(400, dim)) @ mix_a
        b = rng.normal(size=(300, dim)) @ mix_b + 0.2
        assert frechet_distance(a, b) == pytest.approx(_sqrtm_reference(a, b), rel=1e-7)
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8 * frechet_distance(a, b))


def test_fid_of_a_set_with_itself_is_zero(encoded, noise_features):
    real = encoded["train"].features
    to_noise = frechet_distance(real, noise_features)
    assert to_noise > 0
    assert frechet_distance(real, real) <= 1e-6 * to_noise
    other = frechet_distance(real, encoded["other"].features)
    assert other < to_noise


def test_kid_is_about_zero_for_real_vs_real(encoded, noise_features):
    real, other = encoded["train"].features, encoded["other"].features
    # random-weight features are tiny (~1e-5); rescale so the cubic kernel is not flat
    scale = 1 / real.std()
    same = kid_subsets(real * scale, other * scale, 100, 50).mean()
    noise = kid_subsets(real * scale, noise_features * scale, 100, 50).mean()
    assert noise > 0 and abs(same) < 0.05 * noise


def test_c2st_auc_real_vs_real_is_chance_and_real_vs_noise_is_one(encoded, noise_features):
    real, other = encoded["train"].features, encoded["other"].features
    same = c2st_auc(real, other)
    assert 0.35 <= same["auc"] <= 0.65, same
    noise = c2st_auc(real, noise_features)
    assert noise["auc"] >= 0.95, noise
    assert noise["p_value"] < 1e-6


def test_prdc_on_vectors_of_known_geometry():
    """Properties that hold by construction, on any CPU: a second sample of the same Gaussian
    lies inside the real manifold and covers it; a far cluster lies outside it entirely; a
    collapsed set (every point near the mean) is precise but not diverse."""
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(200, 16)), rng.normal(size=(150, 16))
    far = rng.normal(size=(150, 16)) + 50 * np.eye(16)[0]
    collapsed = 0.01 * rng.normal(size=(150, 16))
    good = prdc_values(real, same, 5)
    assert good["precision"] > 0.8 and good["recall"] > 0.8 and good["coverage"] > 0.8
    v = prdc_values(real, far, 5)
    assert v["precision"] == v["recall"] == v["density"] == v["coverage"] == 0.0
    v = prdc_values(real, collapsed, 5)
    assert v["precision"] == 1.0 and v["recall"] < 0.1
    assert v["coverage"] < good["coverage"] - 0.2  # the outer real points stay uncovered


def test_prdc_real_vs_real_high_real_vs_noise_low(encoded):
    """On real ISIC images, with weight-free features (colour and texture statistics, plain
    numpy: the same numbers on every CPU, unlike a random-weight network's): unseen real
    images fall inside the real manifold, noise images outside it."""
    from common.image_stats import image_statistics

    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(100, 64, 64, 3), dtype=np.uint8)
    real, other, noise = (
        image_statistics(x) for x in (encoded["train"].pixels, encoded["other"].pixels, noise)
    )
    mu, sd = real.mean(0), real.std(0) + 1e-9
    real, other, noise = ((x - mu) / sd for x in (real, other, noise))
    same = prdc_values(real, other, 5)
    assert same["precision"] > 0.7 and same["recall"] > 0.7 and same["coverage"] > 0.6, same
    noise = prdc_values(real, noise, 5)
    assert noise["precision"] < 0.1 and noise["coverage"] < 0.1, noise


def test_quality_checks_through_the_registry(encoded):
    inputs = make_inputs(encoded, ["other"])
    for name in ("fid", "kid", "prdc", "c2st"):
        result = run_check(name, inputs)
        assert result.error is None, result.error
        assert result.kind == "quality" and result.seconds >= 0
    assert run_check("c2st", inputs).passed  # AUC ~0.5 is far below the 0.9 limit
