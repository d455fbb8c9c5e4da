"""Lessons that point at their evidence: each lesson's live sentence quotes the figures it talks
about (in bold, formatted exactly as the page shows them) and names the rows, columns and
metrics they are in; the page highlights those cells and boxes.

Plain functions (no Streamlit), one per lesson: each takes the lesson's results and returns an
:class:`Evidence`; the pages read its ``cells`` (table cells to highlight, by table) and
``boxes`` (keys of the page's boxes to highlight: metrics, the screening warning, the timing list).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from . import explain

# The highlight of evidence on the page: table cells (pandas Styler) and boxes (containers keyed
# ``evidence_<name>``, styled by CSS).  Browser tests read this colour back.
HIGHLIGHT = "#ffe066"
BOX_CSS = (f"<style>[class*='st-key-evidence_'] {{background: {HIGHLIGHT}55; outline: 3px solid {HIGHLIGHT}; "
           "border-radius: 6px; padding: 4px 8px;}</style>")

# How the Compare page's tables show their cells (the sentences quote them the same way).
METRIC_LABELS = {"rpe": "RPE", "correlation": "correlation", "ari": "ARI", "clustering_error": "clustering error",
                 "transport_divergence": "transport divergence", "loglik": "log-lik / n", "time": "time (s)"}
GATES_VS_GLOBAL = "vs global EM: gates"  # the block-error table's column (explorer.tables.block_errors)


def metric_cell(v) -> str:
    """A cell of the Compare page's metrics table."""
    return f"{v:.4g}"


def block_cell(v) -> str:
    """A cell of the Compare page's parameter-error table."""
    return f"{v:.3g}"


@dataclass(frozen=True)
class Evidence:
    """sentence: markdown, every quoted figure in bold; cells: {table: [(row, column)]}; boxes:
    names of the page's evidence boxes (container keys ``evidence_<name>``)."""

    sentence: str
    cells: dict = field(default_factory=dict)
    boxes: tuple = ()


def highlight(df: pd.DataFrame, cells, fmt) -> pd.io.formats.style.Styler:
    """``df`` styled with ``fmt`` and the ``cells`` [(row, column)] highlighted."""
    css = pd.DataFrame("", index=df.index, columns=df.columns)
    for r, c in cells:
        if r in css.index and c in css.columns:
            css.loc[r, c] = f"background-color: {HIGHLIGHT}; font-weight: bold"
    # Not "-": the page renders a cell as markdown, where a lone "-" is a list bullet ("•").
    return df.style.format(fmt, na_rep="—").apply(lambda _: css, axis=None)


def label_switching(table: pd.DataFrame) -> Evidence:
    rows = ["average, unaligned", "weighted average", "reduction"]
    v = {r: metric_cell(table.loc[r, "rpe"]) for r in rows}
    return Evidence(
        f"In the metrics table (column **RPE**, held-out): the unaligned average (row *average, unaligned*) "
        f"**{v['average, unaligned']}**, the aligned weighted average **{v['weighted average']}**, the reduction "
        f"**{v['reduction']}**.",
        cells={"metrics": [(r, METRIC_LABELS["rpe"]) for r in rows]})


def rounds(table: pd.DataFrame, n_rounds: int) -> Evidence:
    one, ref = "reduction, one-shot", "reduction"
    g1, g2 = (block_cell(table.loc[r, "gap_gates"]) for r in (one, ref))
    r1, r2 = (metric_cell(table.loc[r, "rpe"]) for r in (one, ref))
    return Evidence(
        f"In the parameter-error table, column *{GATES_VS_GLOBAL}*: **{g1}** for the one-shot reduction (row "
        f"*{one}*) against **{g2}** after {n_rounds} rounds (row *{ref}*). The held-out RPE (metrics table) barely "
        f"moves, **{r1}** to **{r2}**: the predictions were already good, the gates were not.",
        cells={"blocks": [(one, GATES_VS_GLOBAL), (ref, GATES_VS_GLOBAL)],
               "metrics": [(one, METRIC_LABELS["rpe"]), (ref, METRIC_LABELS["rpe"])]})


def headline(costs, global_time: float, n_machines: int, n_jobs: int, cores: int, rpe: dict,
             paper: dict) -> Evidence:
    """``costs``: the fit's FitCosts; ``rpe``: held-out RPEs in % ("rpe_reduction", "rpe_global");
    ``paper``: the paper's."""
    return Evidence(
        " ".join([explain.speedup_sentence(costs.learning_time_parts(), global_time, n_machines),
                  explain.wall_sentence(costs.wall, global_time, n_machines, n_jobs, cores),
                  explain.paper_rpe_sentence(rpe["rpe_reduction"], rpe["rpe_global"], paper["rpe_reduction"],
                                             paper["rpe_global"])]),
        boxes=("speedup", "learning", "wall", "global", "timing", "paper"))


