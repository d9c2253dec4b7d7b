"""Weight-free quality evidence (swd, colour, pixel_c2st) and the gate's policy for random
weights, on real ISIC images: unseen real images pass; blurred and colour-shifted real images
fail on the weight-free checks while the feature-space checks of a random-weight Xception only
inform. Plus the arithmetic of :mod:`common.quality` against its references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from common import quality as q
from common.image_stats import image_statistics
from tests.validator.conftest import DEMO, make_inputs
from validator import checks as registry
from validator.checks import CheckInputs, run_check
from validator.config import DEFAULT_CHECKS
from validator.gate import decide
from validator.thresholds import load_thresholds

WEIGHT_FREE = ("swd", "colour", "pixel_c2st")
FEATURE_QUALITY = ("fid", "kid", "prdc", "c2st")
PALE_PINK = np.array([255, 235, 235], np.float32)


def blurred(images: np.ndarray, radius: float = 1.5) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius))) for i in images]
    )


def colour_shifted(images: np.ndarray, amount: float = 0.3) -> np.ndarray:
    """A blend toward a pale pink: the drift the demo's sample grids showed."""
    return np.clip(images * (1 - amount) + amount * PALE_PINK, 0, 255).round().astype(np.uint8)


# --- common.quality against its references ------------------------------------------------------
def test_srgb_to_lab_known_values():
    rgb = np.array(
        [[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]],
        np.uint8,
    )
    expected = [
        [100, 0, 0],
        [0, 0, 0],
        [53.24, 80.09, 67.20],
        [87.73, -86.18, 83.18],
        [32.30, 79.19, -107.86],
        [53.59, 0, 0],
    ]  # CIE 1976 L*a*b*, D65
    np.testing.assert_allclose(q.srgb_to_lab(rgb), expected, atol=0.02)


def test_pyramid_matches_the_reference_filters_and_reconstructs():
    """pyr_down / pyr_up equal the reference's scipy.ndimage.convolve(mode='mirror') with the
    5x5 binomial filter; the Laplacian levels add back up to the image."""
    from scipy import ndimage

    g = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    ref = ndimage.convolve(x, g[None, :, :, None], mode="mirror")[:, ::2, ::2]
    np.testing.assert_allclose(q.pyr_down(x), ref, atol=1e-5)
    small = ref
    up = np.zeros_like(x)
    up[:, ::2, ::2] = small
    np.testing.assert_allclose(
        q.pyr_up(small), ndimage.convolve(up, 4 * g[None, :, :, None], mode="mirror"), atol=1e-5
    )
    levels = q.laplacian_pyramid(x, 3)
    assert [lv.shape[1] for lv in levels] == [16, 8, 4]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = q.pyr_up(rebuilt) + band
    np.testing.assert_allclose(rebuilt, x, atol=1e-5)


def test_swd_is_zero_for_a_set_with_itself_and_blind_to_channel_gain_and_offset():
    """The reference normalises each set's descriptors per channel: a global per-channel
    gain and offset changes nothing; blur does."""
    images = np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3)).astype(np.float32)
    images = q.pyr_up(q.pyr_down(images))  # some spatial correlation
    affine = images * np.array([0.5, 1.5, 2.0], np.float32) + np.array([10, -5, 3], np.float32)
    a = np.arange(12)
    pool = q.SwdPool(images, seed=0)  # the same seed: the same positions and directions
    same = q.swd(pool, a, pool, a)
    assert pool.resolutions == [32, 16] and set(same) == {"swd_32", "swd_16", "swd_avg"}
    assert all(v == 0 for v in same.values())
    assert all(v < 1e-2 for v in q.swd(pool, a, q.SwdPool(affine, seed=0), a).values())
    soft = q.SwdPool(q.pyr_up(q.pyr_down(images)), seed=0)
    assert q.swd(pool, a, soft, a)["swd_32"] > 50


