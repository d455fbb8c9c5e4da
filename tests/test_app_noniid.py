"""Issue 11 in the app: the split selector and machine weights on the Fit page, the machines
figure, the alpha sweep on the Experiments page, and the errors that keep the user's results."""

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # explorer/ is not installed

import warnings

import numpy as np
import pytest
from app_helpers import plain_title, run_sweep

import explorer.figures
from moecore import DistributedMoE
from moecore.simulation import simulate_design
from moecore.splits import machine_labels
from tests.test_app_errors import errors, small_csv
from tests.test_app_pages import new_app


# ------------------------------------------------------------------------------------ figure
def _region_fit(design, M, weights):
    sim = simulate_design(design, 4000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(sim.params.n_experts, M, backend="sequential", random_state=0, split="region",
                            machine_weights=weights).fit(sim.X, sim.y)
    return sim, dm


def test_machines_figure_shows_one_band_per_machine_and_the_weights_used():
    sim, dm = _region_fit("teaching-1d", 4, "covariate")
    lab = machine_labels(dm.shards_, 4000)
    fig = explorer.figures.machines_figure(sim.X, lab, support_X=dm.support_X_, support_weights=dm.support_weights_)
    assert plain_title(fig) and "covariate weights" in plain_title(fig)
    rows, *areas = fig.data
    # Top: one row per machine, counts of its rows per bin of x: every row counted once, and
    # machine m's rows only in bins that overlap its quarter of x (a region split).
    counts, edges = np.asarray(rows.customdata), np.asarray(rows.x)
    assert rows.type == "heatmap" and list(rows.y) == [1, 2, 3, 4]
    assert counts.sum() == 4000 and np.array_equal(counts.sum(axis=1), np.bincount(lab))
    assert np.allclose(np.asarray(rows.z).sum(axis=1), 100.0)
    for m in range(4):
        held = np.flatnonzero(counts[m] > 0)
        assert edges[held[0] + 1] > np.quantile(sim.X[:, 0], m / 4)
        assert edges[held[-1]] < np.quantile(sim.X[:, 0], (m + 1) / 4)
        assert held.size <= len(edges) // 4 + 2  # about a quarter of the 30 bins, not all of them
    # Bottom: one stacked weight curve per machine, summing to one in every bin, and machine 1
    # holds all the weight at the far left.
    assert len(areas) == 4
    W = np.array([a.y for a in areas])
    assert np.allclose(W.sum(axis=0), 1.0)
    assert W[0, 0] == pytest.approx(1.0)


def test_machines_figure_constant_weights_and_projection():
    sim, dm = _region_fit("separated-2d", 4, "constant")
    lab = machine_labels(dm.shards_, 4000)
    fig = explorer.figures.machines_figure(sim.X, lab, feature=1, x_names=["a", "b"], shares=dm.weights_)
    assert "constant weights" in plain_title(fig) and fig.layout.xaxis2.title.text == "b"
    W = np.array([a.y for a in fig.data[1:]])
    assert np.allclose(W[:, 0], dm.weights_)
    proj = explorer.figures.machines_figure(sim.X, lab, feature="projection")
    assert "principal components" in plain_title(proj)
    assert len(proj.data) == 1 and len(proj.data[0].x) == 4000


# ------------------------------------------------------------------------------------ pages
def test_fit_page_region_split_uses_covariate_weights_and_draws_the_machines():
    at = new_app({"M": "4", "backend": "sequential"})
    before = at.session_state["fit"]
    assert before.dm.machine_weights_used_ == "constant"
    at.selectbox(key="cfg_split").select("region").run()
    at.slider(key="cfg_split_alpha").set_value(0.25).run()
    at.button(key="btn_fit").click().run()
    assert errors(at) == ""
    fit = at.session_state["fit"]
    assert fit is not before and fit.settings["split"] == "region"
    assert fit.dm.split.kind == "region" and fit.dm.split.alpha == 0.25
    assert fit.dm.machine_weights_used_ == "covariate"
    assert any("covariate" in c.value for c in at.caption)
    assert "fit_machines" in [c.key for c in at.get("plotly_chart")]
    assert at.session_state["_cfg"]["split"] == "region" and at.session_state["_cfg"]["split_alpha"] == 0.25
    # Forcing constant weights refits with them.
    at.radio(key="cfg_machine_weights").set_value("constant").run()
    at.button(key="btn_fit").click().run()
    assert at.session_state["fit"].dm.machine_weights_used_ == "constant"


def test_label_split_without_labels_shows_error_and_keeps_results():
    csv = small_csv(400)
    at = new_app()
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="csv_upload").upload("small.csv", csv, "text/csv").run()
    at.button(key="btn_use_csv").click().run()
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_M").set_value(2).run()
    at.button(key="btn_fit").click().run()
    before = at.session_state["fit"]
    at.selectbox(key="cfg_split").select("label").run()
    at.button(key="btn_fit").click().run()
    text = errors(at)
    assert "label-skew split needs the true expert" in text and "previous results stay on screen" in text
    assert at.session_state["fit"] is before


def test_experiments_alpha_sweep_compares_the_weights_with_the_global_em():
    at = new_app()
    at.switch_page("pages/experiments.py").run()
    run_sweep(at, "alpha", "0, 1", n=4000, M=4, design="teaching-1d", split="region")
    assert errors(at) == ""
    rows = at.session_state["sweep_rows"]
    assert len(rows) == 6
    assert {r["method"] for r in rows} == {"constant weights", "covariate weights", "global"}
    rpe = {(r["value"], r["method"]): r["rpe"] for r in rows}
    # Separated machines: constant weights far off, covariate weights near the global EM.
    assert rpe[(0.0, "constant weights")] > 1.5 * rpe[(0.0, "global")]
    assert rpe[(0.0, "covariate weights")] < 1.1 * rpe[(0.0, "global")]
    at.text_input(key="exp_values_alpha").input("0, 1.5").run()
    at.button(key="btn_sweep").click().run()
    assert "alpha must lie between 0" in errors(at)
