"""Tables the pages show (pandas DataFrames), built as plain functions like the figures."""

from __future__ import annotations

import pandas as pd

from moecore import MoEParams
from moecore.model import feature_names


def coef_labels(d, x_names=None):
    """["intercept", "slope x1", ...]: the rows of a coefficient matrix (d + 1, K)."""
    return ["intercept"] + [f"slope {n}" for n in feature_names(d, x_names)]


def params_table(params: MoEParams, x_names=None, *, order=None, name="expert", gates=True) -> pd.DataFrame:
    """Experts' coefficients and variances (and, with ``gates``, the gate coefficients) per expert.

    ``order``: the experts' column order and numbering (e.g. matched to the truth's colours).
    """
    K = params.n_experts
    order = list(range(K)) if order is None else list(order)
    rows = coef_labels(params.n_features, x_names)
    cols = {f"{name} {i + 1}": list(params.experts[:, k]) + [params.variances[k]]
            + (list(params.gates[:, k]) if gates else []) for i, k in enumerate(order)}
    index = [f"expert {r}" for r in rows] + ["variance"] + ([f"gate {r}" for r in rows] if gates else [])
    return pd.DataFrame(cols, index=index)


def block_errors(table: pd.DataFrame):
    """Parameter MSE per block (gates, experts, variances) against the truth and against the global
    EM, one row per method, from a comparison table (moecore.experiments.Comparison.table); None
    when the table has neither."""
    blocks = [("mse", "vs truth"), ("gap", "vs global EM")]
    err = {f"{what}: {b}": table[f"{pre}_{b}"] for pre, what in blocks for b in ("gates", "experts", "variances")
           if f"{pre}_{b}" in table}
    return pd.DataFrame(err).astype(float) if err else None

