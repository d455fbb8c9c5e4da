"""Figures of the Distributed fit page: local and reduced experts, coefficients, the transport
plan, convergence, timings and the machines' shares of x.
"""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer import explain
from explorer.tables import screening_actions
from moecore.model import MoEParams, gate_proba

from .common import (
    GLOBAL_STYLE,
    MANY_MACHINES,
    PALETTE,
    TRUTH_STYLE,
    _grid,
    _integer_axis,
    _layout,
    _subsample,
    coef_names,
    coupling_figure,
    expert_color,
    reduced_colors,
    rgba,
    user_names,
    user_text,
)


def _local_table(dm):
    """Per local component l: machine, local expert, experts (p,), variance, mass, dominant reduced."""
    plan = dm.transport_plan_
    experts = np.hstack([m.params_.experts for m in dm.local_models_])
    variances = np.concatenate([m.params_.variances for m in dm.local_models_])
    mass = plan.coupling.sum(axis=1)
    machine = dm.machines_[plan.machine]
    return machine, plan.expert, experts, variances, mass, plan.dominant()


def experts_figure(dm, X, y=None, truth: MoEParams | None = None, *, feature=0, x_names=None,
                   colors=None, show_data=True, show_local=True, full_lines=False, max_points=1500):
    """Local expert lines (thin, coloured by the reduced expert the plan sends them to), the
    reduced experts (thick) and the true experts (black dashed), along one input.

    ``full_lines=False`` draws each reduced expert only where its gate is the largest: on real data
    an expert that matters in one region can run far off elsewhere (to -270 on the flights) and the
    axis would then squash every other line."""
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names = user_names(d, x_names)
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
        # browser holds 2 points per local expert instead of the grid's 200 (125 kB of JSON at
        # M = 8 rather than 493 kB, mostly per-point hover text).
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
                x=xs, y=ys, mode="lines", name=f"local → reduced {c + 1}", text=txt,
                line=dict(color=rgba(expert_color(c), 0.45), width=1.2), connectgaps=False,
                hovertemplate=f"%{{text}}<br>sent to reduced expert {c + 1}<extra></extra>"))
    means = Xt @ red.experts
    if not full_lines:
        means = np.where(gate_proba(Xg, red).argmax(axis=1)[:, None] == np.arange(red.n_experts), means, np.nan)
    for k in np.argsort(colors, kind="stable"):  # legend in colour order
        fig.add_trace(go.Scatter(x=t, y=means[:, k], mode="lines", name=f"reduced expert {colors[k] + 1}",
                                 line=dict(color=expert_color(colors[k]), width=4),
                                 hovertemplate=f"reduced expert {colors[k] + 1}<br>mean=%{{y:.3f}}<extra></extra>"))
    shown = [means]
    has_truth = truth is not None and truth.n_features == d
    if has_truth:
        tm = Xt @ truth.experts
        shown.append(tm)
        for k in range(truth.n_experts):
            fig.add_trace(go.Scatter(x=t, y=tm[:, k], mode="lines", name="true experts", legendgroup="truth",
                                     showlegend=k == 0, line=TRUTH_STYLE,
                                     hovertemplate=f"true expert {k + 1}<br>mean=%{{y:.3f}}<extra></extra>"))
    if show_data and y is not None and show_local:
        # The data and the lines that describe it set the y range: a local expert fitted to a few
        # points of one machine can run far off (mcycle: -400, squashing the data into a band).
        # Such a line leaves the frame, and its hover text still names it.
        lo, hi = np.nanmin([np.min(y), *map(np.nanmin, shown)]), np.nanmax([np.max(y), *map(np.nanmax, shown)])
        pad = 0.08 * (hi - lo) or 1.0
        fig.update_yaxes(range=[lo - pad, hi + pad])
    M = len(dm.local_models_)
    sub = " (other inputs at their mean)" if d > 1 else ""
    return _layout(fig, f"{M} x {red.n_experts} local experts, {red.n_experts} reduced experts"
                        f"{', truth' if has_truth else ''}<br><sup>"
                        f"local experts coloured by the reduced expert the plan sends them to"
                        f"{'' if full_lines else '; reduced experts where their gate is largest'}{sub}</sup>",
                   x_names[feature], "expert mean beta_k . (1, x)", height=480)


