"""moecore.experiments.sweep: what a saved sweep records, and which fits it shares."""

import numpy as np
import pytest

from moecore.experiments import sweep

SETTINGS = {"design", "n", "M", "K", "seed", "fit_seed", "support", "restarts", "backend", "n_jobs",
            "variance_update", "refine_rounds", "n_test"}


def _rows(parameter, values, **kw):
    return list(sweep("two-experts-1d", parameter, values, n=2000, n_machines=2, repeats=2, n_test=1000,
                      random_state=5, backend="sequential", n_init=2, **kw))


def test_a_sweep_over_m_fits_the_global_em_once_per_repeat_and_records_its_settings():
    rows = _rows("n_machines", [2, 4])
    assert len(rows) == 8
    for r in rows:
        assert SETTINGS <= set(r), SETTINGS - set(r)
        assert r["design"] == "two-experts-1d" and r["n"] == 2000 and r["K"] == 2 and r["seed"] == 5
        assert r["restarts"] == 2 and r["backend"] == "sequential" and r["n_test"] == 1000
        assert r["M"] == r["value"] and r["support"] == 2000 // (4 * r["M"])  # the paper's floor(n / 4M)
    for rep in (0, 1):
        glob = [r for r in rows if r["method"] == "global" and r["repeat"] == rep]
        assert [g["global_reused"] for g in glob] == [False, True]
        # One fit reported at both M: the same measured time and the same model.
        assert glob[0]["time"] == glob[1]["time"] and glob[0]["rpe"] == glob[1]["rpe"]
    first = [r for r in rows if r["method"] == "global" and not r["global_reused"]]
    # Each repeat has its own data and fit: its model predicts the held-out set differently.
    assert first[0]["rpe"] != pytest.approx(first[1]["rpe"], rel=1e-12)


def test_a_sweep_over_n_fits_the_global_em_at_every_size():
    rows = _rows("n", [1000, 2000])
    glob = [r for r in rows if r["method"] == "global"]
    assert [g["global_reused"] for g in glob] == [False] * 4
    assert [g["n"] for g in glob] == [1000, 2000] * 2
    assert glob[0]["rpe"] != pytest.approx(glob[1]["rpe"], rel=1e-12)


