"""Metrics of the paper: prediction error, parameter error, clustering agreement, divergences.

Shapes: y, yhat (n,); labels (n,) of ints; X (n, d); MoEParams gates and experts (d+1, K),
variances (K,).  Every metric returns a float (``parameter_mse`` a dict of floats).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, confusion_matrix, rand_score

from ._validation import check_X
from .alignment import align_to
from .model import MoEParams, gate_proba, loglik_per_sample
from .reduction import transport_divergence

__all__ = [
    "ari",
    "clustering_error",
    "correlation",
    "gate_proba_mse",
    "heldout_loglik",
    "parameter_mse",
    "rand_index",
    "rpe",
    "transport_divergence_to_truth",
]


def _vector(a, name):
    """``a`` as a float vector (n,): 1-D, or a column (n, 1); a table of several columns is refused (raveled,
    y of shape (n, 2) against yhat (2n,) gave an RPE of 1.4 without a word: the audit of 2026-12-06)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 1):
        raise ValueError(f"{name} must be one column of values, shape (n,) or (n, 1), got shape {a.shape}.")
    return a.ravel()


def _pair(y, yhat):
    y, yhat = _vector(y, "y"), _vector(yhat, "yhat")
    if y.shape != yhat.shape:
        raise ValueError(f"y and yhat must have the same length, got {y.size} and {yhat.size}.")
    if y.size == 0:
        raise ValueError("y and yhat must not be empty.")
    # A NaN in y is missing data, the caller's to drop; one in yhat is a broken model. Either made the
    # metric NaN without a word. An infinite prediction stays: its error is the answer (rpe is inf).
    if not np.isfinite(y).all():
        raise ValueError(f"y holds {int((~np.isfinite(y)).sum())} NaN or infinite value(s): drop those rows.")
    if np.isnan(yhat).any():
        raise ValueError(f"yhat holds {int(np.isnan(yhat).sum())} NaN value(s): the model predicts nothing there.")
    return y, yhat


def rpe(y, yhat):
    """Relative prediction error sum (y - yhat)^2 / sum y^2 of y (n,) and its prediction yhat (n,)."""
    y, yhat = _pair(y, yhat)
    denom = float(y @ y)
    if denom == 0:
        raise ValueError("rpe is undefined when every y is 0.")
    # A prediction past float64's range (a line at an input of 1e300) makes the error inf: the
    # answer, said by the value (the app writes "not finite"), not by NumPy's overflow warning.
    with np.errstate(over="ignore"):
        return float(((y - yhat) ** 2).sum() / denom)


def correlation(y, yhat):
    """Pearson correlation between y (n,) and yhat (n,); NaN when either is constant."""
    y, yhat = _pair(y, yhat)
    if y.std() == 0 or yhat.std() == 0:
        return float("nan")
    return float(np.corrcoef(y, yhat)[0, 1])


def _labels(labels_true, labels_pred):
    """Two labellings (n,) of the same points: 1-D, of one length, not empty (scikit-learn's own
    messages name its arguments, and an empty pair scored a perfect 1.0)."""
    a, b = np.asarray(labels_true), np.asarray(labels_pred)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"labels_true and labels_pred must be two 1-D labellings of the same points, of the same "
                         f"length n > 0, got shapes {a.shape} and {b.shape}.")
    return a, b


def _aligned(name, estimate: MoEParams, truth: MoEParams, X):
    """``estimate`` with its experts aligned to ``truth`` (same K and d, else a ValueError naming the
    metric ``name``)."""
    for who, p in (("estimate", estimate), ("truth", truth)):
        if not isinstance(p, MoEParams):
            raise TypeError(f"{name}: {who} must be a MoEParams, got {type(p).__name__}.")
    if X is not None:
        X = check_X(X, "X", n_features=truth.n_features)
    if estimate.n_experts != truth.n_experts or estimate.n_features != truth.n_features:
        raise ValueError(
            f"{name} needs the same K and d: estimate has "
            f"K={estimate.n_experts}, d={estimate.n_features}; truth has K={truth.n_experts}, d={truth.n_features}."
        )
    return align_to(truth, estimate, X)


def parameter_mse(estimate: MoEParams, truth: MoEParams, X=None):
    """Mean squared error of the parameters after aligning the experts to the truth.

    Parameters
    ----------
    estimate, truth : MoEParams with the same K and d
    X : array (n, d) or None, the inputs the alignment weighs the experts on (see
        :func:`~moecore.alignment.align_to`)

    Returns
    -------
    dict with "gates", "experts", "variances" (mean over that block's entries) and "all" (mean over
    every free parameter).  Gate coefficients are compared after both are pinned to the aligned
    last expert.
    """
    est = _aligned("parameter_mse", estimate, truth, X)
    out = {
        "gates": float(np.mean((est.gates[:, :-1] - truth.gates[:, :-1]) ** 2)) if truth.n_experts > 1 else 0.0,
        "experts": float(np.mean((est.experts - truth.experts) ** 2)),
        "variances": float(np.mean((est.variances - truth.variances) ** 2)),
    }
    out["all"] = float(np.mean((est.vector() - truth.vector()) ** 2))
    return out


def gate_proba_mse(estimate: MoEParams, truth: MoEParams, X):
    """Mean squared error of the gate probabilities over the inputs X (n, d), after aligning the
    experts to the truth: mean over points and experts of (pi_k(x) - pi*_k(x))^2.

    The gate coefficients of sharp gates are barely determined (logits can grow along a direction
    that changes no probability), so their MSE can differ by orders of magnitude between two fits
    that route every point alike; this measures the gates by what they do.
    """
    est = _aligned("gate_proba_mse", estimate, truth, X)
    return float(np.mean((gate_proba(X, est) - gate_proba(X, truth)) ** 2))


def ari(labels_true, labels_pred):
    """Adjusted Rand index (scikit-learn) of two labellings (n,)."""
    return float(adjusted_rand_score(*_labels(labels_true, labels_pred)))


def rand_index(labels_true, labels_pred):
    """Rand index (scikit-learn) of two labellings (n,)."""
    return float(rand_score(*_labels(labels_true, labels_pred)))


def clustering_error(labels_true, labels_pred):
    """Fraction of points misassigned under the best one-to-one matching of the labels (n,)."""
    labels_true, labels_pred = _labels(labels_true, labels_pred)
    cm = confusion_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(-cm)
    return float(1.0 - cm[rows, cols].sum() / labels_true.size)


def transport_divergence_to_truth(estimate: MoEParams, truth: MoEParams, X):
    """Expected transportation divergence from the true MoE to ``estimate`` over the inputs X (n, d)."""
    return float(transport_divergence([truth], [1.0], estimate, X))


def heldout_loglik(params: MoEParams, X, y):
    """Mean log-likelihood per held-out sample (X (n, d), y (n,))."""
    return float(loglik_per_sample(X, y, params).mean())
