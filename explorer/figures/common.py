"""What the figures of every page share: the palette and styles, the layout, sampling and
grids, the colours of reduced experts, and the figures more than one page draws (gates, the
transport plan's coupling, the MM objective).
"""

from __future__ import annotations

import html
import math
import re
import textwrap

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from explorer.tables import coef_labels
from moecore.alignment import match_experts
from moecore.experiments import ONE_SHOT, UNALIGNED
from moecore.model import MoEParams, feature_names, gate_proba

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
TRUTH_STYLE = dict(color="black", dash="dash", width=2.5)
GLOBAL_STYLE = dict(color="#555555", dash="dot", width=2.5)
TEMPLATE = "plotly_white"
# The house template as Plotly's default: a new figure takes the default template unvalidated
# (about 1 ms), where update_layout(template=...) validates and deep-copies it (15-25 ms a figure,
# with the GIL held: a page of eight figures kept every other session waiting 0.2 s).
pio.templates.default = TEMPLATE


def expert_color(k: int) -> str:
    return PALETTE[int(k) % len(PALETTE)]


# One colour per method wherever methods are drawn (Compare's parameter errors, Experiments' sweeps), and none
# of the experts' ten: Compare drew "reduction" in expert 1's blue beside the experts' panels, and a method
# took its colour from its row's position, so the same method changed colour between the pages.
METHOD_COLORS = {"reduction": "#08306b", ONE_SHOT: "#4a90c8", "weighted average": "#b8860b", "median": "#006d2c",
                 "single machine": "#c51b8a", UNALIGNED: "#fd8d3c"}
_OTHER_METHODS = ("#6a3d9a", "#b15928", "#01665e", "#8e0152")


def method_color(name: str, position: int = 0) -> str:
    """The colour of a comparison method by its name (the global EM is drawn in :data:`GLOBAL_STYLE`); a name
    not in :data:`METHOD_COLORS` takes one of a few others by its ``position``."""
    return METHOD_COLORS.get(str(name), _OTHER_METHODS[int(position) % len(_OTHER_METHODS)])


def rgba(hex_color, alpha):
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def user_text(text) -> str:
    """A user's string (a column or data name) as Plotly shows it, literally: Plotly renders
    pseudo-HTML (``<a href>``, ``<br>``, ``<b>``) in titles, legends and hover text and fills
    ``%{...}`` fields of hover templates; as entities these are characters it displays."""
    return html.escape(str(text), quote=True).replace("%", "&#37;")


def user_names(d, names=None) -> list[str]:
    """(d,) input names (moecore.model.feature_names) made safe with :func:`user_text`."""
    return [user_text(s) for s in feature_names(d, names)]


# Characters per line of a figure's title and of its subtitle (<sup>): Plotly never wraps a title,
# and a figure in one of two page columns is about 450 px wide at 1400 px, where longer lines were
# cut off (the audit of 2026-12-05: "... reduced experts where", "... is kep"); with the projector's
# larger text a 57-character title ran 7 px past a 520 px chart (the audit of 2026-12-06).
TITLE_CHARS, SUBTITLE_CHARS = 48, 72
# Pixels per extra line of title or subtitle above the plot.
_LINE_PX = 20


def _wrap_title(title, width=SUBTITLE_CHARS):
    """``title`` with its main line and its <sup> subtitle broken into lines of at most TITLE_CHARS
    and ``width`` characters (at spaces, never inside a tag); returns (text, number of lines)."""
    m = re.fullmatch(r"(?s)(.*?)(?:<br>\s*<sup>(.*)</sup>)?", title)
    head, sub = m.group(1), m.group(2)

    def wrap(text, chars):
        return [line for part in text.split("<br>")
                for line in (textwrap.wrap(part, chars, break_long_words=False, break_on_hyphens=False) or [""])]

    lines = wrap(head, TITLE_CHARS)
    text = "<br>".join(lines)
    if sub is not None:
        sub_lines = wrap(sub, width)
        lines += sub_lines
        text += "<br><sup>" + "<br>".join(sub_lines) + "</sup>"
    return text, len(lines)


# Legends of more entries than this go below the plot (see _layout).
LEGEND_BESIDE_MAX = 12
# A horizontal legend's rows, to make room for them: entries of a symbol and a name side by side in a
# half-width column of the app's wide layout (about 450 px; 6.5 px per character of 12 px text).
_LEGEND_ROW_PX, _HALF_COLUMN_PX, _LEGEND_ITEM_PX, _LEGEND_CHAR_PX = 20, 440, 45, 6.5


def _legend_names(fig) -> list:
    """The names the legend lists: of named traces not hidden from it (a legend group still lists each)."""
    return [str(t.name) for t in fig.data if t.showlegend is not False and t.name]