def test_a_support_sweep_records_the_support_actually_used():
    rows = _rows("support_fraction", [0.5, 2])
    red = [r for r in rows if r["method"] == "reduction" and r["repeat"] == 0]
    assert [r["support"] for r in red] == [max(2, int(f * (2000 // 8))) for f in (0.5, 2)]


def test_experiments_page_controls_settings_and_labels():
    """K, restarts, seed and support reach every row; the fits run on the session's backend; the
    page shows readable labels and a categorical axis for a single value."""
    import json
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from explorer import tables

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.query_params["backend"] = "sequential"
    at.query_params["jobs"] = "1"
    at.run()
    at.switch_page("pages/experiments.py").run()
    at.selectbox(key="exp_design").select("two-experts-1d").run()
    assert at.number_input(key="exp_K").value == 2  # K follows the design
    at.text_input(key="exp_values_n_machines").input("4").run()
    at.number_input(key="exp_n").set_value(3000).run()
    at.number_input(key="exp_restarts").set_value(2).run()
    at.number_input(key="exp_seed").set_value(7).run()
    at.checkbox(key="exp_support_size_rule").uncheck().run()
    at.number_input(key="exp_support_size").set_value(150).run()
    at.number_input(key="exp_repeats").set_value(1).run()
    at.button(key="btn_sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = at.session_state["sweep_rows"]
    assert [r["method"] for r in rows] == ["reduction", "global"]
    for r in rows:
        assert (r["K"], r["M"], r["n"], r["restarts"], r["seed"], r["support"]) == (2, 4, 3000, 2, 7, 150)
        assert (r["backend"], r["n_jobs"]) == ("sequential", 1)
    assert "rpe" not in at.selectbox(key="exp_metric").options
    assert tables.label("mse_gates") in at.selectbox(key="exp_metric").options
    table = at.dataframe[0].value
    assert tables.label("rpe") in table.columns and "rpe" not in table.columns
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["type"] == "category"  # one value of M: no 3.999999 ... 4.000001 ticks


def test_a_sweep_over_k_fits_the_global_em_at_every_k_and_scores_bic():
    rows = _rows("n_experts", [1, 2, 3], n_experts=None)
    assert [r["K"] for r in rows if r["repeat"] == 0] == [1, 1, 2, 2, 3, 3]
    glob = [r for r in rows if r["method"] == "global"]
    assert not any(g["global_reused"] for g in glob)  # the global EM depends on K
    for rep in (0, 1):
        bic = {r["K"]: r["bic"] for r in rows if r["repeat"] == rep and r["method"] == "global"}
        ll = {r["K"]: r["loglik"] for r in rows if r["repeat"] == rep and r["method"] == "reduction"}
        # two-experts-1d has two well-separated experts: one line cannot fit them, on the
        # training rows (BIC) or on held-out ones.
        assert bic[2] < bic[1] and ll[2] > ll[1]


def test_k_values_are_checked_by_the_parameters_rule_before_any_fit():
    with pytest.raises(ValueError, match="n_experts must be"):
        sweep("two-experts-1d", "n_experts", [2, 0])  # refused when made, before any fit
    with pytest.raises(ValueError, match="parameter must be one of"):
        sweep("two-experts-1d", "K", [2])


def _data_rows(parameter, values, data, **kw):
    return list(sweep("faithful", parameter, values, data=data, n_machines=2, repeats=2, random_state=3,
                      backend="sequential", n_init=1, **kw))


def test_a_sweep_on_given_data_holds_out_a_random_split_per_repeat():
    from moecore.datasets import load_dataset

    ds = load_dataset("faithful")  # 272 eruptions
    rows = _data_rows("n_machines", [1, 2], (ds.X, ds.y), n_experts=2)
    for r in rows:
        # 20 % held out (train_test_split rounds the test share up), every other row fitted.
        assert (r["design"], r["n"], r["n_test"], r["K"]) == ("faithful", 217, 55, 2)
        assert "mse_gates" not in r and "ari" not in r  # no truth, no labels: real data
    glob = [r for r in rows if r["method"] == "global" and not r["global_reused"]]
    assert glob[0]["loglik"] != pytest.approx(glob[1]["loglik"], rel=1e-9)  # each repeat its own split
    # The same seed gives the same numbers whatever the backend and n_jobs.
    again = list(sweep("faithful", "n_machines", [1, 2], data=(ds.X, ds.y), n_machines=2, repeats=2,
                       random_state=3, backend="threading", n_jobs=2, n_init=1, n_experts=2))
    assert [r["rpe"] for r in again] == [r["rpe"] for r in rows]
    # A sweep over n takes nested subsets of the training rows, at most all of them.
    by_n = _data_rows("n", [150, 217], (ds.X, ds.y), n_experts=2)
    assert [r["n"] for r in by_n if r["method"] == "reduction"] == [150, 217] * 2
    with pytest.raises(ValueError, match="at most the 217 training rows"):
        _data_rows("n", [150, 250], (ds.X, ds.y), n_experts=2)
    with pytest.raises(ValueError, match="n_experts must be given with data"):
        _data_rows("n_machines", [2], (ds.X, ds.y))
    with pytest.raises(ValueError, match="test_size"):
        _data_rows("n_machines", [2], (ds.X, ds.y), n_experts=2, test_size=0.0)


def test_experiments_page_varies_k():
    """Vary K: each value is the K of its fits (the K box is greyed out), the global EM is fitted
    at every K, and the third chart opens on BIC."""
    from app_helpers import new_session

    from explorer import tables

    at = new_session("pages/experiments.py", {"backend": "sequential", "jobs": "1"})
    at.selectbox(key="exp_design").select("two-experts-1d").run()
    at.radio(key="exp_parameter").set_value("n_experts").run()
    assert at.number_input(key="exp_K").disabled
    at.text_input(key="exp_values_n_experts").input("1, 2").run()
    at.number_input(key="exp_n").set_value(3000).run()
    at.number_input(key="exp_M").set_value(2).run()
    at.number_input(key="exp_repeats").set_value(1).run()
    at.button(key="btn_sweep").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = at.session_state["sweep_rows"]
    assert [(r["method"], r["K"]) for r in rows] == [("reduction", 1), ("global", 1), ("reduction", 2), ("global", 2)]
    assert at.selectbox(key="exp_metric").value == "bic"
    assert tables.label("n_experts") in at.dataframe[0].value.index.names
    bic = {r["K"]: r["bic"] for r in rows if r["method"] == "global"}
    assert bic[2] < bic[1]  # two well-separated experts


def test_evaluate_judges_sharp_gates_by_their_probabilities_too():
    # Two step-like gates at the same place, slopes 200 and 2 000: every x is routed alike, the
    # coefficient MSE is about 8e5, and an app user read it with no explanation (a fourth audit).
    from moecore import MoEParams
    from moecore.experiments import evaluate

    experts, variances = np.array([[0.0, 1.0], [1.0, -1.0]]), np.array([0.1, 0.1])
    soft = MoEParams(np.array([[0.0, 0.0], [200.0, 0.0]]), experts, variances)
    steep = MoEParams(np.array([[0.0, 0.0], [2000.0, 0.0]]), experts, variances)
    X = np.linspace(-1, 1, 2001)[:, None] + 0.0005  # no point exactly on the step
    y = np.where(X[:, 0] > 0, X[:, 0], 1 - X[:, 0])
    out = evaluate(steep, X, y, truth=soft, reference=soft)
    assert out["mse_gates"] > 1e5 and out["gap_gates"] > 1e5
    assert out["mse_gate_proba"] < 1e-3 and out["gap_gate_proba"] == out["mse_gate_proba"]
