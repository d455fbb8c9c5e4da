"""Figures of the Experiments page: a sweep's metric against the varied parameter.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.tables import SCALE, axis_label, label

from .common import GLOBAL_STYLE, PALETTE, _integer_axis, _layout, method_color

MAX_VALUE_TICKS = 12  # a sweep of at most this many values gets a tick at each


def _value_text(v) -> str:
    """A swept value as a category label: 1,000,000 rather than 1e+06."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _log_dodge(values, n_methods):
    """(n_methods,) factors that set each method's points beside the swept value on a log axis: together a
    quarter of the narrowest gap between neighbouring values (in decades), centred on the value."""
    pos = np.log10(np.unique(np.asarray(values, dtype=float)))
    width = 0.25 * float(np.min(np.diff(pos)))
    return 10.0 ** ((np.arange(n_methods) - (n_methods - 1) / 2) * width / max(n_methods, 1))


def sweep_figure(df, parameter, metric, *, log_x=None):
    """Mean ± standard deviation over repeats of one metric against the swept parameter, per method;
    the global EM is the dashed reference.  A sweep of one value gets a categorical axis (no ticks
    like 0.999999M ... 1.000001M)."""
    fig = go.Figure()
    if df is None or len(df) == 0 or metric not in df:
        return _layout(fig, "No results yet", axis_label(parameter), axis_label(metric))
    scale = SCALE.get(metric, 1.0)
    g = df.groupby(["method", "value"])[metric].agg(["mean", "std", "count"]).reset_index()
    single = df["value"].nunique() == 1
    if not single and log_x is None:
        vals = df["value"].astype(float)
        log_x = bool(vals.min() > 0 and vals.max() / vals.min() >= 20)
    dodge = _log_dodge(df["value"], g["method"].nunique()) if log_x and not single else None
    for i, (method, sub) in enumerate(g.groupby("method", sort=False)):
        sub = sub.sort_values("value")
        is_global = method == "global"
        x = sub["value"].map(_value_text) if single else sub["value"]
        if dodge is not None:
            # Beside the value by a factor: Plotly's scatter groups shift points by a width in the axis' own
            # units, which a log axis turned into a factor of 300 (0.001 drawn at 0.3, the audit of 2026-12-06).
            x = sub["value"].astype(float) * dodge[i]
        fig.add_trace(go.Scatter(
            x=x, y=scale * sub["mean"], mode="lines+markers", name=method,
            error_y=dict(type="data", array=scale * sub["std"].fillna(0), visible=True),
            line=GLOBAL_STYLE if is_global else dict(color=method_color(method, i), width=3),
            marker=dict(size=10 if single else 6), customdata=np.c_[sub["count"], sub["value"].map(_value_text)],
            offsetgroup=None if dodge is not None else method,
            hovertemplate=f"{method}<br>%{{customdata[1]}}: %{{y:.4g}} (± sd, %{{customdata[0]}} repeats)"
                          "<extra></extra>"))
    lo = float(np.nanmin(scale * (g["mean"] - g["std"].fillna(0))))
    hi = float(np.nanmax(scale * (g["mean"] + g["std"].fillna(0))))
    if hi - lo <= 1e-3 * max(abs(lo), abs(hi)):
        # Nearly equal values (12.45875 vs 12.45885): a padded axis, not a zoom onto the 5th digit.
        mid, pad = 0.5 * (lo + hi), 0.05 * max(abs(lo), abs(hi), 1e-12)
        lo, hi = mid - pad, mid + pad
        fig.update_yaxes(range=[lo, hi])
    else:
        # Set, not left to Plotly: grouped scatter points (below) would stretch the axis down to 0, as bars'.
        fig.update_yaxes(range=[lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo)])
    # Enough significant digits that neighbouring ticks differ (12.45, 12.5, 12.55, not 12.5 three
    # times), and no SI prefixes (0.00026, not 260µ).
    top = max(abs(lo), abs(hi), 1e-300)
    digits = int(np.clip(np.ceil(np.log10(top / max(hi - lo, 1e-300 * top))) + 2, 3, 8))
    # Plain decimals where they stay short ("6,000", not "6e+3"), exponents beyond.
    fig.update_yaxes(tickformat=f",.{digits}~r" if 1e-4 <= top < 1e6 else f".{digits}~g")
    # Each method's points a little to the side of the value (Plotly's scatter groups, as bars'): drawn at
    # the same x, one method's error bars hid another's (the global EM's under the reduction's).
    if dodge is None:
        fig.update_layout(scattermode="group", scattergap=0.75 if single else 0.9)
    if single:
        fig.update_xaxes(type="category")
    else:
        vals = np.unique(df["value"].astype(float))
        pos = np.log10(vals) if log_x else vals
        pad = 0.04 * (pos[-1] - pos[0])
        if dodge is not None:  # room for the outermost method's points beside the end values
            pad = max(pad, 1.5 * float(np.log10(dodge.max())))
        fig.update_xaxes(type="log" if log_x else "linear", range=[pos[0] - pad, pos[-1] + pad])
        if len(vals) <= MAX_VALUE_TICKS:
            # Ticks at the values run (M = 2, 4): Plotly's own put 2.5, 3, 3.5 machines between them.
            fig.update_xaxes(tickvals=vals, ticktext=[_value_text(v) for v in vals])
    return _layout(fig, f"{label(metric)} against {label(parameter)}", axis_label(parameter), axis_label(metric),
                   height=380, legend_title="method (mean ± sd)")


def k_figure(table, criterion="bic", chosen=None):
    """BIC or ICL against K (one line per fit in ``table``, see moecore.selection.KSelection), the
    chosen K of each fit marked with a star.  ``chosen``: {"global": K, "distributed": K or None}."""
    fig = go.Figure()
    for i, (who, name) in enumerate((("global", "global EM"), ("distributed", "distributed fit"))):
        col = f"{who}_{criterion}"
        if col not in table:
            continue
        # The two curves often coincide: the global one drawn wider underneath stays visible.
        fig.add_trace(go.Scatter(x=table["K"], y=table[col], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[i], dash="solid" if i == 0 else "dash", width=6 - 3 * i),
                                 marker=dict(size=12 - 5 * i)))
        k = (chosen or {}).get(who)
        if k is not None:
            fig.add_trace(go.Scatter(x=[k], y=table.loc[table["K"] == k, col], mode="markers",
                                     marker=dict(symbol="star", size=26 - 12 * i, color=PALETTE[i]),
                                     name=f"chosen by the {name}: K = {k}"))
    _integer_axis(fig, int(table["K"].max()) + 1, start=int(table["K"].min()))
    return _layout(fig, f"{criterion.upper()} against the number of experts K (lower is better)", "experts K",
                   criterion.upper(), height=380)