# The text sizes (px) of Streamlit's chart theme at the browser's 16 px root font: tick labels, legend and
# annotations 0.75 rem, axis titles 0.875 rem, the title 1 rem.
THEME_TEXT_PX = {"text": 12, "axis_title": 14, "title": 16}


def scale_text(fig, scale: float):
    """A copy of ``fig`` with every text ``scale`` times its size (the projector's larger text, see
    explorer.chrome.chart): the sizes the figure sets and, where it sets none, those of Streamlit's theme
    (:data:`THEME_TEXT_PX`), written out; its height and margins grow as much."""
    out = go.Figure(fig)
    lay = out.layout

    def grow(font, base):
        font.size = round((font.size or base) * scale, 2)

    grow(lay.font, THEME_TEXT_PX["text"])
    title_px = lay.title.font.size or THEME_TEXT_PX["title"]
    grow(lay.title.font, THEME_TEXT_PX["title"])
    # Plotly puts a title's first line by its baseline: the taller letters rose past the figure's top (6 px
    # at 20 px against 2 at 16) unless the pad grows with them.
    lay.title.pad.t = round((lay.title.pad.t or 0) * scale + lay.title.font.size - title_px, 1)
    grow(lay.legend.font, THEME_TEXT_PX["text"])
    grow(lay.legend.title.font, THEME_TEXT_PX["text"])
    grow(lay.hoverlabel.font, THEME_TEXT_PX["text"])
    for ax in (*out.select_xaxes(), *out.select_yaxes()):
        grow(ax.tickfont, THEME_TEXT_PX["text"])
        grow(ax.title.font, THEME_TEXT_PX["axis_title"])
    for note in lay.annotations:  # subplot titles among them
        grow(note.font, THEME_TEXT_PX["text"])
    for trace in out.data:
        # Only the colour bars drawn: a colour bar's font set on a trace that shows none makes Plotly draw it.
        marker = getattr(trace, "marker", None)
        for owner in (trace, marker):
            if owner is not None and "colorbar" in owner and owner.showscale is not False and (
                    owner is trace or owner.showscale):
                grow(owner.colorbar.tickfont, THEME_TEXT_PX["text"])
                grow(owner.colorbar.title.font, THEME_TEXT_PX["text"])
    # Taller and with wider margins by as much, so that a legend beside the plot still fits its height (at
    # 420 px the gates' nine entries scrolled) and the plot keeps its share of the figure.
    if lay.height is not None:
        lay.height = round(lay.height * scale)
    for side in "tlrb":
        if lay.margin[side] is not None:
            lay.margin[side] = round(lay.margin[side] * scale)
    return out


