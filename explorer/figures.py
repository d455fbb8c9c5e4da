"""Plotly figures of the app: plain functions of arrays and fitted moecore objects.

Points are SVG ``Scatter`` (at most a few thousand, subsampled), not ``Scattergl``: WebGL traces
are drawn on a canvas above every SVG trace, which would hide the expert lines under the points.

No Streamlit here, so every figure can be built and checked in a unit test.  Conventions:

* expert k always has colour ``expert_color(k)``; the local experts the transport plan sends to a
  reduced expert share its colour (``reduced_colors`` aligns the reduced experts to the truth, so
  colours also agree with the data page's "true expert" colours);
* the truth is drawn black and dashed, the global EM grey and dotted;
* every figure has a title, axis titles, a legend and hover text.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer import explain
from explorer.tables import coef_labels
from moecore.alignment import match_experts
from moecore.model import MoEParams, expert_means, feature_names, gate_proba, predict_mean

__all__ = [
    "LABELS",
    "PALETTE",
    "coef_names",
    "coefficient_figure",
    "compare_figure",
    "coupling_figure",
    "data_figure",
    "expert_color",
    "experts_figure",
    "gate_colors",
    "gates_figure",
    "label",
    "large_mixture_figure",
    "loglik_figure",
    "mm_figure",
    "mm_step_figure",
    "param_error_figure",
    "plan_figure",
    "plan_machines_figure",
    "plan_table",
    "projection_figure",
    "readable_table",
    "reduced_colors",
    "sweep_figure",
    "timing_figure",
]

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
TRUTH_STYLE = dict(color="black", dash="dash", width=2.5)
GLOBAL_STYLE = dict(color="#555555", dash="dot", width=2.5)
TEMPLATE = "plotly_white"


def expert_color(k: int) -> str:
    return PALETTE[int(k) % len(PALETTE)]


def _rgba(hex_color, alpha):
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig, title, xtitle=None, ytitle=None, height=420, legend_title=None):
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left"),
        template=TEMPLATE,
        height=height,
        margin=dict(l=60, r=20, t=80, b=50),
        legend=dict(title=legend_title, bgcolor="rgba(255,255,255,0.8)"),
        hoverlabel=dict(namelength=-1),
    )
    if xtitle is not None:
        fig.update_xaxes(title_text=xtitle)
    if ytitle is not None:
        fig.update_yaxes(title_text=ytitle)
    return fig


coef_names = coef_labels  # ["intercept", "slope x1", ...], one rule for tables and figures


def _subsample(n, max_points, seed=0):
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _grid(X, feature, n_points=200):
    """Inputs along one coordinate, the others held at their mean: (grid values, X_grid)."""
    X = np.asarray(X, dtype=float)
    lo, hi = np.quantile(X[:, feature], [0.001, 0.999])
    t = np.linspace(lo, hi, n_points)
    Xg = np.tile(X.mean(axis=0), (n_points, 1))
    Xg[:, feature] = t
    return t, Xg


def reduced_colors(reduced: MoEParams, truth: MoEParams | None = None, X=None) -> np.ndarray:
    """(K,) colour index of each reduced expert: the true expert it matches, else its own index."""
    K = reduced.n_experts
    if truth is None or truth.n_experts != K or truth.n_features != reduced.n_features:
        return np.arange(K)
    perm = match_experts(truth, reduced, None if X is None else np.asarray(X)[:2000])
    col = np.empty(K, dtype=int)
    col[perm] = np.arange(K)  # reduced expert perm[k] matches true expert k
    return col


# ------------------------------------------------------------------------------------ data
def data_figure(X, y, labels=None, truth: MoEParams | None = None, *, feature=0, x_names=None,
                y_name="y", max_points=4000):
    """y against one input, coloured by the true expert, with the true expert lines."""
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names = feature_names(d, x_names)
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


def gates_figure(models: dict, X, *, feature=0, x_names=None, colors: dict | None = None):
    """Gate probabilities pi_k(x) along one input for several models.

    models : name -> MoEParams; the first is drawn solid, "truth" dashed black-edged, others dotted.
    colors : name -> (K,) colour index per expert (default: the expert's own index).
    """
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names = feature_names(d, x_names)
    t, Xg = _grid(X, feature)
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for i, (name, prm) in enumerate(models.items()):
        pi = gate_proba(Xg, prm)
        col = (colors or {}).get(name, np.arange(prm.n_experts))
        dash = "dash" if name == "truth" else dashes[min(i, 3)]
        for k in np.argsort(col, kind="stable"):  # legend in colour order: expert 1, 2, 3 ...
            fig.add_trace(go.Scatter(
                x=t, y=pi[:, k], mode="lines", name=f"{name}: expert {col[k] + 1}",
                legendgroup=name, line=dict(color=expert_color(col[k]), dash=dash, width=3 if i == 0 else 2),
                hovertemplate=(f"{name}, expert {col[k] + 1}<br>{x_names[feature]}=%{{x:.3f}}<br>"
                               "gate=%{y:.3f}<extra></extra>")))
    sub = " (other inputs at their mean)" if d > 1 else ""
    fig.update_yaxes(range=[-0.02, 1.02])
    return _layout(fig, f"Gates along {x_names[feature]}<br><sup>probability pi_k(x) of each expert{sub}</sup>",
                   x_names[feature], "gate probability pi_k(x)", legend_title="model: expert")


# ------------------------------------------------------------------------------------- fit
def _local_table(dm):
    """Per local component l: machine, local expert, experts (p,), variance, mass, dominant reduced."""
    plan = dm.transport_plan_
    experts = np.hstack([m.params_.experts for m in dm.local_models_])
    variances = np.concatenate([m.params_.variances for m in dm.local_models_])
    mass = plan.coupling.sum(axis=1)
    machine = dm.machines_[plan.machine]
    return machine, plan.expert, experts, variances, mass, plan.dominant()


def experts_figure(dm, X, y=None, truth: MoEParams | None = None, *, feature=0, x_names=None,
                   colors=None, show_data=True, show_local=True, max_points=3000):
    """Local expert lines (thin, coloured by the reduced expert the plan sends them to), the
    reduced experts (thick) and the true experts (black dashed), along one input."""
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names = feature_names(d, x_names)
    red = dm.params_
    colors = np.arange(red.n_experts) if colors is None else np.asarray(colors)
    t, Xg = _grid(X, feature)
    Xt = np.column_stack([np.ones(len(t)), Xg])
    fig = go.Figure()
    if show_data and y is not None:
        idx = _subsample(len(y), max_points)
        fig.add_trace(go.Scatter(x=X[idx, feature], y=np.asarray(y)[idx], mode="markers", name="data",
                                   marker=dict(size=3, color="rgba(120,120,120,0.25)"), hoverinfo="skip"))
    if show_local:
        machine, lexp, experts, _, mass, dom = _local_table(dm)
        # An expert's mean is linear in x: its two ends draw it exactly, and the figure sent to the
        # browser holds 2 points per local expert instead of the grid's 200 (493 kB -> 125 kB of
        # JSON at M = 8; it was mostly per-point hover text).
        ends = [0, len(t) - 1]
        t2 = t[ends]
        lines = Xt[ends] @ experts
        n_t = len(t2)
        # One trace per reduced expert, lines separated by NaN: 3 traces instead of M K keep the
        # figure fast to build and to draw; the hover text still names each local expert.
        for c in np.unique(colors[dom]):
            ls = np.flatnonzero(colors[dom] == c)
            xs = np.concatenate([np.append(t2, np.nan) for _ in ls])
            ys = np.concatenate([np.append(lines[:, l], np.nan) for l in ls])
            txt = np.concatenate([[f"machine {machine[l] + 1}, local expert {lexp[l] + 1}<br>mass {mass[l]:.3f}"]
                                  * (n_t + 1) for l in ls])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", name=f"local experts sent to reduced {c + 1}", text=txt,
                line=dict(color=_rgba(expert_color(c), 0.45), width=1.2), connectgaps=False,
                hovertemplate=f"%{{text}}<br>sent to reduced expert {c + 1}<extra></extra>"))
    means = Xt @ red.experts
    for k in np.argsort(colors, kind="stable"):  # legend in colour order
        fig.add_trace(go.Scatter(x=t, y=means[:, k], mode="lines", name=f"reduced expert {colors[k] + 1}",
                                 line=dict(color=expert_color(colors[k]), width=4),
                                 hovertemplate=f"reduced expert {colors[k] + 1}<br>mean=%{{y:.3f}}<extra></extra>"))
    if truth is not None and truth.n_features == d:
        tm = Xt @ truth.experts
        for k in range(truth.n_experts):
            fig.add_trace(go.Scatter(x=t, y=tm[:, k], mode="lines", name="true experts", legendgroup="truth",
                                     showlegend=k == 0, line=TRUTH_STYLE,
                                     hovertemplate=f"true expert {k + 1}<br>mean=%{{y:.3f}}<extra></extra>"))
    M = len(dm.local_models_)
    sub = " (other inputs at their mean)" if d > 1 else ""
    return _layout(fig, f"{M} x {red.n_experts} local experts, {red.n_experts} reduced experts, truth<br><sup>"
                        f"local experts coloured by the reduced expert the plan sends them to{sub}</sup>",
                   x_names[feature], "expert mean beta_k . (1, x)", height=480)


def coefficient_figure(dm, truth: MoEParams | None = None, *, a=0, b=1, x_names=None, colors=None):
    """Expert coefficients in parameter space: the M K local experts (size = transported mass,
    colour = reduced expert they go to), the reduced experts (crosses) and the truth (diamonds)."""
    red = dm.params_
    d = red.n_features
    names = coef_names(d, x_names)
    colors = np.arange(red.n_experts) if colors is None else np.asarray(colors)
    machine, lexp, experts, variances, mass, dom = _local_table(dm)
    fig = go.Figure()
    size = 6 + 30 * np.sqrt(mass / max(mass.max(), 1e-300))
    for k in np.argsort(colors):  # legend in colour order
        sel = dom == k
        if sel.any():
            fig.add_trace(go.Scatter(
                x=experts[a, sel], y=experts[b, sel], mode="markers", name=f"local, sent to reduced {colors[k] + 1}",
                marker=dict(size=size[sel], color=_rgba(expert_color(colors[k]), 0.55),
                            line=dict(color=expert_color(colors[k]), width=1)),
                customdata=np.column_stack([machine[sel] + 1, lexp[sel] + 1, mass[sel], variances[sel]]),
                hovertemplate=("machine %{customdata[0]:.0f}, local expert %{customdata[1]:.0f}<br>"
                               f"{names[a]}=%{{x:.3f}}<br>{names[b]}=%{{y:.3f}}<br>"
                               "mass %{customdata[2]:.3f}, variance %{customdata[3]:.3f}<extra></extra>")))
    fig.add_trace(go.Scatter(
        x=red.experts[a], y=red.experts[b], mode="markers", name="reduced experts",
        marker=dict(symbol="x", size=16, color=[expert_color(c) for c in colors], line=dict(color="black", width=1.5)),
        text=[f"reduced expert {c + 1}" for c in colors],
        hovertemplate=f"%{{text}}<br>{names[a]}=%{{x:.3f}}<br>{names[b]}=%{{y:.3f}}<extra></extra>"))
    if truth is not None and truth.n_features == d:
        fig.add_trace(go.Scatter(
            x=truth.experts[a], y=truth.experts[b], mode="markers", name="true experts",
            marker=dict(symbol="diamond-open", size=18, color="black", line=dict(width=2.5)),
            text=[f"true expert {k + 1}" for k in range(truth.n_experts)],
            hovertemplate=f"%{{text}}<br>{names[a]}=%{{x:.3f}}<br>{names[b]}=%{{y:.3f}}<extra></extra>"))
    return _layout(fig, f"Expert coefficients ({names[b]} vs {names[a]})<br><sup>marker size = transported mass</sup>",
                   names[a], names[b], height=460)


# Above this many machines the per-machine views (one bar, one plan row block, one EM curve per
# machine) become summaries: a 256-machine bar chart is ~6 400 px tall and its legend scrolls.
MANY_MACHINES = 16
# Machines drawn one by one on the EM-curve summary (flagged first, then the farthest from the median).
MAX_OUTLIERS = 8


def _column_scale(color):
    """White to ``color``: the cells of a reduced expert's column carry that expert's colour."""
    return [[0.0, "#ffffff"], [1.0, color]]


def _integer_axis(fig, n_values, *, axis="x", start=0, **where):
    """Whole-number ticks (iterations, rounds): no 0.5 ticks on a short run."""
    step = n_values / 10
    dtick = next(d for d in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if d >= step)
    upd = fig.update_xaxes if axis == "x" else fig.update_yaxes
    upd(tick0=start if dtick == 1 else 0, dtick=dtick, tickformat="d", **where)  # 0, 10, 20 rather than 1, 11, 21
    return fig


def plan_figure(dm, *, colors=None):
    """The transport plan as a heatmap: rows = local experts (machine, expert), columns = reduced
    experts, cell = mean gate mass sent (in % of the whole mixture).  For more than
    ``MANY_MACHINES`` machines use :func:`plan_machines_figure` (and :func:`plan_table`)."""
    plan = dm.transport_plan_
    return coupling_figure(plan.coupling, dm.machines_[plan.machine], plan.expert, colors=colors,
                           flagged=_screening_actions(dm))


def _screening_actions(dm):
    """{machine: what the screening did} ("refit", "dropped", "kept"), empty when nothing was flagged."""
    rep = getattr(dm, "screening_", None)
    return dict(rep.actions) if rep is not None else {}


def coupling_figure(coupling, machine, expert, *, colors=None, flagged=None,
                    title="Transport plan<br><sup>gate mass (%) each local expert sends to each reduced expert; "
                          "darker = more</sup>"):
    """Heatmap of a coupling (L, K) in % of the total mass; rows labelled machine · expert.

    One heatmap trace per reduced expert (column), shaded from white to that expert's colour on a
    common scale, so the columns carry the colours of the reduced experts in every other plot.
    ``flagged``: {machine: action} of the screening; those rows are marked with the action.
    """
    flagged = flagged or {}
    coupling = np.asarray(coupling, dtype=float)
    K = coupling.shape[1]
    colors = np.arange(K) if colors is None else np.asarray(colors)
    order = np.argsort(colors, kind="stable")  # columns in colour order: reduced 1, 2, ... as everywhere else
    z = 100 * coupling[:, order]
    rows = [f"m{m + 1} · e{j + 1}" + (f" ({flagged[m]})" if m in flagged else "")
            for m, j in zip(machine, expert, strict=True)]
    L = z.shape[0]
    zmax = max(float(z.max()), 1e-12)
    fig = go.Figure()
    xs = [f"reduced {colors[k] + 1}" for k in order]
    text_all = np.where(z >= 0.05, np.vectorize(lambda v: f"{v:.1f}")(z), "")
    for c, k in enumerate(order):
        # Every trace spans all the columns (NaN, i.e. transparent, outside its own): a one-column
        # heatmap on a categorical axis draws its cell labels half a cell to the left.
        col = np.full_like(z, np.nan)
        col[:, c] = z[:, c]
        text = np.full(z.shape, "", dtype=object)
        text[:, c] = text_all[:, c]
        fig.add_trace(go.Heatmap(
            z=col, x=xs, y=rows, zmin=0, zmax=zmax, showscale=False,
            colorscale=_column_scale(expert_color(colors[k])), name=f"reduced {colors[k] + 1}",
            text=text if L <= 32 else None, texttemplate="%{text}" if L <= 32 else None,
            hovertemplate="%{y} → %{x}<br>mass %{z:.2f} %<extra></extra>", xgap=2, ygap=1))
    fig.update_yaxes(autorange="reversed", title_text="local expert (machine · expert)",
                     tickfont=dict(size=10 if L <= 48 else 8))
    fig.update_xaxes(side="top", title_text="", tickfont=dict(size=13))
    # Beyond ~30 rows the cells shrink rather than the page growing without end.
    fig = _layout(fig, title, height=int(np.clip(22 * L + 120, 320, 820)))
    fig.update_layout(margin=dict(t=90))
    return fig


def _plan_by_machine(dm, colors):
    """(machines (M',), share (M', K) of each machine's mass sent to each reduced expert in
    colour order, mass (M',) of each machine in % of the mixture, order of the columns)."""
    plan = dm.transport_plan_
    K = plan.coupling.shape[1]
    colors = np.arange(K) if colors is None else np.asarray(colors)
    order = np.argsort(colors, kind="stable")
    pos = np.asarray(plan.machine)
    n_pos = int(pos.max()) + 1
    sent = np.zeros((n_pos, K))
    np.add.at(sent, pos, plan.coupling)
    sent = sent[:, order]
    mass = sent.sum(axis=1)
    share = 100 * sent / np.where(mass > 0, mass, 1.0)[:, None]
    return np.asarray(dm.machines_)[:n_pos], share, 100 * mass / max(mass.sum(), 1e-300), colors, order


def plan_machines_figure(dm, *, colors=None):
    """The transport plan summed per machine: one stacked bar per machine, the share (%) of its
    gate mass that goes to each reduced expert, in that expert's colour.  K traces whatever M, so
    it stays readable at M = 256; machines the screening flagged are marked above their bar and
    dropped machines are named in the subtitle.  The full (M K, K) plan: :func:`plan_table`."""
    machines, share, mass, colors, order = _plan_by_machine(dm, colors)
    flagged = _screening_actions(dm)
    fig = go.Figure()
    for c, k in enumerate(order):
        fig.add_trace(go.Bar(
            x=machines + 1, y=share[:, c], name=f"reduced expert {colors[k] + 1}",
            marker=dict(color=expert_color(colors[k]), line=dict(width=0)),
            customdata=mass,
            hovertemplate=(f"machine %{{x}} → reduced expert {colors[k] + 1}: %{{y:.1f}} % of its mass<br>"
                           "machine's mass: %{customdata:.2f} % of the mixture<extra></extra>")))
    kept = {int(m) for m in machines}
    marked = sorted(m for m, a in flagged.items() if m in kept)
    if marked:
        fig.add_trace(go.Scatter(
            x=[m + 1 for m in marked], y=[103] * len(marked), mode="markers", name="flagged by screening",
            marker=dict(symbol="triangle-down", size=9, color="#d62728"),
            text=[flagged[m] for m in marked], hovertemplate="machine %{x}: flagged, %{text}<extra></extra>"))
    dropped = sorted(m + 1 for m, a in flagged.items() if a == "dropped")
    sub = f"share of each machine's gate mass sent to each reduced expert; {len(machines)} machines"
    if dropped:
        shown = ", ".join(map(str, dropped[:12])) + (" ..." if len(dropped) > 12 else "")
        sub += f"; {len(dropped)} dropped by screening (machines {shown})"
    fig.update_layout(barmode="stack", bargap=0.0 if len(machines) > 64 else 0.15)
    fig.update_yaxes(range=[0, 106])
    _layout(fig, f"Transport plan per machine<br><sup>{sub}</sup>", "machine", "share of the machine's mass (%)",
            height=400, legend_title="sent to")
    # Stacked bars list their legend bottom-up by default: keep reduced expert 1, 2, 3 ...
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0, traceorder="normal"))
    return fig


def plan_table(dm, *, colors=None):
    """The full transport plan as a table, one row per local expert (machine, expert): the
    screening's action, its mass and the mass (% of the mixture) it sends to each reduced expert
    (columns in colour order), and the reduced expert it mostly goes to."""
    import pandas as pd

    plan = dm.transport_plan_
    K = plan.coupling.shape[1]
    colors = np.arange(K) if colors is None else np.asarray(colors)
    order = np.argsort(colors, kind="stable")
    flagged = _screening_actions(dm)
    machine = np.asarray(dm.machines_)[plan.machine]
    z = 100 * plan.coupling
    table = pd.DataFrame({"machine": machine + 1, "local expert": np.asarray(plan.expert) + 1,
                          "screening": [flagged.get(int(m), "") for m in machine],
                          "mass (% of the mixture)": z.sum(axis=1)})
    for k in order:
        table[f"to reduced {colors[k] + 1} (%)"] = z[:, k]
    table["mostly to"] = [f"reduced {colors[k] + 1}" for k in plan.dominant()]
    return table


def _shard_sizes(dm):
    """Rows of each fitted machine, in the order of ``dm.local_models_``."""
    if getattr(dm, "shards_", None) is not None:
        return [len(dm.shards_[m]) for m in dm.machines_]
    return [dm._n_samples_all[m] for m in dm.machines_]


def loglik_figure(dm, global_model=None, *, max_lines=MANY_MACHINES):
    """EM log-likelihood per sample against iteration, with the global EM for reference.

    Up to ``max_lines`` machines: one line per machine.  Beyond: the median machine and the
    10-90 % band over machines (a machine that has converged keeps its final value), with the
    machines the screening flagged and those whose final value lies far from the others' (robust
    z > 3.5) drawn one by one, at most ``MAX_OUTLIERS`` of them.
    """
    fig = go.Figure()
    flagged = _screening_actions(dm)
    curves = [np.asarray(model.loglik_history_, dtype=float) / n_m
              for model, n_m in zip(dm.local_models_, _shard_sizes(dm), strict=True)]
    machines = [int(m) for m in dm.machines_]
    if len(curves) <= max_lines:
        for m, h in zip(machines, curves, strict=True):
            name = explain.flagged_curve_label(m, flagged[m]) if m in flagged else f"machine {m + 1}"
            line = dict(width=3, dash="dash", color="#d62728") if m in flagged else dict(width=1.5)
            fig.add_trace(go.Scatter(x=np.arange(1, len(h) + 1), y=h, mode="lines+markers",
                                     name=name, marker=dict(size=4), line=line,
                                     hovertemplate=f"{name}<br>iteration %{{x}}<br>"
                                                   "loglik/n=%{y:.4f}<extra></extra>"))
        title = "Local EM: log-likelihood per sample<br><sup>one line per machine; never decreases</sup>"
    else:
        n_it = max(len(h) for h in curves)
        # A converged machine stays at its last value: the band does not jump when machines stop.
        H = np.array([np.pad(h, (0, n_it - len(h)), mode="edge") for h in curves])
        running = np.array([sum(len(h) >= i for h in curves) for i in range(1, n_it + 1)])
        q10, q50, q90 = np.quantile(H, [0.1, 0.5, 0.9], axis=0)
        it = np.arange(1, n_it + 1)
        fig.add_trace(go.Scatter(x=it, y=q10, mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=it, y=q90, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=_rgba(PALETTE[0], 0.25), name="10-90 % of the machines",
                                 customdata=np.column_stack([q10, running]),
                                 hovertemplate="iteration %{x}: 10 % at %{customdata[0]:.4f}, 90 % at %{y:.4f}"
                                               "<br>%{customdata[1]} machines still iterating<extra></extra>"))
        fig.add_trace(go.Scatter(x=it, y=q50, mode="lines", line=dict(color=PALETTE[0], width=3),
                                 name="median machine",
                                 hovertemplate="iteration %{x}<br>median %{y:.4f}<extra></extra>"))
        final = H[:, -1]
        med = np.median(final)
        mad = 1.4826 * np.median(np.abs(final - med))
        z = np.abs(final - med) / max(mad, 1e-12)
        pick = [i for i, m in enumerate(machines) if m in flagged]
        far = [i for i in np.argsort(-z) if z[i] > 3.5 and i not in pick]
        n_far = len(far)
        pick = (pick + far)[:MAX_OUTLIERS]
        for j, i in enumerate(pick):
            m, h = machines[i], curves[i]
            if m in flagged:
                name, line = explain.flagged_curve_label(m, flagged[m]), dict(width=2.5, dash="dash", color="#d62728")
            else:
                name = f"machine {m + 1} (final {final[i]:.3f}, {'below' if final[i] < med else 'above'} the others)"
                line = dict(width=1.5, color=PALETTE[(j + 1) % len(PALETTE)])
            fig.add_trace(go.Scatter(x=np.arange(1, len(h) + 1), y=h, mode="lines", name=name,
                                     line=line, hovertemplate=f"{name}<br>iteration %{{x}}"
                                                              "<br>loglik/n=%{y:.4f}<extra></extra>"))
        left = len([i for i in range(len(machines)) if machines[i] in flagged]) + n_far - len(pick)
        more = f" ({left} more not drawn)" if left > 0 else ""
        title = (f"Local EM of {len(curves)} machines: log-likelihood per sample<br><sup>median, 10-90 % band "
                 f"and outlying machines{more}</sup>")
    if global_model is not None and len(global_model.loglik_history_):
        h = np.asarray(global_model.loglik_history_) / sum(_shard_sizes(dm))
        fig.add_trace(go.Scatter(x=np.arange(1, len(h) + 1), y=h, mode="lines", name="global EM (all data)",
                                 line=GLOBAL_STYLE))
    n_max = max([len(h) for h in curves] + [len(getattr(global_model, "loglik_history_", []))])
    # A few slow fits would squash every other curve against the left edge: the axis ends at the
    # 95th percentile of the iteration counts and names the fits that run past it.
    top, past = explain.iteration_axis([len(h) for h in curves])
    if past:
        n_max = max(top, len(getattr(global_model, "loglik_history_", [])))
        named = ", ".join(f"{machines[i] + 1} ({len(curves[i])})" for i in sorted(past, key=lambda i: -len(curves[i])))
        fig.update_xaxes(range=[0.5, n_max + 0.5])
        named = named if len(named) <= 90 else named[:90].rsplit(",", 1)[0] + ", ..."
        fig.add_annotation(text=f"beyond the axis, machine (iterations): {named}", xref="paper", yref="paper",
                           x=1, y=0.02, showarrow=False, xanchor="right", yanchor="bottom", font=dict(size=11),
                           bgcolor="rgba(255,255,255,0.85)")
    typical = curves[int(np.argsort([len(h) for h in curves])[len(curves) // 2])]
    if explain.rises_early(typical, n_max):  # most machines run long, but rise in their first iterations
        fig.update_xaxes(type="log", range=[0, np.log10(n_max + 0.5)], dtick=1)
        _layout(fig, title, "EM iteration (log scale: the rise is in the first iterations)", "log-likelihood / n_m",
                legend_title="fit")
        fig.update_layout(legend=dict(traceorder="normal"))
        return fig
    _integer_axis(fig, n_max, start=1)
    _layout(fig, title, "EM iteration", "log-likelihood / n_m", legend_title="fit")
    fig.update_layout(legend=dict(traceorder="normal"))  # a filled band would reverse the legend
    return fig


def mm_figure(history, init_objectives=None, n_kmeans=None):
    """MM objective R (expected transportation divergence) against iteration.

    ``init_objectives``: R at the end of every start; ``n_kmeans``: how many of them were k-means
    starts (the MM restarts setting), the others started from the best local models.
    """
    h = np.asarray(history, dtype=float)
    fig = go.Figure(go.Scatter(x=np.arange(len(h)), y=h, mode="lines+markers", name="R (kept run)",
                               line=dict(color=PALETTE[0], width=2.5),
                               hovertemplate="iteration %{x}<br>R=%{y:.6g}<extra></extra>"))
    title = "MM reduction: objective R per iteration"
    if init_objectives is not None and len(init_objectives) > 1:
        n = len(init_objectives)
        how = (f" ({n_kmeans} k-means restarts + {n - n_kmeans} from the best local models)"
               if n_kmeans is not None and 0 <= n_kmeans < n else "")
        title += f"<br><sup>never increases; the best of {n} starts{how} is kept</sup>"
    _integer_axis(fig, len(h))
    return _layout(fig, title, "MM iteration", "expected transportation divergence R", height=360)


def _seconds(v):
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def _step_bars(dm, global_time, flagged, *, per_machine):
    """(labels, seconds, colours) of the timing bars after the local fits."""
    tm = dm.timings_
    labels, vals, cols = [], [], []
    refits = np.asarray(tm.get("refit", []), dtype=float)
    refitted = sorted(m for m, a in flagged.items() if a != "kept")
    if per_machine:
        for m, t in zip(refitted, refits, strict=False):
            labels.append(f"refit of machine {m + 1}")
            vals.append(t)
            cols.append("#d62728")
    elif refits.size:
        i = int(np.argmax(refits))
        labels.append(f"slowest of {refits.size} refits (machine {refitted[i] + 1})" if i < len(refitted)
                      else f"slowest of {refits.size} refits")
        vals.append(float(refits[i]))
        cols.append("#d62728")
    labels += ["screening", "reduction"]
    vals += [tm.get("screening", 0.0), tm["reduction"]]
    cols += [PALETTE[4], PALETTE[1]]
    rounds = np.asarray(tm.get("rounds", []), dtype=float)
    if rounds.size:
        labels.append(f"refinement rounds ({rounds.size})")
        vals.append(float(rounds.sum()))
        cols.append(PALETTE[5])
    labels += ["learning time (paper's figure" + (", with rounds)" if rounds.size else ")"),
               "wall clock (this fit, cores used)"]
    vals += [tm["learning_time"], tm["wall"]]
    cols += [PALETTE[2], "#7f7f7f"]
    if global_time is not None:
        labels.append("global EM on all data")
        vals.append(global_time)
        cols.append("#333333")
    return labels, vals, cols


def timing_figure(dm, global_time=None, *, max_bars=MANY_MACHINES, n_named=5):
    """Seconds of every step of the fit, labelled, with the global EM for scale.

    Up to ``max_bars`` machines: one bar per machine's local fit (flagged machines in red), the
    refits, screening, reduction, rounds and the totals.  Beyond: two panels, the distribution of
    the M local fit times (box and one point per machine, the ``n_named`` slowest named, flagged
    machines red) and the steps and totals with the slowest and the median local fit.
    """
    tm = dm.timings_
    local = np.asarray(tm["local"], dtype=float)
    M = len(local)
    flagged = _screening_actions(dm)
    if M <= max_bars:
        labels = [f"machine {m + 1}" + (f" (flagged, {flagged[m]})" if m in flagged else "") for m in range(M)]
        vals = list(local)
        cols = ["#d62728" if m in flagged else PALETTE[0] for m in range(M)]
        more = _step_bars(dm, global_time, flagged, per_machine=True)
        labels, vals, cols = labels + more[0], vals + more[1], cols + more[2]
        fig = go.Figure(go.Bar(x=vals, y=labels, orientation="h", marker_color=cols,
                               text=[_seconds(v) for v in vals], textposition="outside",
                               hovertemplate="%{y}: %{x:.4f} s<extra></extra>"))
        fig.update_yaxes(autorange="reversed")
        fig.update_xaxes(range=[0, max(vals) * 1.25 + 1e-9])
        return _layout(fig, "Timing breakdown (seconds)", "seconds", None, height=max(300, 24 * len(labels) + 110))
    ok = np.isfinite(local)
    slow = [int(m) for m in np.argsort(-np.where(ok, local, -np.inf))[:n_named] if ok[m]]
    med = float(np.median(local[ok]))
    labels = [f"slowest local fit (machine {slow[0] + 1})", f"median local fit (of {int(ok.sum())})"]
    vals = [float(local[slow[0]]), med]
    cols = [PALETTE[0], _rgba(PALETTE[0], 0.6)]
    more = _step_bars(dm, global_time, flagged, per_machine=False)
    labels, vals, cols = labels + more[0], vals + more[1], cols + more[2]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.3,
                        subplot_titles=[f"local fit of each of the {M} machines", "steps and totals"])
    jitter = np.random.default_rng(0).uniform(-0.35, 0.35, M)
    fig.add_trace(go.Box(y=local[ok], x0=0, name="local fits", boxpoints=False, fillcolor=_rgba(PALETTE[0], 0.15),
                         line=dict(color=PALETTE[0]), showlegend=False, hoverinfo="y"), row=1, col=1)
    kinds = [("machine", [m for m in range(M) if ok[m] and m not in flagged and m not in slow], PALETTE[0], 4),
             ("slowest", [m for m in slow if m not in flagged], PALETTE[1], 8),
             ("flagged by screening", [m for m in range(M) if ok[m] and m in flagged], "#d62728", 7)]
    for name, ms, color, size in kinds:
        if not ms:
            continue
        fig.add_trace(go.Scatter(
            x=jitter[ms], y=local[ms], mode="markers", name=name, showlegend=False,
            marker=dict(size=size, color=color, opacity=0.7 if size == 4 else 1.0),
            customdata=np.array(ms) + 1, hovertemplate="machine %{customdata}: %{y:.4f} s<extra></extra>"),
            row=1, col=1)
    fig.add_trace(go.Bar(x=vals, y=labels, orientation="h", marker_color=cols, showlegend=False,
                         text=[_seconds(v) for v in vals], textposition="outside",
                         hovertemplate="%{y}: %{x:.4f} s<extra></extra>"), row=1, col=2)
    fig.update_xaxes(visible=False, range=[-0.6, 0.6], row=1, col=1)
    fig.update_yaxes(title_text="seconds", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_xaxes(title_text="seconds", range=[0, max(vals) * 1.3 + 1e-9], row=1, col=2)
    named = ", ".join(f"{m + 1} ({_seconds(local[m])})" for m in slow)
    red = " (red: flagged by screening)" if any(ok[m] for m in flagged) else ""
    return _layout(fig, f"Timing breakdown (seconds)<br><sup>slowest machines: {named}{red}</sup>",
                   height=440)


# ------------------------------------------------------------------------------- compare
def compare_figure(params: dict, X, y, *, truth: MoEParams | None = None, feature=0, x_names=None,
                   max_points=800):
    """Fitted curves side by side, one panel per method.

    d = 1: data, the fitted E[y | x] and each fitted expert where its gate is > 0.5;
    d > 1: predicted E[y | x] against observed y (points on the diagonal are perfect).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    d = X.shape[1]
    x_names = feature_names(d, x_names)
    names = list(params)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.02)
    idx = _subsample(len(y), max_points)
    for i, name in enumerate(names, start=1):
        prm = params[name]
        first = i == 1
        if d == 1:
            t, Xg = _grid(X, 0)
            fig.add_trace(go.Scatter(x=X[idx, 0], y=y[idx], mode="markers", name="held-out data",
                                       legendgroup="data", showlegend=first,
                                       marker=dict(size=3, color="rgba(120,120,120,0.25)"), hoverinfo="skip"),
                          row=1, col=i)
            means, pi = expert_means(Xg, prm), gate_proba(Xg, prm)
            col = reduced_colors(prm, truth, X)
            for k in np.argsort(col):  # legend in colour order
                fig.add_trace(go.Scatter(x=t, y=np.where(pi[:, k] >= 0.5, means[:, k], np.nan), mode="lines",
                                         name=f"expert {col[k] + 1} (gate > 0.5)", legendgroup=f"e{col[k]}",
                                         showlegend=first, line=dict(color=expert_color(col[k]), width=4.5),
                                         hovertemplate=f"{name}, expert {col[k] + 1}<br>mean=%{{y:.3f}}"
                                                       "<extra></extra>"),
                              row=1, col=i)
            fig.add_trace(go.Scatter(x=t, y=predict_mean(Xg, prm), mode="lines", name="fitted E[y | x]",
                                     legendgroup="mean", showlegend=first,
                                     line=dict(color="black", width=1.5, dash="dot"),
                                     hovertemplate=f"{name}<br>E[y|x]=%{{y:.3f}}<extra></extra>"),
                          row=1, col=i)
            fig.update_xaxes(title_text=x_names[0], row=1, col=i)
        else:
            yhat = predict_mean(X[idx], prm)
            fig.add_trace(go.Scatter(x=y[idx], y=yhat, mode="markers", name="held-out point",
                                       legendgroup="pts", showlegend=first,
                                       marker=dict(size=3, color=PALETTE[0], opacity=0.4),
                                       hovertemplate=f"{name}<br>y=%{{x:.3f}}<br>predicted=%{{y:.3f}}<extra></extra>"),
                          row=1, col=i)
            lo, hi = float(np.min(y[idx])), float(np.max(y[idx]))
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction",
                                     legendgroup="diag", showlegend=first, line=TRUTH_STYLE, hoverinfo="skip"),
                          row=1, col=i)
            fig.update_xaxes(title_text="observed y", row=1, col=i)
    fig.update_yaxes(title_text="y" if d == 1 else "predicted E[y | x]", row=1, col=1)
    title = "Fitted experts and conditional mean on held-out data" if d == 1 else \
        "Predicted against observed y on held-out data"
    _layout(fig, title, height=430)
    fig.update_layout(legend=dict(orientation="h", y=-0.18))
    return fig


# ----------------------------------------------------------------------------- experiments
# Readable names, with units, of every column of a sweep (moecore.experiments) and of the swept
# parameters: tables, axes and selectboxes show these, never the raw column names.
LABELS = {
    # swept parameters
    "n_machines": "number of machines M", "support_fraction": "support size S / paper's floor(n / 4M) (ratio)",
    "n": "sample size n (points)", "refine_rounds": "refinement rounds",
    "alpha": "mixing alpha (0 = separated, 1 = random)",
    # metrics
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
# Shown in % (the paper reports the RPE in %); the CSV keeps the raw ratios.
SCALE = {"rpe": 100.0, "clustering_error": 100.0}


def label(name: str) -> str:
    """The readable name (with unit) of a sweep column or parameter; the raw name if unknown."""
    return LABELS.get(name, name.replace("_", " "))


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


def _value_text(v) -> str:
    """A swept value as a category label: 1,000,000 rather than 1e+06."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def sweep_figure(df, parameter, metric, *, log_x=None):
    """Mean ± standard deviation over repeats of one metric against the swept parameter, per method;
    the global EM is the dashed reference.  A sweep of one value gets a categorical axis (no ticks
    like 0.999999M ... 1.000001M)."""
    fig = go.Figure()
    if df is None or len(df) == 0 or metric not in df:
        return _layout(fig, "No results yet", label(parameter), label(metric))
    scale = SCALE.get(metric, 1.0)
    g = df.groupby(["method", "value"])[metric].agg(["mean", "std", "count"]).reset_index()
    single = df["value"].nunique() == 1
    for i, (method, sub) in enumerate(g.groupby("method", sort=False)):
        sub = sub.sort_values("value")
        is_global = method == "global"
        x = sub["value"].map(_value_text) if single else sub["value"]
        fig.add_trace(go.Scatter(
            x=x, y=scale * sub["mean"], mode="lines+markers", name=method,
            error_y=dict(type="data", array=scale * sub["std"].fillna(0), visible=True),
            line=GLOBAL_STYLE if is_global else dict(color=PALETTE[i % len(PALETTE)], width=3),
            marker=dict(size=10 if single else 6), customdata=sub["count"],
            hovertemplate=f"{method}<br>%{{x}}: %{{y:.4g}} (± sd, %{{customdata}} repeats)<extra></extra>"))
    lo = float(np.nanmin(scale * (g["mean"] - g["std"].fillna(0))))
    hi = float(np.nanmax(scale * (g["mean"] + g["std"].fillna(0))))
    if hi - lo <= 1e-3 * max(abs(lo), abs(hi)):
        # Nearly equal values (12.45875 vs 12.45885): a padded axis, not a zoom onto the 5th digit.
        mid, pad = 0.5 * (lo + hi), 0.05 * max(abs(lo), abs(hi), 1e-12)
        fig.update_yaxes(range=[mid - pad, mid + pad])
        lo, hi = mid - pad, mid + pad
    # Enough significant digits that neighbouring ticks differ (12.45, 12.5, 12.55, not 12.5 three
    # times), and no SI prefixes (0.00026, not 260µ).
    top = max(abs(lo), abs(hi), 1e-300)
    digits = int(np.clip(np.ceil(np.log10(top / max(hi - lo, 1e-300 * top))) + 2, 3, 8))
    fig.update_yaxes(tickformat=f".{digits}~g")
    if single:
        fig.update_xaxes(type="category")
    else:
        if log_x is None:
            vals = df["value"].astype(float)
            log_x = vals.min() > 0 and vals.max() / vals.min() >= 20
        if log_x:
            fig.update_xaxes(type="log")
    return _layout(fig, f"{label(metric)} against {label(parameter)}", label(parameter), label(metric), height=380,
                   legend_title="method (mean ± sd)")


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
                dict(color=PALETTE[i % len(PALETTE)])
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
    _layout(fig, f"Parameter error by block<br><sup>{why}</sup>", height=460, legend_title="method")
    fig.update_layout(margin=dict(t=120))  # the two-line subtitle above the panel titles
    return fig


def gate_colors(reduced: MoEParams, global_params: MoEParams, colors, truth: MoEParams | None = None, X=None):
    """(K,) colour index of each global-EM expert: the true expert it matches, or (no truth) the
    reduced expert it matches, so the gate curves of both models agree in colour."""
    col = reduced_colors(global_params, truth if truth is not None else reduced, X)
    if truth is None and len(col) == len(colors):
        col = np.asarray(colors)[col]
    return col


# ----------------------------------------------------------------------------------- learn
def large_mixture_figure(large, X, *, colors_of_component=None, feature=0):
    """The large mixture's L = M K gate curves w_m pi^(m)_j(x), stacked: they sum to 1 at every x."""
    X = np.asarray(X, dtype=float)
    t, Xg = _grid(X, feature)
    mass, _ = large.evaluate(Xg)
    fig = go.Figure()
    L = mass.shape[1]
    for l in range(L):
        c = colors_of_component[l] if colors_of_component is not None else large.expert[l]
        fig.add_trace(go.Scatter(
            x=t, y=mass[:, l], mode="lines", stackgroup="one",
            name=f"machine {large.machine[l] + 1} · expert {large.expert[l] + 1}",
            line=dict(color=expert_color(c), width=0.5),
            fillcolor=_rgba(expert_color(c), 0.35 + 0.5 * (large.machine[l] % 2) * 0.3),
            hovertemplate=(f"machine {large.machine[l] + 1}, expert {large.expert[l] + 1}<br>"
                           "mass %{y:.3f}<extra></extra>")))
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, f"The large mixture: {L} gate masses w_m pi_j(x), stacked<br><sup>they sum to 1 at every x; "
                        "colour = reduced expert the current plan sends the component to</sup>",
                   "x", "gate mass", height=380)


def mm_step_figure(problem, state, *, truth: MoEParams | None = None):
    """One MM iterate (d = 1): local expert lines coloured by the reduced expert the plan sends
    them to (at most support points), the current reduced experts, and the truth."""
    large = problem.large
    B = problem.scaler.coef_to_original(state.experts_std)
    K = B.shape[1]
    lo, hi = problem.X[:, 0].min(), problem.X[:, 0].max()
    t = np.linspace(lo, hi, 100)
    Xt = np.column_stack([np.ones_like(t), t])
    # The plan may send a component to different experts at different x: colour by where most of
    # its mass goes.
    maj = problem.transport_plan(state.assignment, K).dominant()
    fig = go.Figure()
    lines = Xt @ large.experts
    for l in range(lines.shape[1]):
        fig.add_trace(go.Scatter(x=t, y=lines[:, l], mode="lines", legendgroup=f"l{maj[l]}",
                                 name=f"local experts → reduced {maj[l] + 1}",
                                 showlegend=bool(l == np.flatnonzero(maj == maj[l])[0]),
                                 line=dict(color=_rgba(expert_color(maj[l]), 0.5), width=1.5),
                                 hovertemplate=f"machine {large.machine[l] + 1}, expert {large.expert[l] + 1}"
                                               f" → reduced {maj[l] + 1}<extra></extra>"))
    R = Xt @ B
    for k in range(K):
        fig.add_trace(go.Scatter(x=t, y=R[:, k], mode="lines",
                                 name=f"reduced expert {k + 1} (sd {np.sqrt(state.variances[k]):.2f})",
                                 line=dict(color=expert_color(k), width=4)))
    if truth is not None:
        T = Xt @ truth.experts
        for k in range(truth.n_experts):
            fig.add_trace(go.Scatter(x=t, y=T[:, k], mode="lines", name="true experts", legendgroup="truth",
                                     showlegend=k == 0, line=TRUTH_STYLE))
    return _layout(fig, f"MM iteration {state.iteration}: R = {state.objective:.5f}", "x", "expert mean",
                   height=440)


# ----------------------------------------------------------------------------------- machines
def machine_color(m: int, M: int) -> str:
    """Machine m of M on a continuous scale (M can reach 256: the expert palette would repeat)."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Turbo", [0.05 + 0.9 * (m / max(M - 1, 1))])[0]


def machines_figure(X, machine, *, feature=0, x_names=None, support_X=None, support_weights=None,
                    shares=None, max_points=4000, n_bins=30):
    """Which machine holds which part of x, and the machine weights the reduction used.

    Parameters
    ----------
    X : (n, d) ; machine : (n,) the machine of every row
    feature : int (that input on the x axis) or "projection" (the first two principal components
        of the standardised inputs, d > 1)
    support_X : (S, d) and support_weights : (S, M) or None
        The covariate weights w_m(x_s); they are shown averaged over bins of the chosen input.
    shares : (M,) or None, the constant weights n_m / n (shown when there are no covariate weights)

    Top: the rows, one horizontal band per machine (d = 1 or a chosen input: a machine holding one
    region of x is one short bar) or a 2-D scatter coloured by machine (projection).  Bottom (not
    for the projection): the weight of every machine against x, stacked to one.
    """
    X = np.asarray(X, dtype=float)
    machine = np.asarray(machine)
    M = int(machine.max()) + 1
    sub = _subsample(len(X), max_points)
    names = feature_names(X.shape[1], x_names or None)
    if feature == "projection":
        Z = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        _, _, vt = np.linalg.svd(Z[sub], full_matrices=False)
        P = Z[sub] @ vt[:2].T if vt.shape[0] > 1 else np.column_stack([Z[sub, 0], np.zeros(len(sub))])
        fig = go.Figure(go.Scattergl(
            x=P[:, 0], y=P[:, 1], mode="markers",
            marker=dict(size=4, color=machine[sub], colorscale="Turbo", cmin=0, cmax=max(M - 1, 1),
                        colorbar=dict(title="machine")),
            customdata=machine[sub] + 1, hovertemplate="machine %{customdata}<extra></extra>"))
        return _layout(fig, f"Which machine holds which x: {M} machines, first two principal components",
                       "principal component 1", "principal component 2", height=420)
    x = X[:, feature]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.55, 0.45], vertical_spacing=0.08)
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(sub))
    fig.add_trace(go.Scattergl(
        x=x[sub], y=machine[sub] + 1 + jitter, mode="markers", showlegend=False,
        marker=dict(size=3, color=machine[sub], colorscale="Turbo", cmin=0, cmax=max(M - 1, 1)),
        customdata=machine[sub] + 1, hovertemplate="machine %{customdata}, x = %{x:.3g}<extra></extra>"),
        row=1, col=1)
    edges = np.quantile(x, np.linspace(0, 1, n_bins + 1))
    edges = np.unique(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    if support_weights is not None and support_X is not None:
        xs = np.asarray(support_X, dtype=float)[:, feature]
        W = np.asarray(support_weights, dtype=float)
        b = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(mid) - 1)
        counts = np.bincount(b, minlength=len(mid))
        Wb = np.stack([np.bincount(b, weights=W[:, m], minlength=len(mid)) for m in range(W.shape[1])], axis=1)
        Wb = Wb / np.maximum(counts, 1)[:, None]
        what = "covariate weights w_m(x), support points averaged per bin"
    else:
        w = np.bincount(machine, minlength=M) / len(machine) if shares is None else np.asarray(shares, float)
        Wb = np.tile(w, (len(mid), 1))
        what = "constant weights n_m / n"
    for m in range(Wb.shape[1]):
        fig.add_trace(go.Scatter(
            x=mid, y=Wb[:, m], mode="lines", stackgroup="w", showlegend=False,
            line=dict(width=0.5, color=machine_color(m, Wb.shape[1])),
            hovertemplate=f"machine {m + 1}: weight %{{y:.3f}}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text="machine", row=1, col=1)
    fig.update_yaxes(title_text="weight", range=[0, 1.01], row=2, col=1)
    fig.update_xaxes(title_text=names[feature], row=2, col=1)
    return _layout(fig, f"Which machine holds which {names[feature]}, and the weights used<br><sup>{what}</sup>",
                   None, None, height=460)
