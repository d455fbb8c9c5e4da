"""Lessons point at their evidence: every figure a lesson's sentence quotes (in bold) is the text
of a cell or box the page highlights (explorer.evidence), formatted as the page formats it."""

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from explorer import evidence as ev
from explorer import explain as ex
from explorer import tables
from moecore.costs import FitCosts

METHODS = ["reduction", "reduction, one-shot", "global", "weighted average", "median", "single machine",
           "average, unaligned"]


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    cols = ["time", "rpe", "correlation", "loglik", "ari", "mse_gates", "mse_experts", "mse_variances",
            "gap_gates", "gap_experts", "gap_variances"]
    t = pd.DataFrame(rng.uniform(1e-7, 1, (len(METHODS), len(cols))), index=METHODS, columns=cols)
    t.loc["global", ["gap_gates", "gap_experts", "gap_variances"]] = np.nan
    return t


def bold(sentence):
    return re.findall(r"\*\*(.+?)\*\*", sentence)


def shown_cells(ev_, tables_):
    """The text of every highlighted cell, formatted as the page formats that table."""
    out = []
    for name, cells in ev_.cells.items():
        df, fmt = tables_[name]
        out += [fmt(df.loc[r, c]) for r, c in cells]
    return out


def page_tables(table):
    metrics = table[[c for c in ev.METRIC_LABELS if c in table]].rename(columns=ev.METRIC_LABELS)
    return {"metrics": (metrics, ev.metric_cell), "blocks": (tables.block_errors(table), ev.block_cell)}


@pytest.mark.parametrize("which", ["label_switching", "rounds"])
def test_every_bold_figure_is_a_highlighted_cell(table, which):
    e = ev.label_switching(table) if which == "label_switching" else ev.rounds(table, 3)
    shown = shown_cells(e, page_tables(table))
    quoted = [b for b in bold(e.sentence) if re.search(r"\d", b)]
    assert quoted and all(q in shown for q in quoted), (quoted, shown)
    # ...and the rows and columns the sentence names are those highlighted.
    for name, cells in e.cells.items():
        df = page_tables(table)[name][0]
        for r, c in cells:
            assert r in df.index and c in df.columns


def test_rounds_names_the_rows_that_exist(table):
    e = ev.rounds(table, 3)
    assert "*reduction, one-shot*" in e.sentence and "*reduction*" in e.sentence
    assert ev.GATES_VS_GLOBAL in tables.block_errors(table).columns


def test_highlight_styles_exactly_the_cells(table):
    df = page_tables(table)["metrics"][0]
    html = ev.highlight(df, [("reduction", "RPE")], ev.metric_cell).to_html()
    assert html.count(ev.HIGHLIGHT) == 1


# The fit's costs: slowest local fit 0.050 s + screening 0.002 s + reduction 0.060 s = 0.112 s.
COSTS = FitCosts(local=np.array([0.04, 0.05]), local_cpu=np.array([0.04, 0.05]), one_shot_up=np.zeros(2),
                 screening=0.002, reduction=0.06, reduction_cpu=0.06, wall=2.66)


def test_headline_quotes_figures_as_the_fit_page_shows_them():
    e = ev.headline(COSTS, 2.21, 128, 2, 2, {"rpe_reduction": 9.91, "rpe_global": 9.88},
                    {"rpe_reduction": 1.45, "rpe_global": 1.03})
    q = bold(e.sentence)
    # The Fit page's metrics: f"{x:.3f} s" and f"{speed-up:.1f}x"; the lesson's table: f"{rpe:.2f} %".
    assert {"19.7x", "2.210 s", "0.112 s", "2.660 s", "0.060 s", "9.91 %", "1.45 %"} <= set(q)
    assert {"speedup", "wall", "global", "learning", "timing", "paper"} <= set(e.boxes)


def test_bad_machine_quotes_the_warning_and_says_which_curve():
    rep = SimpleNamespace(flagged=[7], scores=np.array([-1.0] * 7 + [-1.4312] + [-1.0] * 8),
                          threshold=np.full(16, -1.1021), actions={7: "refit"})
    e = ev.bad_machine(rep)
    assert bold(e.sentence) == ["8", "-1.4312", "-1.1021"]
    assert "refit's" in e.sentence and e.boxes == ("screening",)
    line, details = ex.screening_summary(rep, 16)  # one machine: its details in the warning's line
    assert "machine 8 scored -1.4312 per point, below the threshold -1.1021" in line and details == []


def test_a_machine_flagged_on_its_own_rows_is_explained_by_its_gain():
    gain = np.full(16, np.nan)
    gain[3] = 0.2417
    rep = SimpleNamespace(flagged=[3], cross_flagged=[3], cross_gain=gain, scores=np.full(16, -1.0),
                          threshold=np.full(16, -1.1021), actions={3: "refit"})
    e = ev.bad_machine(rep)
    assert bold(e.sentence) == ["4", "0.2417"] and "threshold" not in e.sentence
    line, _ = ex.screening_summary(rep, 16)
    assert "machine 4's own rows were explained 0.2417 nats per row better" in line and "threshold" not in line


def test_non_iid_quotes_the_test():
    e = ev.non_iid(COSTS, 0.04, 8, 2, 2, "covariate", SimpleNamespace(p_value=1.2e-30))
    assert "**covariate**" in e.sentence and "**1.2e-30**" in e.sentence and "weights" in e.boxes


@pytest.mark.parametrize("global_time", [0.5, 50.0])  # a speed-up short of the target, and one beyond it
def test_real_flights_quotes_cells_and_its_box(table, global_time):
    """Every bold figure of the flights lesson is a highlighted cell of the metrics table or in its
    box; the reason and the cost model's text come only when the speed-up falls short of the target."""
    parts = COSTS.learning_time_parts()
    table.loc["reduction", "time"], table.loc["global", "time"] = COSTS.learning_time, global_time
    figs = ev.real_flights_figures(table, 65_469, 64)
    assert figs["gap"] == table.loc["global", "loglik"] - table.loc["reduction", "loglik"]
    assert figs["speedup"] == pytest.approx(global_time / 0.112)
    e = ev.real_flights(figs, parts, 10.0, "COST MODEL TEXT")
    box = ev.real_flights_box(figs, parts, {"gap": 0.002, "speedup": 10.0})
    shown = shown_cells(e, page_tables(table))
    quoted = [b for b in bold(e.sentence) if re.search(r"\d", b)]
    assert len(quoted) >= 6 and all(q in shown or f"**{q}**" in box for q in quoted), (quoted, shown, box)
    assert e.boxes == ("flights",) and {c for _, c in e.cells["metrics"]} == {"log-lik / n", "time (s)"}
    short = figs["speedup"] < 10
    assert ("COST MODEL TEXT" in e.sentence) == short and ("short of 10x" in e.sentence) == short
    assert ("reduction (**0.060 s**)" in e.sentence) == short  # the largest part, named with its time