def test_colour_distance_and_background():
    grey = np.full((4, 32, 32, 3), 100, np.uint8)
    light = np.full((4, 32, 32, 3), 150, np.uint8)
    framed = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    for edge in (np.s_[:, :2], np.s_[:, -2:], np.s_[:, :, :2], np.s_[:, :, -2:]):
        framed[edge] = (176, 158, 160)  # a 2 px frame: the border ring at 32 px
    assert (q.background_colours(framed) == [176, 158, 160]).all()
    pool = q.ColourPool(np.concatenate([grey, light, framed]))
    d = q.colour_distance(pool, np.arange(4), pool, np.arange(4, 8))
    dl = float(
        q.srgb_to_lab(np.array([150, 150, 150], np.uint8))[0]
        - q.srgb_to_lab(np.array([100, 100, 100], np.uint8))[0]
    )
    assert d["w1_L"] == pytest.approx(dl, abs=1.0) and d["w1_a"] < 1 and d["w1_b"] < 1
    assert d["background_delta_e"] == pytest.approx(dl, abs=0.01)
    assert q.colour_distance(pool, np.arange(8, 12), pool, np.arange(8, 12))["lab_w1"] == 0


def test_spread_z_is_small_for_one_distribution_and_large_for_a_shift():
    """compare_with_spread on vectors of known geometry: a statistic (distance of means) of a
    sample of the real distribution stays within its null; a 1-sd shift is far outside."""

    class Pool:
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

    def gap(a, ia, b, ib, rng):
        return {"gap": float(abs(a.x[ia].mean() - b.x[ib].mean()))}

    rng = np.random.default_rng(3)
    real, same, shifted = rng.normal(size=200), rng.normal(size=100), rng.normal(1, 1, 100)
    ok = q.compare_with_spread(gap, Pool(np.r_[real, same]), 200, repeats=30)
    bad = q.compare_with_spread(gap, Pool(np.r_[real, shifted]), 200, repeats=30)
    assert ok.set_size == bad.set_size == 100
    assert ok.summary("gap")["z"] < 2 and bad.summary("gap")["z"] > 6
    with pytest.raises(ValueError, match="at least 8 real"):
        q.compare_with_spread(gap, Pool(np.r_[real[:6], same[:4]]), 6)


def test_image_statistics_see_blur_and_colour():
    from common.images import load_images

    paths = sorted(DEMO.glob("*.jpg"))[:16]
    real = load_images(paths, 64, progress=False)
    base, soft, pink = (image_statistics(x) for x in (real, blurred(real), colour_shifted(real)))
    # 2x2 thumbnail (12), histograms (24), mean (3), std (3), background (3), then texture
    assert base.shape == (16, 54) and np.isfinite(base).all()
    mean_l, fine = 12 + 24, 12 + 24 + 9  # mean L; the finest Laplacian band's log energy
    assert (soft[:, fine] < base[:, fine] - 0.3).all()  # blur lowers fine texture in every image
    assert (pink[:, mean_l] > base[:, mean_l]).all()  # lighter


# --- the checks on real ISIC images (pixels only: no feature network) --------------------------
@pytest.fixture(scope="module")
def demo_sets():
    """isic-demo split once: 80 'training' images and 40 unseen ones, at 64 px."""
    from common.images import load_images

    paths = sorted(DEMO.glob("*.jpg"))
    order = np.random.default_rng(0).permutation(len(paths))
    pixels = load_images([paths[i] for i in order[:120]], 64, progress=False)
    return {"real": pixels[:80], "unseen": pixels[80:120]}


def _pixel_inputs(real, synthetic, seed=0, **overrides) -> CheckInputs:
    return CheckInputs(
        real=np.zeros((len(real), 1)),
        synthetic=np.zeros((len(synthetic), 1)),
        holdout=None,
        real_pixels=real,
        synthetic_pixels=synthetic,
        holdout_pixels=None,
        real_paths=[],
        synthetic_paths=[],
        holdout_paths=None,
        thresholds=load_thresholds(None, overrides),
        seed=seed,
    )


