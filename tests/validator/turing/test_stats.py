"""The statistics of a study against references computed here, independently, from the raw
answers: SciPy's Wilson interval and binomial test, the exact binomial sum written out, Fleiss'
kappa written as loops, and Fleiss' kappa on the worked example of the literature."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
from scipy.stats import binomtest

from tests.validator.turing.conftest import post, start
from validator.turing.stats import fleiss_kappa, wilson

# The worked example of Fleiss' kappa (Wikipedia, "Fleiss' kappa"; after Fleiss 1971): 10
# subjects, 14 raters, 5 categories; P-bar = 0.378, P-bar-e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_worked_example():
    assert fleiss_kappa(np.array(FLEISS_EXAMPLE)) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [2, 0]])) == pytest.approx(1.0)
    assert fleiss_kappa(np.array([[2, 0], [2, 0]])) is None  # one category: undefined
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 0], [1, 0]]))


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (1, 2), (66, 100), (133, 200), (7, 31)])
def test_the_wilson_interval_matches_scipy(k, n):
    lo, hi = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((lo, hi), abs=1e-12)


def exact_two_sided_p(k: int, n: int) -> float:
    """The exact binomial test against 1/2, written out: the probability of every outcome no
    more likely than ``k``."""
    pmf = [math.comb(n, i) / 2**n for i in range(n + 1)]
    return min(1.0, sum(p for p in pmf if p <= pmf[k] * (1 + 1e-7)))


def kappa_by_loops(table: list[list[int]]) -> float:
    n_items, raters = len(table), sum(table[0])
    shares = [sum(row[j] for row in table) / (n_items * raters) for j in range(len(table[0]))]
    agreement = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table]
    p_bar, p_e = sum(agreement) / n_items, sum(s * s for s in shares)
    return (p_bar - p_e) / (1 - p_e)


def test_two_scripted_raters_by_100_images_match_a_hand_computed_reference(make_study):
    store, study = make_study(100, size=32)
    live = start(store, study)
    try:
        links = [live.new_rater("ann"), live.new_rater("ben")]
        rng = np.random.default_rng(1)
        raw = []  # (rater, image, truth, answer, confidence), as the scripted raters gave them
        with sqlite3.connect(store.path) as db:
            for rater, (link, skill) in enumerate(zip(links, (0.75, 0.6))):
                session = link.rsplit("/", 1)[1]
                order = db.execute(
                    "SELECT t.image, i.role FROM trials t JOIN images i ON i.idx = t.image "
                    "WHERE t.session = ? ORDER BY t.position",
                    (session,),
                ).fetchall()
                assert sorted(role for _i, role in order) == ["real"] * 50 + ["synthetic"] * 50
                for position, (image, truth) in enumerate(order):
                    right = rng.random() < skill
                    other = "real" if truth == "synthetic" else "synthetic"
                    answer = truth if right else other
                    confidence = int(rng.integers(3, 6) if right else rng.integers(1, 4))
                    fields = {"position": position, "answer": answer, "confidence": confidence}
                    assert post(link, fields)[0] == 303
                    raw.append((rater, image, truth, answer, confidence))
        status, doc = _results(live)
    finally:
        live.stop()
    assert status == 200 and len(raw) == 200 and doc["answers"] == 200

    correct = sum(a == t for _r, _i, t, a, _c in raw)
    ci = binomtest(correct, 200).proportion_ci(method="wilson")
    assert doc["accuracy"]["k"] == correct and doc["accuracy"]["n"] == 200
    assert doc["accuracy"]["value"] == pytest.approx(correct / 200)
    assert doc["accuracy"]["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert doc["binomial_test"]["p_value"] == pytest.approx(exact_two_sided_p(correct, 200))
    assert doc["binomial_test"]["p_value"] == pytest.approx(binomtest(correct, 200).pvalue)

    synthetic = [a for _r, _i, t, a, _c in raw if t == "synthetic"]
    real = [a for _r, _i, t, a, _c in raw if t == "real"]
    assert doc["sensitivity"]["k"] == synthetic.count("synthetic") and len(synthetic) == 100
    assert doc["sensitivity"]["value"] == pytest.approx(synthetic.count("synthetic") / 100)
    assert doc["specificity"]["value"] == pytest.approx(real.count("real") / 100)
    for row in doc["by_confidence"]:
        given = [(t, a) for _r, _i, t, a, c in raw if c == row["confidence"]]
        assert row["n"] == len(given) and row["k"] == sum(t == a for t, a in given)
    for rater, row in enumerate(doc["per_rater"]):
        mine = [t == a for r, _i, t, a, _c in raw if r == rater]
        assert row["completed"] and (row["n"], row["k"]) == (100, sum(mine))

    fooled: dict[int, list[int]] = {}
    for _r, image, truth, answer, _c in raw:
        fooled.setdefault(image, [0, 0, truth])
        fooled[image][0] += 1
        fooled[image][1] += answer != truth
    lists = (("synthetic_taken_for_real", "synthetic"), ("real_taken_for_synthetic", "real"))
    for key, truth in lists:
        ranked = [(-f / n, -f, i) for i, (n, f, t) in fooled.items() if t == truth and f]
        expected = sorted(ranked)[:10]
        got = [(-e["fooled"] / e["n"], -e["fooled"], e["image"]) for e in doc["fooled"][key]]
        assert got == expected

    table = [[0, 0] for _ in range(100)]
    for _r, image, _t, answer, _c in raw:
        table[image][answer == "synthetic"] += 1
    assert doc["fleiss_kappa"]["raters"] == 2 and doc["fleiss_kappa"]["items"] == 100
    assert doc["fleiss_kappa"]["value"] == pytest.approx(kappa_by_loops(table), abs=1e-12)


def _results(live):
    import json

    from tests.validator.turing.conftest import TOKEN, get

    status, _h, body = get(live.url + "/admin/results.json", token=TOKEN)
    return status, json.loads(body)
