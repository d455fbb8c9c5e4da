"""Figures of the Learn page: the large mixture, and one MM step at a time.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from moecore.model import MoEParams

from .common import TRUTH_STYLE, _grid, _layout, expert_color, rgba


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
            fillcolor=rgba(expert_color(c), 0.35 + 0.5 * (large.machine[l] % 2) * 0.3),
            hovertemplate=(f"machine {large.machine[l] + 1}, expert {large.expert[l] + 1}<br>"
                           "mass %{y:.3f}<extra></extra>")))
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, f"The large mixture: {L} gate masses w_m pi_j(x), stacked<br><sup>they sum to 1 at every x; "
                        "colour = reduced expert the current plan sends the component to</sup>",
                   "x", "gate mass", height=380)


def mm_step_figure(problem, state, *, truth: MoEParams | None = None, colors=None):
    """One MM iterate (d = 1): local expert lines coloured by the reduced expert the plan sends
    them to (at most support points), the current reduced experts, and the truth.  ``colors``: (K,)
    colour index (and number) of each reduced expert (default: its own index)."""
    large = problem.large
    B = problem.experts_original(state.experts_std)
    K = B.shape[1]
    col = np.arange(K) if colors is None else np.asarray(colors)
    lo, hi = problem.X[:, 0].min(), problem.X[:, 0].max()
    t = np.linspace(lo, hi, 100)
    Xt = np.column_stack([np.ones_like(t), t])
    # The plan may send a component to different experts at different x: colour by where most of
    # its mass goes.
    maj = col[problem.transport_plan(state.assignment, K).dominant()]
    fig = go.Figure()
    lines = Xt @ large.experts
    for l in range(lines.shape[1]):
        fig.add_trace(go.Scatter(x=t, y=lines[:, l], mode="lines", legendgroup=f"l{maj[l]}",
                                 name=f"local experts → reduced {maj[l] + 1}",
                                 showlegend=bool(l == np.flatnonzero(maj == maj[l])[0]),
                                 line=dict(color=rgba(expert_color(maj[l]), 0.5), width=1.5),
                                 hovertemplate=f"machine {large.machine[l] + 1}, expert {large.expert[l] + 1}"
                                               f" → reduced {maj[l] + 1}<extra></extra>"))
    R = Xt @ B
    for k in np.argsort(col, kind="stable"):  # legend in colour order, as on the other pages
        fig.add_trace(go.Scatter(x=t, y=R[:, k], mode="lines",
                                 name=f"reduced expert {col[k] + 1} (sd {np.sqrt(state.variances[k]):.2f})",
                                 line=dict(color=expert_color(col[k]), width=4)))
    if truth is not None:
        T = Xt @ truth.experts
        for k in range(truth.n_experts):
            fig.add_trace(go.Scatter(x=t, y=T[:, k], mode="lines", name="true experts", legendgroup="truth",
                                     showlegend=k == 0, line=TRUTH_STYLE))
    return _layout(fig, f"MM iteration {state.iteration}: R = {state.objective:.5f}", "x", "expert mean",
                   height=440)
