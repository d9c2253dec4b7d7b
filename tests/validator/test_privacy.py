"""Privacy checks on real ISIC images: planted near-copies of training images must be flagged;
unseen real images (never trained on) must pass, flagged at no more than the nominal rate, even
with a held-out baseline of 30-60 images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from tests.validator.conftest import make_inputs
from tests.validator.planting import EDITS
from validator.checks import run_check
from validator.checks.calibration import benjamini_hochberg
from validator.checks.dcr import analyse
from validator.gate import decide

PRIVACY = ("dcr", "nndr", "holdout_share", "data_copying")


def _flagged_names(result) -> set[str]:
    return {Path(item["synthetic"]).name for item in result.flagged}


def _kind(name: str) -> str:
    return name.split("_")[-1].split(".")[0]


@pytest.mark.parametrize("holdout", [True, False], ids=["holdout-baseline", "leave-one-out"])
def test_planted_near_copies_are_flagged(encoded, split, holdout):
    inputs = make_inputs(encoded, ["other", "planted"], holdout=holdout)
    dcr = run_check("dcr", inputs)
    nndr = run_check("nndr", inputs)
    assert dcr.error is None and nndr.error is None
    planted = set(split.planted_sources)
    assert len(planted) == 20 * (1 + len(EDITS)) and "copy_000_jpeg70.png" in planted
    caught = planted & _flagged_names(dcr)
    assert len(caught) / len(planted) >= 0.95, sorted(planted - caught)
    copies = planted & _flagged_names(nndr)
    assert len(copies) / len(planted) >= 0.95, sorted(planted - copies)
    assert not dcr.passed and not nndr.passed
    # each flagged copy's nearest real image is the image it was made from
    for item in dcr.flagged:
        name = Path(item["synthetic"]).name
        if name in planted and "pixel" in item["spaces"]:
            assert Path(item["nearest_real"][0]).name == split.planted_sources[name].name


@pytest.mark.parametrize("holdout_count", [30, 60])
def test_unseen_real_images_pass_with_a_small_holdout(encoded, holdout_count):
    """The issue's case: unseen real images as the synthetic set, 30-60 held-out images."""
    inputs = make_inputs(encoded, ["other"], holdout_count=holdout_count)
    results = {name: run_check(name, inputs) for name in PRIVACY}
    for name, r in results.items():
        assert r.error is None and r.applicable and r.passed, (name, r.note)
    assert decide(list(results.values()), random_weights=False, allow_random_weights=False).passed
    dcr = results["dcr"].numbers
    n = dcr["synthetic_count"]
    assert n == len(encoded["other"].paths) and dcr["baseline"] == "holdout"
    used = min(holdout_count, len(encoded["holdout"].paths))
    assert dcr["baseline_count"] + dcr["holdout_excluded"] == used
    # flagged fraction within the binomial interval of the nominal rates: BH flags (under no
    # memorisation: any flag at all with probability <= dcr_fdr) and p <= dcr_quantile
    t = inputs.thresholds
    assert dcr["flagged"] <= binom.ppf(0.999, n, t.dcr_fdr / n)
    assert dcr["synthetic_close"]["count"] <= binom.ppf(0.999, n, t.dcr_quantile)
    # the real-vs-real rates are reported beside them
    assert dcr["real_vs_real_flags"]["of"] == dcr["baseline_count"]
    assert 0 <= dcr["real_vs_real_close"]["rate"] <= 1


def test_p_values_of_unseen_images_are_calibrated_not_degenerate(encoded):
    """Per-image p-values (both spaces, Bonferroni) of unseen images: at most the nominal rate
    at every level, and not all ~1 (a check that never flags would pass the test above)."""
    a = analyse(make_inputs(encoded, ["other"], holdout_count=60))
    n = len(a.p)
    for level in (0.01, 0.05, 0.2, 0.5):
        assert np.sum(a.p <= level) <= binom.ppf(0.999, n, level), level
    # Bonferroni over two correlated spaces is conservative, but not by more than 2x
    assert np.sum(a.p <= 0.5) >= binom.ppf(0.001, n, 0.25)
    # the previous rule (OR of two 1 %-quantile thresholds of ~60 values) flagged ~8 %
    assert np.mean(a.flagged) < 0.03


