"""A fitted model's predictions as a table: what a researcher downloads or applies to new x.

:func:`prediction_frame` gives, per row of X (n, d): the inputs, the response when given, the
prediction E[y | x], the gate probabilities pi_k(x) (n, K), the most likely expert argmax_k pi_k(x)
(numbered from 1) and, with y, the posterior expert argmax_k P(z = k | x, y).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import check_X
from .model import MoEParams, feature_names, gate_proba, posterior_proba, predict_mean

__all__ = ["apply_model", "prediction_frame"]


def prediction_frame(params: MoEParams, X, *, y=None, x_names=None, y_name="y"):
    """Predictions of ``params`` on X (n, d) (and y (n,)) as a DataFrame, one row per row of X."""
    X = check_X(X)
    if X.shape[1] != params.n_features:
        raise ValueError(f"X must have the model's {params.n_features} input column(s), got {X.shape[1]}.")
    names = list(x_names) if x_names is not None else feature_names(X.shape[1])
    df = pd.DataFrame(X, columns=names)
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        df[y_name] = y
    df["prediction"] = predict_mean(X, params)
    gates = gate_proba(X, params)
    for k in range(params.n_experts):
        df[f"gate_{k + 1}"] = gates[:, k]
    df["most_likely_expert"] = gates.argmax(axis=1) + 1
    if y is not None:
        df["posterior_expert"] = posterior_proba(X, y, params).argmax(axis=1) + 1
    return df


def apply_model(params: MoEParams, frame: pd.DataFrame, x_names, y_name=None):
    """:func:`prediction_frame` on the columns ``x_names`` of a table (and its ``y_name`` column when
    present); a ValueError names the columns the table lacks."""
    missing = [c for c in x_names if c not in frame.columns]
    if missing:
        raise ValueError(f"the table lacks the model's input column(s) {missing}; it has {list(frame.columns)}.")
    X = frame[list(x_names)].to_numpy(np.float64)
    y = frame[y_name].to_numpy(np.float64) if y_name is not None and y_name in frame.columns else None
    return prediction_frame(params, X, y=y, x_names=x_names, y_name=y_name or "y")
