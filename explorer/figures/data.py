"""Figures of the Data page: the data with the true experts, and a 2-D projection.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from moecore.model import MoEParams, expert_means, gate_proba, predict_mean

from .common import TRUTH_STYLE, _grid, _layout, _subsample, expert_color, user_names, user_text


def data_figure(X, y, labels=None, truth: MoEParams | None = None, *, feature=0, x_names=None,
                y_name="y", max_points=2500):
    """y against one input, coloured by the true expert, with the true expert lines."""
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names, y_name = user_names(d, x_names), user_text(y_name)
    idx = _subsample(len(y), max_points)
    fig = go.Figure()
    xs, ys = X[idx, feature], np.asarray(y)[idx]
    if labels is None:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="data",
                                   marker=dict(size=4, color="#1f77b4", opacity=0.5),
                                   hovertemplate=f"{x_names[feature]}=%{{x:.3f}}<br>{y_name}=%{{y:.3f}}<extra></extra>"))
    else:
        lab = np.asarray(labels)[idx]
        for k in np.unique(lab):
            sel = lab == k
            fig.add_trace(go.Scatter(
                x=xs[sel], y=ys[sel], mode="markers", name=f"true expert {k + 1}",
                marker=dict(size=4, color=expert_color(k), opacity=0.45),
                hovertemplate=f"expert {k + 1}<br>{x_names[feature]}=%{{x:.3f}}<br>{y_name}=%{{y:.3f}}<extra></extra>"))
    if truth is not None and truth.n_features == d:
        t, Xg = _grid(X, feature)
        means = expert_means(Xg, truth)
        pi = gate_proba(Xg, truth)
        for k in range(truth.n_experts):
            # Solid where the expert dominates, faint elsewhere: where each line matters.
            fig.add_trace(go.Scatter(x=t, y=means[:, k], mode="lines", name=f"true expert {k + 1} line",
                                     line=dict(color=expert_color(k), width=1, dash="dash"), showlegend=False,
                                     hoverinfo="skip"))
            strong = np.where(pi[:, k] >= 0.5, means[:, k], np.nan)
            # A white halo under the line keeps it visible on top of points of its own colour.
            fig.add_trace(go.Scatter(x=t, y=strong, mode="lines", line=dict(color="white", width=7),
                                     showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=t, y=strong, mode="lines", name=f"true expert {k + 1} (where its gate > 0.5)",
                                     line=dict(color=expert_color(k), width=3.5),
                                     hovertemplate=f"true expert {k + 1}<br>mean=%{{y:.3f}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=t, y=predict_mean(Xg, truth), mode="lines", name="true E[y | x]",
                                 line=TRUTH_STYLE))
    sub = f" (other inputs at their mean; {len(idx):,} of {len(y):,} points shown)" if d > 1 else (
        f" ({len(idx):,} of {len(y):,} points shown)" if len(idx) < len(y) else "")
    return _layout(fig, f"{y_name} against {x_names[feature]}{sub}", x_names[feature], y_name,
                   legend_title="colour = true expert" if labels is not None else None)


def projection_figure(X, labels=None, y=None, *, max_points=4000):
    """The inputs projected on their first two principal components, coloured by true expert or y."""
    X = np.asarray(X, dtype=float)
    Z = X - X.mean(axis=0)
    Z = Z / np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
    _, s, vt = np.linalg.svd(Z[: min(len(Z), 20000)], full_matrices=False)
    P = Z @ vt[:2].T if vt.shape[0] >= 2 else np.column_stack([Z @ vt[0], np.zeros(len(Z))])
    share = s**2 / (s**2).sum()
    idx = _subsample(len(X), max_points)
    fig = go.Figure()
    if labels is not None:
        lab = np.asarray(labels)[idx]
        for k in np.unique(lab):
            sel = lab == k
            fig.add_trace(go.Scatter(x=P[idx][sel, 0], y=P[idx][sel, 1], mode="markers",
                                       name=f"true expert {k + 1}",
                                       marker=dict(size=4, color=expert_color(k), opacity=0.5)))
    else:
        fig.add_trace(go.Scatter(x=P[idx, 0], y=P[idx, 1], mode="markers", name="data",
                                   marker=dict(size=4, color=np.asarray(y)[idx] if y is not None else None,
                                               colorscale="Viridis", showscale=y is not None,
                                               colorbar=dict(title="y"), opacity=0.6)))
    pc2 = share[1] if len(share) > 1 else 0.0
    return _layout(fig, "Inputs projected on their first two principal components",
                   f"PC 1 ({share[0]:.0%} of the variance)", f"PC 2 ({pc2:.0%})",
                   legend_title="colour = true expert" if labels is not None else None)