@pytest.fixture(scope="module")
def demo_results(demo_sets):
    sets = {
        "unseen": demo_sets["unseen"],
        "blurred": blurred(demo_sets["unseen"]),
        "shifted": colour_shifted(demo_sets["unseen"]),
    }
    return {
        kind: {
            name: run_check(name, _pixel_inputs(demo_sets["real"], images)) for name in WEIGHT_FREE
        }
        for kind, images in sets.items()
    }


def test_weight_free_checks_pass_unseen_real_images(demo_results):
    for name, r in demo_results["unseen"].items():
        assert r.error is None and r.passed, (name, r.note)
        assert r.numbers["set_size"] == 40
        assert r.numbers["splits"] == getattr(load_thresholds(None), f"{name}_splits")
        for row in r.numbers["versus_real"].values():  # the spread is reported beside
            assert row["real_vs_real_sd"] > 0
            assert row["real_vs_real_max"] >= row["real_vs_real_mean"]


def test_blurred_real_images_fail(demo_results):
    r = demo_results["blurred"]
    assert r["pixel_c2st"].error is None and not r["pixel_c2st"].passed
    assert r["pixel_c2st"].numbers["auc"] > 0.9
    # the finest SWD level moves far beyond the real-vs-real spread; colour stays put
    swd = r["swd"].numbers["versus_real"]["swd_64"]
    assert swd["value"] > 1.3 * swd["real_vs_real_max"]
    assert r["colour"].numbers["z_w1_L"] < r["pixel_c2st"].numbers["z_auc"]


def test_colour_shifted_real_images_fail(demo_results):
    r = demo_results["shifted"]
    assert not r["colour"].passed and not r["pixel_c2st"].passed
    table = r["colour"].numbers["versus_real"]
    for stat in ("w1_L", "background_delta_e"):  # lighter: beyond every real-vs-real split
        assert table[stat]["value"] > 1.3 * table[stat]["real_vs_real_max"], stat
    assert "background_rgb_synthetic" in r["colour"].numbers
    # SWD normalises each set per channel (as the reference does): a colour shift is not its job
    assert r["swd"].passed


def test_comparison_side_follows_the_synthetic_resolution(demo_sets, tmp_path):
    """A 32 px generator is compared at 32 px, not at the pixel size it was enlarged to."""
    from validator.checks.weight_free import comparison_pixels

    paths = []
    for i, img in enumerate(demo_sets["unseen"][:8]):
        paths.append(str(tmp_path / f"s{i}.png"))
        Image.fromarray(img).resize((32, 32)).save(paths[-1])
    inputs = _pixel_inputs(demo_sets["real"][:16], demo_sets["unseen"][:8])
    inputs.synthetic_paths = paths
    real, syn, side = comparison_pixels(inputs)
    assert side == 32 and real.shape == (16, 32, 32, 3) and syn.shape == (8, 32, 32, 3)
    inputs.synthetic_paths = [str(tmp_path / "missing.png")]
    inputs._memo.clear()
    assert comparison_pixels(inputs)[2] == 64


def test_too_few_images_is_an_error_that_fails_the_gate(demo_sets):
    r = run_check("swd", _pixel_inputs(demo_sets["real"][:6], demo_sets["unseen"][:3]))
    assert r.error and "at least 8 real" in r.error
    assert not decide([r], random_weights=True, allow_random_weights=True).passed


# --- the gate with a random-weight feature model -----------------------------------------------
def test_registry_marks_the_weight_free_checks():
    assert all(registry.is_weight_free(n) for n in WEIGHT_FREE)
    assert not any(registry.is_weight_free(n) for n in FEATURE_QUALITY + ("dcr", "nope"))
    assert set(WEIGHT_FREE) <= set(DEFAULT_CHECKS)
    assert "weight-free" in registry.describe()["swd"]


