"""Classifier two-sample test (C2ST): can a classifier tell synthetic from real features?

Method: Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests" (ICLR 2017). Features are
standardized and reduced by PCA (fitted inside each fold, to ``c2st_pca`` components), then a
logistic regression is cross-validated (stratified ``c2st_folds`` folds) on real (0) vs
synthetic (1); the out-of-fold ROC AUC is reported. 0.5: indistinguishable; near 1: the
synthetic images form their own cluster, the failure a t-SNE view shows as a separate island. Sets
larger than ``c2st_max_per_set`` enter as a seeded random subsample (stated in the result). The
p-value is a one-sided permutation-free normal approximation of the Mann-Whitney AUC under H0.

Memory: the standardization and PCA of each fold are fitted from a covariance accumulated in
chunks within ``--memory-mb`` (:func:`validator.budget.fit_pca`), on row indices: no subset, no
float64 copy of the features; only the [n, c2st_pca] coordinates reach the classifier. The
result equals scikit-learn's ``StandardScaler`` + ``PCA(svd_solver="full")`` +
``LogisticRegression`` pipeline under ``cross_val_predict`` (the same folds; PCA axes up to
sign, which the L2-penalised regression does not see). ``c2st_max_per_set`` bounds the time.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from validator.budget import DEFAULT_MEMORY_MB, fit_pca
from validator.checks import CheckInputs, CheckResult, register


def subsample_rows(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` row indices of ``n``, a random subset in their original order."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, limit, replace=False))


def c2st_auc(
    real: np.ndarray,
    syn: np.ndarray,
    *,
    folds: int = 5,
    pca: int = 50,
    seed: int = 0,
    max_per_set: int | None = None,
    memory_mb: float = DEFAULT_MEMORY_MB,
) -> dict:
    n_real, n_syn = len(real), len(syn)
    rng = np.random.default_rng(seed)
    rows_r, rows_s = (
        subsample_rows(n_real, max_per_set, rng),
        subsample_rows(n_syn, max_per_set, rng),
    )
    n0, n1 = len(rows_r), len(rows_s)
    y = np.r_[np.zeros(n0), np.ones(n1)]
    folds = min(folds, n0, n1)
    if folds < 2:
        raise ValueError("the two-sample test needs at least 2 real and 2 synthetic images")
    train_size = len(y) - int(np.ceil(len(y) / folds))
    n_comp = max(1, min(pca, train_size - 1, real.shape[1]))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = np.empty(len(y))

    def parts(idx: np.ndarray) -> list:  # rows of the stacked (real, synthetic) sample
        idx = np.sort(idx)
        return [(real, rows_r[idx[idx < n0]]), (syn, rows_s[idx[idx >= n0] - n0])]

    for train, test in cv.split(np.zeros((len(y), 1)), y):
        fit = fit_pca(parts(train), n_comp, memory_mb)
        model = LogisticRegression(C=1.0, max_iter=2000)
        model.fit(fit.transform(parts(train), memory_mb), y[np.sort(train)])
        proba[np.sort(test)] = model.predict_proba(fit.transform(parts(test), memory_mb))[:, 1]
    auc = float(roc_auc_score(y, proba))
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
        memory_mb=inputs.memory_mb,
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