def _layout(fig, title, xtitle=None, ytitle=None, height=420, legend_title=None, *, wrap=SUBTITLE_CHARS,
            top_extra=0):
    """The house layout: ``title`` wrapped (:func:`_wrap_title`, subtitle lines of ``wrap``
    characters) with room above the plot for its lines and ``top_extra`` pixels more (labels of a
    top axis, subplot titles)."""
    if pio.templates.default != TEMPLATE:  # changed by someone else since this module was imported
        fig.update_layout(template=TEMPLATE)
    title, n_lines = _wrap_title(title, wrap)
    # One assignment per property (merged into what the figure set before), not update_layout and
    # update_xaxes: those batch their changes as dotted key paths ("margin.l", "xaxis.title.text")
    # that Plotly parses one by one, 3-4 ms a figure (over half of building a small one) with the
    # GIL held, which other sessions wait for.
    lay = fig.layout
    # From the top of the figure down: with its default place (the middle of the top margin) a title
    # of several lines moved into a top axis's labels as the margin grew to hold them.
    lay.title = {**lay.title.to_plotly_json(), "text": title, "x": 0.01, "xanchor": "left", "y": 1.0,
                 "yref": "container", "yanchor": "top", "pad": {"t": 14}}
    lay.height = height
    # Room for the axes' tick labels and titles from the start: Plotly draws a figure, finds that
    # they push a margin wider (axes automargin) and draws it all again. With 60 / 50 px that second
    # drawing happened for most figures and doubled their time in chromium (the Fit page's figures
    # 0.39 s -> 0.26 s of drawing with 80 / 70; benchmarks/README.md, section 14).
    lay.margin = {**lay.margin.to_plotly_json(), "l": 80, "r": 20, "t": 80 + _LINE_PX * max(n_lines - 2, 0) + top_extra,
                  "b": 70}
    legend = {**lay.legend.to_plotly_json(), "bgcolor": "rgba(255,255,255,0.8)"}
    if legend_title is not None:
        legend["title"] = legend_title
    names = _legend_names(fig)
    if len(names) > LEGEND_BESIDE_MAX and "orientation" not in legend:
        # Beside the plot, 20 entries (K = 10: reduced and global EM) took half a column's width and
        # scrolled; below it they wrap into rows and the plot keeps the width, the figure grows.
        legend.update(orientation="h", x=0, xanchor="left", y=-0.16, yanchor="top")
        longest = max(map(len, names))
        per_row = max(1, int(_HALF_COLUMN_PX // (_LEGEND_ITEM_PX + _LEGEND_CHAR_PX * longest)))
        lay.height = height + _LEGEND_ROW_PX * math.ceil(len(names) / per_row)
    lay.legend = legend
    lay.hoverlabel = {**lay.hoverlabel.to_plotly_json(), "namelength": -1}
    for text, axes in ((xtitle, fig.select_xaxes), (ytitle, fig.select_yaxes)):
        if text is not None:
            for ax in axes():
                ax.title = {**ax.title.to_plotly_json(), "text": text}
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


def gates_figure(models: dict, X, *, feature=0, x_names=None, colors: dict | None = None):
    """Gate probabilities pi_k(x) along one input for several models.

    models : name -> MoEParams; the first is drawn solid, "truth" dashed black-edged, others dotted.
    colors : name -> (K,) colour index per expert (default: the expert's own index).
    """
    X = np.asarray(X, dtype=float)
    d = X.shape[1]
    x_names = user_names(d, x_names)
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


# Above this many machines the per-machine views (one bar, one plan row block, one EM curve per
# machine) become summaries: a 256-machine bar chart is ~6 400 px tall and its legend scrolls.
MANY_MACHINES = 16
# Above this many rows (M K local experts) the transport plan is drawn per machine: at K = 10, M = 16
# the heatmap's 160 rows had 6 px labels.
MANY_PLAN_ROWS = 64


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


def coupling_figure(coupling, machine, expert, *, colors=None, flagged=None,
                    title="Transport plan<br><sup>mass (%) each local expert sends to each reduced expert; "
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
    if K > 5:
        # "reduced 1" ... "reduced 10" overlapped each other and the subtitle once Plotly tilted them.
        fig.update_xaxes(side="top", title_text="reduced expert", tickfont=dict(size=13), tickangle=0,
                         tickvals=xs, ticktext=[str(colors[k] + 1) for k in order])
    else:
        fig.update_xaxes(side="top", title_text="", tickfont=dict(size=13))
    # Beyond ~30 rows the cells shrink rather than the page growing without end.
    return _layout(fig, title, height=int(np.clip(22 * L + 120, 320, 820)), top_extra=10 + 30 * (K > 5))


def mm_figure(history, init_objectives=None, n_kmeans=None, mark=None):
    """MM objective R (expected transportation divergence) against iteration.

    ``init_objectives``: R at the end of every start; ``n_kmeans``: how many of them were k-means
    starts (the MM restarts setting), the others started from the best local models; ``mark``: an
    iteration to mark "you are here" (Learn's walk-through), on the axis' scale.
    """
    h = np.asarray(history, dtype=float)
    # R of a good reduction is small (0.0018 on teaching-1d) and moves in its fourth digit: ticks read
    # 0.0017945, 0.001795, ... so the axis counts in units of a power of ten, named in its title.
    top = float(np.nanmax(np.abs(h))) if h.size and np.isfinite(h).any() else 0.0
    power = int(np.floor(np.log10(top))) if top > 0 else 0
    power = power if power <= -2 or power >= 4 else 0
    fig = go.Figure(go.Scatter(x=np.arange(len(h)), y=h / 10.0 ** power, mode="lines+markers",
                               name="R of the best start (kept)", line=dict(color=PALETTE[0], width=2.5), customdata=h,
                               hovertemplate="iteration %{x}<br>R=%{customdata:.6g}<extra></extra>"))
    if mark is not None:
        # On the line's own scale: the raw R sat at the bottom of an axis counted in 1e-2 (0.040 for 4.01).
        fig.add_scatter(x=[mark], y=[h[mark] / 10.0 ** power], mode="markers", name="you are here",
                        marker=dict(size=14, color="#d62728"), customdata=[h[mark]],
                        hovertemplate="iteration %{x}<br>R=%{customdata:.6g}<extra></extra>")
    title = "MM reduction: objective R (expected transportation divergence) per iteration"
    if init_objectives is not None and len(init_objectives) > 1:
        n = len(init_objectives)
        how = (f" ({n_kmeans} k-means restarts + {n - n_kmeans} from the best local models)"
               if n_kmeans is not None and 0 <= n_kmeans < n else "")
        title += f"<br><sup>never increases; the best of {n} starts{how} is kept</sup>"
    _integer_axis(fig, len(h))
    unit = f" (x 1e{power})" if power else ""
    # A short axis title: the long one ran up into a two-line subtitle with the projector's larger text.
    return _layout(fig, title, "MM iteration", f"R{unit}", height=360)