def bad_machine(report) -> Evidence:
    if not report.flagged:
        return Evidence("In this run no machine scored below the screening threshold: try another fit seed.",
                        boxes=("screening",))
    m = report.flagged[0]
    more = f" ({len(report.flagged) - 1} more in the warning)" if len(report.flagged) > 1 else ""
    if m in getattr(report, "cross_flagged", []):
        why = (f"machine **{m + 1}**'s own rows were explained **{report.cross_gain[m]:.4f}** nats per row better by "
               "the best-scoring machine's model than by its local fit")
    else:
        why = (f"machine **{m + 1}** scored **{report.scores[m]:.4f}** per point on the supporting sample, below the "
               f"threshold **{report.threshold[m]:.4f}**")
    note = explain.flagged_curve_note(report.actions.get(m, "kept"))
    return Evidence(f"In the screening warning: {why}{more}. " + note, boxes=("screening",))


def non_iid(costs, global_time: float, n_machines: int, n_jobs: int, cores: int, used: str,
            test) -> Evidence:
    """``costs``: the fit's FitCosts; ``used``: the machine weights used; ``test``: the score test
    (``machine_weights_test_``) or None."""
    why = (f"the score test of 'the machine does not depend on x' gave p = **{test.p_value:.3g}**"
           if test is not None and math.isfinite(test.p_value) else "they were chosen")
    return Evidence(
        f"The machines are weighed with **{used}** weights: {why}. "
        + explain.speedup_sentence(costs.learning_time_parts(), global_time, n_machines) + " "
        + explain.wall_sentence(costs.wall, global_time, n_machines, n_jobs, cores),
        boxes=("weights", "speedup", "learning", "wall", "global", "timing"))


def real_flights_figures(table: pd.DataFrame, n_test: int, machines: int) -> dict:
    """The flights lesson's figures from the comparison's ``table`` (indexed by method): held-out
    log-likelihoods per point and their gap (global EM minus reduction, nats), the times and the
    learning-time speed-up; ``n_test`` held-out rows, ``machines`` fitted."""
    ll_r, ll_g = float(table.loc["reduction", "loglik"]), float(table.loc["global", "loglik"])
    t_r, t_g = float(table.loc["reduction", "time"]), float(table.loc["global", "time"])
    return {"ll_reduction": ll_r, "ll_global": ll_g, "gap": ll_g - ll_r, "learning_time": t_r, "global_time": t_g,
            "speedup": t_g / max(t_r, 1e-9), "n_test": int(n_test), "machines": int(machines)}


def real_flights(figs: dict, parts: dict, target_speedup: float, cost_text: str = "") -> Evidence:
    """``figs``: the flights lesson's figures (:func:`real_flights_figures`); ``parts``:
    {term: seconds} of the reduction's learning time.  Below ``target_speedup`` the sentence says
    why (the largest part of the learning time) and adds ``cost_text``, this server's cost model on
    the run's sizes."""
    ll, t = METRIC_LABELS["loglik"], METRIC_LABELS["time"]
    sentence = (
        f"In the metrics table ({figs['n_test']:,} held-out flights), column *{ll}*: "
        f"**{metric_cell(figs['ll_reduction'])}** for the reduction against **{metric_cell(figs['ll_global'])}** "
        f"for the global EM, a gap of **{explain.nats(figs['gap'])}**. Column *{t}*: "
        f"**{metric_cell(figs['learning_time'])}** (the learning time, {figs['machines']} machines in parallel) "
        f"against **{metric_cell(figs['global_time'])}**, ")
    if figs["speedup"] >= target_speedup:
        sentence += f"a speed-up of **{explain.times(figs['speedup'])}**."
    else:
        sentence += (f"short of {target_speedup:.0f}x. "
                     + explain.speedup_sentence(parts, figs["global_time"], figs["machines"])
                     + (" " + cost_text if cost_text else ""))
    rows, cols = ("reduction", "global"), (ll, t)
    return Evidence(sentence, cells={"metrics": [(r, c) for r in rows for c in cols]}, boxes=("flights",))


def real_flights_box(figs: dict, parts: dict, target: dict) -> str:
    """The flights lesson's box (markdown): its figures next to ``target`` ({"gap": nats per point,
    "speedup": x}), and the learning time's largest part, which :func:`real_flights` quotes when
    the speed-up falls short."""
    big = max(parts, key=parts.get)
    return (f"| | this run (on this server) | target |\n|---|---|---|\n"
            f"| held-out log-likelihood, global EM minus reduction | **{explain.nats(figs['gap'])}** "
            f"| at most {explain.nats(target['gap'])} |\n"
            f"| learning-time speed-up over the global EM | **{explain.times(figs['speedup'])}** "
            f"| {target['speedup']:.0f}x |\n"
            f"| global EM time | **{explain.seconds(figs['global_time'])}** | |\n"
            f"| learning time ({figs['machines']} machines in parallel) | **{explain.seconds(figs['learning_time'])}** "
            f"| |\n| its largest part: {big} | **{explain.seconds(parts[big])}** | |")
