"""A fitted model's predictions as a table: what a researcher downloads or applies to new x.

:func:`prediction_frame` gives, per row of X (n, d): the inputs, the response when given, the
prediction E[y | x], the gate probabilities pi_k(x) (n, K), the most likely expert argmax_k pi_k(x)
(numbered from 1) and, with y, the posterior expert argmax_k P(z = k | x, y).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import check_X, check_Xy, distinct_names
from .model import MoEParams, feature_names, gate_proba, posterior_proba, predict_mean

__all__ = ["apply_model", "prediction_frame"]


def _free(name, taken):
    """``name``, or ``name`` with "_model" appended until no column of ``taken`` has it: an output
    must not overwrite an input or the response that share its name."""
    while name in taken:
        name += "_model"
    return name


def prediction_frame(params: MoEParams, X, *, y=None, x_names=None, y_name="y"):
    """Predictions of ``params`` on X (n, d) (and y (n,)) as a DataFrame, one row per row of X.

    X : array-like (n, d), or a DataFrame: its columns ``x_names`` (the model's inputs, in the model's
        order, taken by name) when given, else all of them in their order, named as in the table.
    x_names : the d input names (default: a DataFrame's, else x1..xd); y_name : the response's.
    The outputs are ``prediction``, ``gate_1``..``gate_K``, ``most_likely_expert`` and, with y,
    ``posterior_expert``; one whose name an input or the response already has gets "_model" appended.
    """
    if x_names is not None:
        x_names = distinct_names(x_names, "x_names")
    if isinstance(X, pd.DataFrame):
        if x_names is None:
            x_names = distinct_names(X.columns, "X's columns")
        else:
            missing = [c for c in x_names if c not in X.columns]
            if missing:
                raise ValueError(f"X lacks the input column(s) {missing} of x_names; it has {list(X.columns)}.")
            X = X[x_names]
    if not isinstance(params, MoEParams):
        raise TypeError(f"params must be a MoEParams (a fitted estimator's params_), got {type(params).__name__}.")
    if y is not None and not isinstance(y_name, str):
        raise TypeError(f"y_name must be the response's column name (text), got {y_name!r}.")
    X, y = (check_X(X), None) if y is None else check_Xy(X, y)
    d = X.shape[1]
    if d != params.n_features:
        raise ValueError(f"X must have the model's {params.n_features} input column(s), got {d}.")
    names = list(x_names) if x_names is not None else feature_names(d)
    if len(names) != d:
        raise ValueError(f"x_names has {len(names)} name(s) for the model's {d} input column(s).")
    df = pd.DataFrame(X, columns=names)
    if y is not None:
        if y_name in names:
            raise ValueError(f"y_name {y_name!r} is also an input column: the response must be its own column.")
        df[y_name] = y
    taken = set(df.columns)
    df[_free("prediction", taken)] = predict_mean(X, params)
    gates = gate_proba(X, params)
    for k in range(params.n_experts):
        df[_free(f"gate_{k + 1}", taken)] = gates[:, k]
    df[_free("most_likely_expert", taken)] = gates.argmax(axis=1) + 1
    if y is not None:
        df[_free("posterior_expert", taken)] = posterior_proba(X, y, params).argmax(axis=1) + 1
    return df


def apply_model(params: MoEParams, frame: pd.DataFrame, x_names, y_name=None):
    """:func:`prediction_frame` on the columns ``x_names`` of a table (and its ``y_name`` column when
    present); a ValueError names the columns the table lacks, or an input's empty cells.

    The table's other columns (an id, a comment) come first in the result, so that it joins back by them
    (a name the result uses gets "_input" appended). Empty response cells are unknown responses, as in a
    template of new inputs: those rows get no ``posterior_expert``."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame (a table with the model's input columns by name), got "
                        f"{type(frame).__name__}; for an array, call prediction_frame.")
    x_names = distinct_names(x_names, "x_names")
    missing = [c for c in x_names if c not in frame.columns]
    if missing:
        raise ValueError(f"the table lacks the model's input column(s) {missing}; it has {list(frame.columns)}.")
    empty = frame[x_names].isna().to_numpy()
    if empty.any():
        j = int(np.flatnonzero(empty.any(axis=0))[0])
        rows = np.flatnonzero(empty[:, j])
        raise ValueError(f"input column {x_names[j]!r} is empty in {rows.size} row(s), the first in data row "
                         f"{rows[0] + 1} (counted from 1): fill them in or leave those rows out.")
    # The columns as they are, checked by prediction_frame as fit checks them: a float conversion here
    # read dates as nanoseconds (predictions of 3e15) and dropped the imaginary part of complex numbers.
    y = frame[y_name] if y_name is not None and y_name in frame.columns else None
    known = np.zeros(len(frame), dtype=bool) if y is None else ~y.isna().to_numpy()
    out = prediction_frame(params, frame[x_names], y=y if known.all() else None, x_names=x_names,
                           y_name=y_name or "y")
    if known.any() and not known.all():  # some responses known: their rows' posterior expert
        part = prediction_frame(params, frame.loc[known, x_names], y=y[known], x_names=x_names, y_name=y_name)
        out.insert(len(x_names), y_name, y.to_numpy())
        posterior = pd.array([pd.NA] * len(out), dtype="Int64")
        posterior[known] = part.iloc[:, -1].to_numpy()
        out[part.columns[-1]] = posterior
    others = [c for c in frame.columns if c not in x_names and c != y_name]
    if not others:
        return out
    extra = frame[others].reset_index(drop=True)
    extra.columns = [f"{c}_input" if c in out.columns else c for c in others]
    return pd.concat([extra, out], axis=1)