def coefficient_figure(dm, truth: MoEParams | None = None, *, a=0, b=1, x_names=None, colors=None):
    """Expert coefficients in parameter space: the M K local experts (size = transported mass,
    colour = reduced expert they go to), the reduced experts (crosses) and the truth (diamonds)."""
    red = dm.params_
    d = red.n_features
    names = [user_text(s) for s in coef_names(d, x_names)]
    colors = np.arange(red.n_experts) if colors is None else np.asarray(colors)
    machine, lexp, experts, variances, mass, dom = _local_table(dm)
    fig = go.Figure()
    size = 6 + 30 * np.sqrt(mass / max(mass.max(), 1e-300))
    for k in np.argsort(colors):  # legend in colour order
        sel = dom == k
        if sel.any():
            fig.add_trace(go.Scatter(
                x=experts[a, sel], y=experts[b, sel], mode="markers", name=f"local, sent to reduced {colors[k] + 1}",
                marker=dict(size=size[sel], color=rgba(expert_color(colors[k]), 0.55),
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
# Machines drawn one by one on the EM-curve summary (flagged first, then the farthest from the median).
MAX_OUTLIERS = 8


def plan_figure(dm, *, colors=None):
    """The transport plan as a heatmap: rows = local experts (machine, expert), columns = reduced
    experts, cell = mean gate mass sent (in % of the whole mixture).  For more than
    ``MANY_MACHINES`` machines use :func:`plan_machines_figure` (and :func:`plan_table`)."""
    plan = dm.transport_plan_
    return coupling_figure(plan.coupling, dm.machines_[plan.machine], plan.expert, colors=colors,
                           flagged=screening_actions(dm))


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
    flagged = screening_actions(dm)
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


def _shard_sizes(dm):
    """Rows of each fitted machine, in the order of ``dm.local_models_``."""
    if getattr(dm, "shards_", None) is not None:
        return [len(dm.shards_[m]) for m in dm.machines_]
    return [dm._n_samples_all[m] for m in dm.machines_]


def beyond_axis_note(named: list) -> str:
    """The note naming the fits that run past the axis (``named``: "machine (iterations)" each, slowest first):
    two lines of at most 45 characters, "..." for those left out; in one line of 90 it ran past the left edge
    of a chart in half the page's width (the audit of 2026-12-06, M = 256)."""
    lines = [""]
    for item in named:
        if len(lines[-1]) + len(item) + 2 > 45 and lines[-1]:
            if len(lines) == 2:
                return "beyond the axis, machine (iterations):<br>" + "<br>".join(lines) + " ..."
            lines[-1] += ","
            lines.append("")
        lines[-1] += (", " if lines[-1] else "") + item
    return "beyond the axis, machine (iterations):<br>" + "<br>".join(lines)


def loglik_figure(dm, global_model=None, *, max_lines=MANY_MACHINES):
    """EM log-likelihood per sample against iteration, with the global EM for reference.

    Up to ``max_lines`` machines: one line per machine.  Beyond: the median machine and the
    10-90 % band over machines (a machine that has converged keeps its final value), with the
    machines the screening flagged and those whose final value lies far from the others' (robust
    z > 3.5) drawn one by one, at most ``MAX_OUTLIERS`` of them.
    """
    fig = go.Figure()
    flagged = screening_actions(dm)
    curves = [np.asarray(model.loglik_history_, dtype=float) / n_m
              for model, n_m in zip(dm.local_models_, _shard_sizes(dm), strict=True)]
    machines = [int(m) for m in dm.machines_]
    if len(curves) <= max_lines:
        for m, h in zip(machines, curves, strict=True):
            name = explain.flagged_curve_label(m, flagged[m]) if m in flagged else f"machine {m + 1}"
            # Each machine in its colour of the machines chart above (Plotly's ten colours came round again:
            # machines 1 and 11 alike, machine 2 in the flagged machines' red; the audit of 2026-12-06).
            line = (dict(width=3, dash="dash", color="#d62728") if m in flagged else
                    dict(width=1.5, color=machine_color(m, dm.n_machines)))
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
                                 fillcolor=rgba(PALETTE[0], 0.25), name="10-90 % of the machines",
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
        named = [f"{machines[i] + 1} ({len(curves[i])})" for i in sorted(past, key=lambda i: -len(curves[i]))]
        fig.update_xaxes(range=[0.5, n_max + 0.5])
        fig.add_annotation(text=beyond_axis_note(named), xref="paper", yref="paper",
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
    compare = np.asarray(tm.get("compare", []), dtype=float)
    if compare.size:
        # In the refits' exchange: each machine scores the best model on its own rows (moecore.screening).
        labels.append(f"slowest of {compare.size} comparisons on the machines' rows")
        vals.append(float(compare.max()))
        cols.append(PALETTE[4])
    # Every other term of the learning time, where it took time: without them the bars did not add up to the
    # learning time below them (the non-IID lesson: 125 of 184 ms; the audit of 2026-12-06).
    costs = getattr(dm, "costs_", None)
    if costs is not None:
        for label, t in (("pilot fit on the supporting sample", costs.pilot),
                         ("slowest warm refit (a machine refitted from the reduced model)",
                          float(np.max(costs.warm_refit, initial=0.0))),
                         ("machine weights w_m(x) at the server", costs.machine_weights)):
            if t > 0:
                labels.append(label)
                vals.append(float(t))
                cols.append(PALETTE[4])
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
    flagged = screening_actions(dm)
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
    cols = [PALETTE[0], rgba(PALETTE[0], 0.6)]
    more = _step_bars(dm, global_time, flagged, per_machine=False)
    labels, vals, cols = labels + more[0], vals + more[1], cols + more[2]
    # In lines of at most 26 characters: a label of 47 ran left over the box of the local fits' panel.
    labels = ["<br>".join(textwrap.wrap(label, 26, break_long_words=False, break_on_hyphens=False))
              for label in labels]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.3,
                        subplot_titles=[f"local fit of each of the {M} machines", "steps and totals"])
    jitter = np.random.default_rng(0).uniform(-0.35, 0.35, M)
    fig.add_trace(go.Box(y=local[ok], x0=0, name="local fits", boxpoints=False, fillcolor=rgba(PALETTE[0], 0.15),
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


def gate_colors(reduced: MoEParams, global_params: MoEParams, colors, truth: MoEParams | None = None, X=None):
    """(K,) colour index of each global-EM expert: the true expert it matches, or (no truth) the
    reduced expert it matches, so the gate curves of both models agree in colour."""
    col = reduced_colors(global_params, truth if truth is not None else reduced, X)
    if truth is None and len(col) == len(colors):
        col = np.asarray(colors)[col]
    return col


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

    Top (d = 1 or a chosen input): a heatmap, one row per machine, the share of its rows in each bin
    of x (a machine holding one region of x is one short bar); for the projection, a 2-D scatter of
    at most ``max_points`` rows coloured by machine.  Bottom (not for the projection): the weight
    of every machine against x, stacked to one.
    """
    X = np.asarray(X, dtype=float)
    machine = np.asarray(machine)
    M = int(machine.max()) + 1
    names = user_names(X.shape[1], x_names or None)
    if feature == "projection":
        sub = _subsample(len(X), max_points)
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
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    mid = 0.5 * (edges[:-1] + edges[1:])
    # Top: where each machine's rows lie, as a heatmap of counts per (machine, bin of x) rather than
    # a scatter of the rows: the same picture at any n and M (a machine holding one region of x is
    # one short bar), and one image for the browser to draw instead of thousands of markers (the
    # scatter, WebGL or SVG, took 0.3 s of the Fit page's 0.8 s of drawing in chromium).
    # At least about ten rows per cell for the smallest machine (fewer bins at 78 rows a machine than
    # at 2 500), so that a random split does not read as a pattern of noise.
    sizes = np.bincount(machine, minlength=M)
    n_top = int(np.clip(sizes[sizes > 0].min() // 10, 4, n_bins))
    top_edges = np.unique(np.quantile(x, np.linspace(0, 1, n_top + 1)))
    col = np.clip(np.searchsorted(top_edges, x, side="right") - 1, 0, len(top_edges) - 2)
    counts = np.zeros((M, len(top_edges) - 1))
    np.add.at(counts, (machine, col), 1.0)
    share = 100 * counts / np.maximum(sizes, 1)[:, None]
    # A machine holding all of x puts about 100 / bins % of its rows in each bin: twice that is the
    # scale's top, so a random split reads as even mid-blue, not as noise stretched over the scale.
    top = max(share.max(), 200.0 / counts.shape[1])
    fig.add_trace(go.Heatmap(
        x=top_edges, y=np.arange(1, M + 1), z=share, customdata=counts, colorscale="Blues", zmin=0, zmax=top,
        showscale=True, colorbar=dict(title=dict(text="% of the<br>machine's<br>rows", side="top"), len=0.5,
                                      y=1.0, yanchor="top", thickness=12),
        xgap=0, ygap=1 if M <= 64 else 0,
        hovertemplate="machine %{y}, x in this bin: %{customdata:.0f} rows (%{z:.1f} % of its rows)<extra></extra>"),
        row=1, col=1)
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
    # The bands' colours are the machines' everywhere on the page (EM curves, plan rows): say so once,
    # rather than a legend of M entries.
    fig.add_annotation(text=f"one band per machine, stacked: machine 1 at the bottom, {Wb.shape[1]} at the top "
                            "(hover to read one)", xref="x2 domain", yref="y2 domain", x=0, y=1.02,
                       xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11))
    fig.update_yaxes(title_text="machine", row=1, col=1)
    fig.update_yaxes(title_text="weight", range=[0, 1.01], row=2, col=1)
    fig.update_xaxes(title_text=names[feature], row=2, col=1)
    return _layout(fig, f"Which machine holds which {names[feature]}, and the weights used<br><sup>{what}</sup>",
                   None, None, height=460)