def test_planted_copies_are_flagged_with_a_small_holdout(encoded, split):
    inputs = make_inputs(encoded, ["other", "planted"], holdout_count=30)
    dcr = run_check("dcr", inputs)
    planted = set(split.planted_sources)
    caught = planted & _flagged_names(dcr)
    assert len(caught) / len(planted) >= 0.95, sorted(planted - caught)
    assert not dcr.passed


def test_a_few_copies_among_unseen_images_are_each_flagged(encoded):
    """One copy per edit (five training images), among ~100 unseen images: Benjamini-Hochberg
    with few rejections needs p-values below 1/(n_holdout+1): the power-law tail gives them."""
    names = [Path(p).name for p in encoded["planted"].paths]
    pick = [
        next(
            i for i, nm in enumerate(names) if nm.startswith(f"copy_{j:03d}_") and _kind(nm) == kind
        )
        for j, kind in enumerate(("exact", *EDITS))
    ]
    sub = dict(encoded)
    sub["few"] = type(encoded["planted"])(
        encoded["planted"].features[pick],
        encoded["planted"].pixels[pick],
        [encoded["planted"].paths[i] for i in pick],
    )
    dcr = run_check("dcr", make_inputs(sub, ["other", "few"], holdout_count=40))
    caught = {_kind(n) for n in _flagged_names(dcr) if n.startswith("copy_")}
    assert caught == {"exact", *EDITS}
    assert not dcr.passed


def test_every_edit_kind_is_caught_in_pixel_space_alone(encoded):
    """With random Xception weights the feature space is weak: the pixel space (mirror and
    zoom views, centred low-resolution vectors) must carry detection on its own."""
    a = analyse(make_inputs(encoded, ["planted"]))
    flagged = benjamini_hochberg(a.pixel.p, 0.05)
    names = [Path(p).name for p in encoded["planted"].paths]
    for kind in ("exact", *EDITS):
        hits = [flagged[i] for i, n in enumerate(names) if _kind(n) == kind]
        assert len(hits) == 20 and sum(hits) >= 19, (kind, sum(hits))


def test_holdout_share_is_half_for_unseen_images_and_high_for_copies(encoded):
    clean = run_check("holdout_share", make_inputs(encoded, ["other"], holdout_count=40))
    copied = run_check("holdout_share", make_inputs(encoded, ["planted"], holdout_count=40))
    assert clean.passed and copied.error is None and not copied.passed
    assert clean.numbers["share_equal_size_lower"] < 0.5 + clean.thresholds["holdout_share_margin"]
    for space in ("feature", "pixel"):
        assert copied.numbers[space]["share"] > clean.numbers[space]["share"]
    assert copied.numbers["pixel"]["share_equal_size_lower"] > 0.75
    assert clean.numbers["feature"]["real_vs_real_equal_size"] is not None


def _with_metadata(src_paths, folder: Path, lesions: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True)
    rows = ["isic_id,diagnosis,lesion_id"]
    out = []
    for p in src_paths:
        p = Path(p)
        shutil.copy(p, folder / p.name)
        rows.append(f"{p.stem},nevus,{lesions.get(p.stem, 'IL_' + p.stem)}")
        out.append(str(folder / p.name))
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return out


def test_held_out_images_of_training_lesions_leave_the_baseline(encoded, tmp_path):
    """isic-cli metadata.csv with lesion_id: held-out images whose lesion is in the training
    set are not unseen: left out of the baseline, warned about, listed as real near-duplicates."""
    train, hold = encoded["train"].paths, encoded["holdout"].paths[:40]
    shared = {Path(h).stem: f"IL_{Path(t).stem}" for h, t in zip(hold[:5], train[:5])}
    inputs = make_inputs(encoded, ["other"], holdout_count=40)
    inputs.real_paths = _with_metadata(train, tmp_path / "train", {})
    inputs.holdout_paths = _with_metadata(hold, tmp_path / "holdout", shared)
    dcr = run_check("dcr", inputs)
    n = dcr.numbers
    assert n["grouping"] == "lesion_id" and n["holdout_excluded"] == 5
    assert n["holdout_in_baseline"] == n["baseline_count"] == len(hold) - 5
    dups = [d for d in n["real_near_duplicates"] if "lesion_id" in d.get("reason", "")]
    assert {Path(d["real"]).stem for d in dups} == set(shared)
    verdict = decide([dcr], random_weights=False, allow_random_weights=False)
    assert any("lesion_id" in w for w in verdict.warnings)
    assert dcr.passed
    assert run_check("data_copying", inputs).numbers["holdout_count"] == len(hold) - 5


