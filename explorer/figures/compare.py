"""Figures of the Compare page: every method's predictions, and parameter errors by block.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moecore.model import MoEParams, expert_means, gate_proba, predict_mean

from .common import (
    PALETTE,
    TRUTH_STYLE,
    _grid,
    _layout,
    _subsample,
    expert_color,
    method_color,
    reduced_colors,
    user_names,
)

PANELS_PER_ROW = 3
ROW_PX = 300
ROW_GAP_PX = 105  # between rows: the x ticks and title above, the panel's title below


def compare_figure(params: dict, X, y, *, truth: MoEParams | None = None, feature=0, x_names=None,
                   max_points=500):
    """Fitted curves side by side, one panel per method.

    d = 1: data, the fitted E[y | x] and each fitted expert where its gate is > 0.5;
    d > 1: predicted E[y | x] against observed y (points on the diagonal are perfect).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    d = X.shape[1]
    x_names = user_names(d, x_names)
    names = list(params)
    # At most three panels a row: five in one row left 86 px a panel in a 900 px window (the chart is as
    # wide as the page's column, which Plotly cannot know), with the titles written over each other.
    n_cols = min(len(names), PANELS_PER_ROW)
    n_rows = -(-len(names) // n_cols)
    # No axes in the cells after the last panel (specs None), so that every axis holds a method.
    specs = [[{} if r * n_cols + c < len(names) else None for c in range(n_cols)] for r in range(n_rows)]
    plot_px = ROW_PX * n_rows - 20
    fig = make_subplots(rows=n_rows, cols=n_cols, specs=specs, subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.03, vertical_spacing=ROW_GAP_PX / plot_px if n_rows > 1 else 0.0)
    idx = _subsample(len(y), max_points)
    for i, name in enumerate(names):
        prm = params[name]
        first = i == 0
        row, col = i // n_cols + 1, i % n_cols + 1
        if d == 1:
            t, Xg = _grid(X, 0)
            fig.add_trace(go.Scatter(x=X[idx, 0], y=y[idx], mode="markers", name="held-out data",
                                       legendgroup="data", showlegend=first,
                                       marker=dict(size=3, color="rgba(120,120,120,0.25)"), hoverinfo="skip"),
                          row=row, col=col)
            means, pi = expert_means(Xg, prm), gate_proba(Xg, prm)
            hue = reduced_colors(prm, truth, X)
            for k in np.argsort(hue):  # legend in colour order
                fig.add_trace(go.Scatter(x=t, y=np.where(pi[:, k] >= 0.5, means[:, k], np.nan), mode="lines",
                                         name=f"expert {hue[k] + 1} (gate > 0.5)", legendgroup=f"e{hue[k]}",
                                         showlegend=first, line=dict(color=expert_color(hue[k]), width=4.5),
                                         hovertemplate=f"{name}, expert {hue[k] + 1}<br>mean=%{{y:.3f}}"
                                                       "<extra></extra>"),
                              row=row, col=col)
            fig.add_trace(go.Scatter(x=t, y=predict_mean(Xg, prm), mode="lines", name="fitted E[y | x]",
                                     legendgroup="mean", showlegend=first,
                                     line=dict(color="black", width=1.5, dash="dot"),
                                     hovertemplate=f"{name}<br>E[y|x]=%{{y:.3f}}<extra></extra>"),
                          row=row, col=col)
            fig.update_xaxes(title_text=x_names[0], row=row, col=col)
        else:
            yhat = predict_mean(X[idx], prm)
            fig.add_trace(go.Scatter(x=y[idx], y=yhat, mode="markers", name="held-out point",
                                       legendgroup="pts", showlegend=first,
                                       marker=dict(size=3, color=PALETTE[0], opacity=0.4),
                                       hovertemplate=f"{name}<br>y=%{{x:.3f}}<br>predicted=%{{y:.3f}}<extra></extra>"),
                          row=row, col=col)
            lo, hi = float(np.min(y[idx])), float(np.max(y[idx]))
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction",
                                     legendgroup="diag", showlegend=first, line=TRUTH_STYLE, hoverinfo="skip"),
                          row=row, col=col)
            fig.update_xaxes(title_text="observed y", row=row, col=col)
    # One y scale for every panel, across rows too (shared_yaxes shares within a row).
    fig.update_yaxes(matches="y")
    for row in range(1, n_rows + 1):
        fig.update_yaxes(title_text="y" if d == 1 else "predicted E[y | x]", row=row, col=1)
    title = "Fitted experts and conditional mean on held-out data" if d == 1 else \
        "Predicted against observed y on held-out data"
    _layout(fig, title, height=130 + ROW_PX * n_rows)
    fig.update_layout(legend=dict(orientation="h", y=-80 / plot_px, yanchor="top"))
    return fig


BLOCKS = ("gates", "experts", "variances")


def param_error_figure(table, *, n_machines=None, support_size=None):
    """Parameter error block by block (gates, experts, variances) for each method: MSE against the
    truth (left) and against the global EM (right), on a log scale.

    table : DataFrame indexed by method with columns ``mse_<block>`` and/or ``gap_<block>``
        (:meth:`moecore.experiments.Comparison.table`).
    The subtitle says why the gates differ: the reduced gate is fitted on the small supporting
    sample, so its error grows with M, while the reduced experts match the global EM's.
    """
    panels = [(pre, what) for pre, what in (("mse", "against the truth"), ("gap", "against the global EM"))
              if any(f"{pre}_{b}" in table for b in BLOCKS)]
    fig = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=[w for _, w in panels] or [""],
                        shared_yaxes=True, horizontal_spacing=0.06)
    for c, (pre, _) in enumerate(panels, start=1):
        for i, method in enumerate(table.index):
            vals = [float(table.loc[method, f"{pre}_{b}"]) if f"{pre}_{b}" in table else np.nan for b in BLOCKS]
            if not np.isfinite(vals).any():
                continue  # the global EM against itself
            style = dict(color="#555555", pattern=dict(shape="/")) if method == "global" else \
                dict(color=method_color(method, i))
            fig.add_trace(go.Bar(
                x=list(BLOCKS), y=[v if v > 0 else np.nan for v in vals], name=str(method), legendgroup=str(method),
                showlegend=c == 1 or not any(t.name == str(method) for t in fig.data), marker=style,
                hovertemplate=f"{method}<br>%{{x}}: MSE %{{y:.3g}}<extra></extra>"), row=1, col=c)
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="MSE after aligning the experts (log scale)", row=1, col=1)
    fig.update_layout(barmode="group")
    where = " (S = floor(n / 4M) points"
    if support_size is not None and n_machines is not None:
        where += f"; here S = {support_size:,}, M = {n_machines}"
    why = ("The reduced gate is refitted on the small supporting sample" + where + "), so at a fixed n its error "
           "grows with M;<br>the reduced experts match the global EM's.")
    # A full-width figure: longer subtitle lines, and room for the panel titles under them.
    return _layout(fig, f"Parameter error by block<br><sup>{why}</sup>", height=460, legend_title="method", wrap=150,
                   top_extra=40)
