"""Classifier two-sample test (C2ST): can a classifier tell synthetic from real features?

Method: Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests" (ICLR 2017). Features are
standardized and reduced by PCA (fitted inside each fold, to ``c2st_pca`` components), then a
logistic regression is cross-validated (stratified ``c2st_folds`` folds) on real (0) vs
synthetic (1); the out-of-fold ROC AUC is reported. 0.5: indistinguishable; near 1: the
synthetic images form their own cluster, the failure a t-SNE view shows as a separate island. Sets
larger than ``c2st_max_per_set`` enter as a seeded random subsample (stated in the result). The
p-value is a one-sided permutation-free normal approximation of the Mann-Whitney AUC under H0.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from validator.checks import CheckInputs, CheckResult, register


def subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows of ``x``, a random subset in their original order."""
    if len(x) <= limit:
        return x
    return x[np.sort(rng.choice(len(x), limit, replace=False))]


def c2st_auc(
    real: np.ndarray,
    syn: np.ndarray,
    *,
    folds: int = 5,
    pca: int = 50,
    seed: int = 0,
    max_per_set: int | None = None,
) -> dict:
    n_real, n_syn = len(real), len(syn)
    if max_per_set is not None:
        rng = np.random.default_rng(seed)
        real, syn = subsample(real, max_per_set, rng), subsample(syn, max_per_set, rng)
    x = np.concatenate([real, syn]).astype(np.float64)
    y = np.r_[np.zeros(len(real)), np.ones(len(syn))]
    folds = min(folds, len(real), len(syn))
    if folds < 2:
        raise ValueError("the two-sample test needs at least 2 real and 2 synthetic images")
    train_size = len(x) - int(np.ceil(len(x) / folds))
    n_comp = max(1, min(pca, train_size - 1, x.shape[1]))
    model = make_pipeline(
        StandardScaler(), PCA(n_comp, svd_solver="full"), LogisticRegression(C=1.0, max_iter=2000)
    )
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    n0, n1 = len(real), len(syn)
    se = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    from scipy.stats import norm

    return {
        "auc": auc,
        "auc_se_h0": float(se),
        "p_value": float(norm.sf((auc - 0.5) / se)),
        "folds": folds,
        "pca_components": n_comp,
        "real": n0,
        "synthetic": n1,
        "subsampled": (n0, n1) != (n_real, n_syn),
        "real_total": n_real,
        "synthetic_total": n_syn,
    }


@register("c2st", "quality")
def c2st(inputs: CheckInputs) -> CheckResult:
    """Classifier two-sample test: cross-validated logistic regression AUC (Lopez-Paz 2017)."""
    t = inputs.thresholds
    values = c2st_auc(
        inputs.real,
        inputs.synthetic,
        folds=t.c2st_folds,
        pca=t.c2st_pca,
        seed=inputs.seed,
        max_per_set=t.c2st_max_per_set,
    )
    limit = t.c2st_max_auc
    return CheckResult(
        name="c2st",
        kind="quality",
        passed=limit is None or values["auc"] <= limit,
        thresholds={"c2st_max_auc": limit},
        numbers=values,
        note=f"AUC {values['auc']:.3f} (0.5 = indistinguishable)"
        + (
            f"; on a seeded random subsample of {values['real']} real and "
            f"{values['synthetic']} synthetic images (c2st_max_per_set)"
            if values["subsampled"]
            else ""
        ),
    )
