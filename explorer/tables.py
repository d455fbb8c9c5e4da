"""Tables the pages show (pandas DataFrames), built as plain functions like the figures, and the
readable names of their columns."""

from __future__ import annotations

import numpy as np
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
    names = {"gates": "gates", "gate_proba": "gate probabilities", "experts": "experts", "variances": "variances"}
    err = {f"{what}: {name}": table[f"{pre}_{b}"] for pre, what in blocks for b, name in names.items()
           if f"{pre}_{b}" in table}
    return pd.DataFrame(err).astype(float) if err else None


def screening_actions(dm):
    """{machine: what the screening did} ("refit", "dropped", "kept"), empty when nothing was flagged."""
    rep = getattr(dm, "screening_", None)
    return dict(rep.actions) if rep is not None else {}


def plan_table(dm, *, colors=None):
    """The full transport plan as a table, one row per local expert (machine, expert): the
    screening's action, its mass and the mass (% of the mixture) it sends to each reduced expert
    (columns in colour order), and the reduced expert it mostly goes to."""
    plan = dm.transport_plan_
    K = plan.coupling.shape[1]
    colors = np.arange(K) if colors is None else np.asarray(colors)
    order = np.argsort(colors, kind="stable")
    flagged = screening_actions(dm)
    machine = np.asarray(dm.machines_)[plan.machine]
    z = 100 * plan.coupling
    table = pd.DataFrame({"machine": machine + 1, "local expert": np.asarray(plan.expert) + 1,
                          "screening": [flagged.get(int(m), "") for m in machine],
                          "mass (% of the mixture)": z.sum(axis=1)})
    for k in order:
        table[f"to reduced {colors[k] + 1} (%)"] = z[:, k]
    table["mostly to"] = [f"reduced {colors[k] + 1}" for k in plan.dominant()]
    return table


# Readable names, with units, of every column of a sweep (moecore.experiments) and of the swept
# parameters: tables, axes and selectboxes show these, never the raw column names.
LABELS = {
    # swept parameters
    "n_machines": "number of machines M", "support_fraction": "support size S / paper's floor(n / 4M) (ratio)",
    "n": "sample size n (points)", "refine_rounds": "refinement rounds", "n_experts": "number of experts K",
    "alpha": "mixing alpha (0 = separated, 1 = random)",
    # metrics
    "bic": "BIC on the training rows (lower is better)",
    "rpe": "relative prediction error RPE (%)", "time": "learning time (s)", "wall": "wall clock (s)",
    "local_max": "slowest local fit (s)", "reduction_time": "reduction time (s)",
    "mse_all": "parameter MSE vs truth, all blocks", "mse_experts": "expert MSE vs truth",
    "mse_gates": "gate MSE vs truth", "mse_variances": "variance MSE vs truth",
    "gap_all": "parameter MSE vs global EM, all blocks", "gap_experts": "expert MSE vs global EM",
    "gap_gates": "gate MSE vs global EM", "gap_variances": "variance MSE vs global EM",
    "ari": "adjusted Rand index (-1 to 1)", "rand": "Rand index (0 to 1)",
    "clustering_error": "clustering error (% of points)", "loglik": "held-out log-likelihood per sample (nats)",
    "transport_divergence": "transport divergence to the truth (nats)",
    "correlation": "correlation of y and its prediction",
    # settings of a run
    "parameter": "varied", "value": "value", "repeat": "repeat", "method": "method", "design": "design",
    "M": "machines M", "K": "experts K", "seed": "seed", "support": "supporting sample S (points)",
    "restarts": "EM restarts per machine", "backend": "backend", "n_jobs": "parallel jobs",
    "variance_update": "reduced variances", "n_test": "held-out points", "split": "split",
    "global_reused": "global EM reused (fitted once per repeat)",
}
# The metrics of a sweep the Experiments page plots, in the order it offers them.
SWEEP_METRICS = ("rpe", "time", "bic", "mse_gates", "mse_experts", "mse_variances", "mse_all", "ari",
                 "clustering_error", "transport_divergence", "loglik", "wall")
# Axis titles: at most AXIS_CHARS characters. An axis title runs along the plot, and the long names
# above ran past a 230 px plot into the chart's title with the projector's larger text; the long name
# stays in the chart's title.
AXIS_CHARS = 28
AXIS_LABELS = {
    "n_machines": "machines M", "support_fraction": "S / floor(n / 4M)", "n": "sample size n",
    "n_experts": "experts K", "alpha": "mixing alpha", "bic": "BIC (lower is better)", "rpe": "RPE (%)",
    "mse_all": "MSE vs truth, all blocks", "gap_all": "MSE vs global EM, all", "gap_experts": "expert MSE vs global",
    "gap_variances": "variance MSE vs global", "ari": "adjusted Rand index", "clustering_error": "clustering error (%)",
    "loglik": "log-lik. per sample (nats)", "transport_divergence": "divergence to truth (nats)",
    "correlation": "corr(y, prediction)",
}
# Shown in % (the paper reports the RPE in %); the CSV keeps the raw ratios.
SCALE = {"rpe": 100.0, "clustering_error": 100.0}


def label(name: str) -> str:
    """The readable name (with unit) of a sweep column or parameter; the raw name if unknown."""
    return LABELS.get(name, name.replace("_", " "))


def axis_label(name: str) -> str:
    """The name of a sweep column or parameter on a chart's axis: short (:data:`AXIS_LABELS`)."""
    return AXIS_LABELS.get(name, label(name))


def readable_table(df, columns=None):
    """A copy of a sweep table for display: the chosen columns, scaled (RPE in %), renamed by
    :data:`LABELS`; index names renamed too."""
    out = df[list(columns)] if columns is not None else df.copy()
    out = out.copy()
    for c in out.columns:
        if c in SCALE:
            out[c] = out[c] * SCALE[c]
    out.index = out.index.set_names([label(n) if n else n for n in out.index.names])
    return out.rename(columns=label)