def _degraded_encoded(encoded, xception_onnx, make):
    """The 'other' (unseen) set degraded by ``make``: pixels at 64 px, features at 71 px."""
    from common.images import load_images
    from tests.validator.conftest import Encoded
    from validator.features import FeatureModel

    pixels71 = make(load_images(encoded["other"].paths, 71, progress=False))
    return Encoded(
        FeatureModel(xception_onnx)(pixels71), make(encoded["other"].pixels), encoded["other"].paths
    )


@pytest.mark.parametrize("kind", ["unseen", "blurred", "colour-shifted"])
def test_random_weights_verdict_rests_on_weight_free_checks(encoded, xception_onnx, kind):
    """The release gate's promise: random-weight features, all default checks. Unseen real images
    PASS; blurred or colour-shifted real images FAIL on the weight-free checks; the
    feature-space quality checks show "info" and never decide."""
    enc = dict(encoded)
    if kind != "unseen":
        enc["degraded"] = _degraded_encoded(
            encoded, xception_onnx, blurred if kind == "blurred" else colour_shifted
        )
    inputs = make_inputs(enc, ["other" if kind == "unseen" else "degraded"])
    results = [run_check(name, inputs) for name in DEFAULT_CHECKS]
    verdict = decide(results, random_weights=True, allow_random_weights=False)
    assert {n: verdict.status(n) for n in FEATURE_QUALITY} == dict.fromkeys(FEATURE_QUALITY, "info")
    failed = {r.split(":")[0] for r in verdict.reasons}
    assert not failed & set(FEATURE_QUALITY)
    if kind == "unseen":
        assert verdict.passed, verdict.reasons
        assert all(verdict.status(n) == "pass" for n in WEIGHT_FREE)
    else:
        assert not verdict.passed
        assert failed & set(WEIGHT_FREE), verdict.reasons
    assert any("RANDOM-WEIGHT" in w for w in verdict.warnings)


def test_random_weights_without_weight_free_evidence_fail_unless_allowed(encoded):
    inputs = make_inputs(encoded, ["other"])
    results = [run_check(name, inputs) for name in ("dcr", "c2st")]
    refused = decide(results, random_weights=True, allow_random_weights=False)
    assert not refused.passed and any("RANDOM-WEIGHT" in r for r in refused.reasons)
    allowed = decide(results, random_weights=True, allow_random_weights=True)
    assert allowed.passed, allowed.reasons
    assert allowed.status("c2st") == "info" and allowed.status("dcr") == "pass"


def test_report_shows_info_and_the_real_vs_real_spread(split, xception_onnx, tmp_path):
    """Through the pipeline: report.json and report.html carry each check's status ("info"
    for the feature-space quality checks of a random-weight model) and the spread table."""
    import shutil

    from validator.config import ValidateConfig
    from validator.pipeline import run_validation

    sets = {}
    for name, src, n in (
        ("real", split.train, 60),
        ("holdout", split.holdout, 30),
        ("synthetic", split.other, 30),
    ):
        sets[name] = tmp_path / name
        sets[name].mkdir()
        for path in sorted(src.iterdir())[:n]:
            shutil.copy(path, sets[name])
    config = ValidateConfig(
        real=sets["real"],
        holdout=sets["holdout"],
        synthetic=sets["synthetic"],
        features_model=xception_onnx,
        out=tmp_path / "report",
        cache_dir=tmp_path / "cache",
        tsne=False,
        progress=False,
    )
    outcome = run_validation(config)
    report = json.loads(outcome.report_json.read_text())
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert all(status[n] == "info" for n in FEATURE_QUALITY)
    assert all(status[n] == "pass" for n in WEIGHT_FREE), report["reasons"]
    assert set(report["gate"]["report_only"]) == set(FEATURE_QUALITY)
    assert "RANDOM" in report["gate"]["policy"]
    html = outcome.report_html.read_text()
    assert html.count('<td class="info">info</td>') == len(FEATURE_QUALITY)
    assert "real vs real: mean" in html and "swd_32" in html
    assert report["verdict"] == ("PASS" if not report["reasons"] else "FAIL")
