"""Privacy checks on real ISIC images: planted near-copies of training images must be flagged,
unseen real images must be flagged only at about the chosen quantile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.validator.conftest import make_inputs
from tests.validator.planting import EDITS
from validator.checks import run_check
from validator.checks.dcr import analyse


def _flagged_names(result) -> set[str]:
    return {Path(item["synthetic"]).name for item in result.flagged}


@pytest.mark.parametrize("holdout", [True, False], ids=["holdout-baseline", "leave-one-out"])
def test_planted_near_copies_are_flagged(encoded, split, holdout):
    inputs = make_inputs(encoded, ["other", "planted"], holdout=holdout)
    dcr = run_check("dcr", inputs)
    nndr = run_check("nndr", inputs)
    assert dcr.error is None and nndr.error is None
    planted = set(split.planted_sources)
    assert len(planted) == 20 * (1 + len(EDITS))
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


def test_every_edit_kind_is_caught_in_pixel_space(encoded, split):
    """With random Xception weights the feature space is weak: the pixel space (mirror and
    zoom views, centred low-resolution vectors) must carry detection on its own."""
    a = analyse(make_inputs(encoded, ["planted"]))
    names = [Path(p).name for p in encoded["planted"].paths]
    for kind in ("exact", *EDITS):
        hits = [a.pixel.flagged[i] for i, n in enumerate(names)
                if n.split("_")[-1].split(".")[0] == kind]
        assert len(hits) == 20 and sum(hits) >= 19, (kind, sum(hits))


@pytest.mark.parametrize("quantile", [0.01, 0.05])
def test_unseen_real_images_are_flagged_at_about_the_quantile(encoded, quantile):
    inputs = make_inputs(encoded, ["other"], dcr_quantile=quantile)
    a = analyse(inputs)
    n = len(a.flagged)
    for space in (a.feature, a.pixel):
        # binomial(n, q) upper tail ~ q + 3 sd, loose but a broken threshold fails it
        assert space.flagged.mean() <= quantile + 3 * (quantile / n) ** 0.5 + 1 / n
    assert a.flagged.mean() <= 2 * quantile + 3 * (2 * quantile / n) ** 0.5 + 1 / n
    if quantile == 0.05:  # something is flagged at 5 %: the threshold is not just "never"
        assert a.flagged.sum() >= 1


def test_data_copying_detects_planted_copies_not_unseen_images(encoded):
    clean = run_check("data_copying", make_inputs(encoded, ["other"]))
    copied = run_check("data_copying", make_inputs(encoded, ["planted"]))
    assert clean.error is None and copied.error is None
    assert clean.passed and clean.numbers["z_u"] > -3
    assert not copied.passed and copied.numbers["z_u"] < -3


def test_data_copying_without_holdout_is_not_applicable(encoded):
    strict = run_check("data_copying", make_inputs(encoded, ["other"], holdout=False))
    assert not strict.applicable and not strict.passed
    lenient = run_check("data_copying", make_inputs(encoded, ["other"], holdout=False,
                                                    require_holdout=False))
    assert not lenient.applicable and lenient.passed