def test_data_copying_detects_planted_copies_not_unseen_images(encoded):
    clean = run_check("data_copying", make_inputs(encoded, ["other"]))
    copied = run_check("data_copying", make_inputs(encoded, ["planted"]))
    assert clean.error is None and copied.error is None
    assert clean.passed and clean.numbers["z_u"] > -3
    assert not copied.passed and copied.numbers["z_u"] < -3


@pytest.mark.parametrize("check", ["data_copying", "holdout_share"])
def test_holdout_tests_without_holdout_are_not_applicable(encoded, check):
    strict = run_check(check, make_inputs(encoded, ["other"], holdout=False))
    assert not strict.applicable and not strict.passed
    lenient = run_check(
        check, make_inputs(encoded, ["other"], holdout=False, require_holdout=False)
    )
    assert not lenient.applicable and lenient.passed


def test_too_small_a_baseline_fails_closed(encoded):
    """Five training images, no held-out set: no calibrated test is possible."""
    inputs = make_inputs(encoded, ["other"], holdout=False)
    inputs.real, inputs.real_pixels = inputs.real[:5], inputs.real_pixels[:5]
    inputs.real_paths = inputs.real_paths[:5]
    dcr = run_check("dcr", inputs)
    assert dcr.error is None and not dcr.passed and not dcr.applicable
    assert "cannot test" in dcr.note
    assert not decide([dcr], random_weights=False, allow_random_weights=False).passed


def test_conformal_p_values_are_valid_and_reach_below_one_over_n_plus_one():
    from validator.checks.calibration import conformal_p, tail_exponent

    rng = np.random.default_rng(1)
    # nearest-neighbour-like distances: P(D <= d) ~ d^4 near 0
    base, query = rng.random((2, 200, 40)) ** 0.25
    p = np.concatenate([conformal_p(q, b) for q, b in zip(query.T, base.T)])
    for level in (0.005, 0.02, 0.1, 0.5):
        assert np.mean(p <= level) <= level + 3 * np.sqrt(level / p.size), level
    b = base[:, 0]
    assert 1.0 < tail_exponent(b) < 6.0
    assert conformal_p(np.array([0.0, b.min() / 10, b.max() * 2]), b).tolist()[::2] == [0, 1]
    assert conformal_p(np.array([b.min() / 10]), b)[0] < 0.01 / (len(b) + 1)


def test_benjamini_hochberg_and_clopper_pearson():
    from validator.checks.calibration import clopper_pearson, lower_bound

    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8
    assert benjamini_hochberg(np.full(5, 0.04), 0.05).all()
    lo, hi = clopper_pearson(0, 30)
    assert lo == 0 and abs(hi - (1 - 0.025 ** (1 / 30))) < 1e-9
    assert lower_bound(30, 30, 0.05) == pytest.approx(0.05 ** (1 / 30))


def test_lesion_groups_from_metadata_and_group_split(tmp_path):
    from validator.lesions import Groups, grouping_column, split_by_group

    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "metadata.csv").write_text("isic_id,patient_id,lesion_id\na,IP_1,IL_7\nb,IP_1,\n")
    g = Groups.read([tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"])
    assert g.lesion == ("IL_7", None, None) and g.patient == ("IP_1", "IP_1", None)
    assert grouping_column(g) == "lesion_id"
    keys = ["L1", "L1", "L1", None, "L2", "L2", None, None]
    for seed in range(5):
        parts = split_by_group(keys, [4, 2, 2], np.random.default_rng(seed))
        assert sorted(np.concatenate(parts).tolist()) == list(range(8))
        owner = {i: k for k, part in enumerate(parts) for i in part}
        assert owner[0] == owner[1] == owner[2] and owner[4] == owner[5]
