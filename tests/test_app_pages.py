"""Every page under streamlit.testing.v1.AppTest: default run without exceptions, each main
widget changed once, results kept in session state, settings shared through the URL."""

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # explorer/ is not installed


from pathlib import Path

import numpy as np
import pytest
from app_helpers import run_sweep
from streamlit.testing.v1 import AppTest

import explorer.io

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["pages/data.py", "pages/fit.py", "pages/compare.py", "pages/experiments.py", "pages/learn.py"]
TITLES = {"pages/data.py": "Data", "pages/fit.py": "Distributed fit", "pages/compare.py": "Compare",
          "pages/experiments.py": "Experiments",
          "pages/learn.py": "Learn: distributed mixtures of experts in six steps"}


def new_app(query=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def clean(at):
    """No exception and no st.error on the page; returns at for chaining."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def charts(at):
    return len(at.get("plotly_chart"))


@pytest.fixture()
def at():
    """A fresh session on the first page: no test depends on what another left in it."""
    return clean(new_app())


def test_first_load_shows_a_fitted_distributed_model(at):
    assert at.title[0].value == "Distributed fit"
    fit = at.session_state["fit"]
    assert fit.settings["K"] == 3 and fit.settings["M"] == 8
    assert len(fit.dm.local_models_) == 8 and fit.dm.params_.n_experts == 3
    assert fit.data_key == at.session_state["data"].key
    assert charts(at) >= 7
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["machines M / experts K"] == "8 / 3"
    assert metrics["supporting sample S"] == f"{20_000 // 32:,}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_by_default(at, page):
    at.switch_page(page).run()
    clean(at)
    assert at.title[0].value == TITLES[page]
    # The Experiments page draws its charts once a sweep ran; every other page has one at once.
    assert (charts(at) >= 1) == (page != "pages/experiments.py")


def test_data_page_widgets(at):
    at.switch_page("pages/data.py").run()
    before = at.session_state["data"].key
    at.selectbox(key="cfg_design").select("separated-2d").run()
    at.number_input(key="cfg_n").set_value(3000).run()
    at.number_input(key="cfg_seed").set_value(5).run()
    at.button(key="btn_generate").click().run()
    clean(at)
    data = at.session_state["data"]
    assert data.key != before and data.name == "separated-2d" and data.n == 3000 and data.d == 2
    # d > 1: one chosen input, or the 2-D projection
    at.selectbox(key="data_feature").select(1).run()
    assert "against x2" in at.get("plotly_chart")[0].proto.spec
    at.radio(key="data_view").set_value("2-D projection").run()
    clean(at)
    # Custom parameters: every knob once.
    at.radio(key="cfg_source").set_value("custom").run()
    at.number_input(key="cfg_custom_K").set_value(2).run()
    at.number_input(key="cfg_custom_d").set_value(3).run()
    at.slider(key="cfg_custom_sep").set_value(4.0).run()
    at.slider(key="cfg_custom_gate").set_value(2.0).run()
    at.slider(key="cfg_custom_var").set_value(0.2).run()
    at.selectbox(key="cfg_x_dist").select("gaussian").run()
    at.number_input(key="cfg_x_scale").set_value(2.0).run()
    at.button(key="btn_generate").click().run()
    clean(at)
    data = at.session_state["data"]
    assert data.truth.n_experts == 2 and data.d == 3 and data.source == "custom"
    np.testing.assert_allclose(data.truth.variances, 0.2)
    assert len(at.get("download_button")) == 1


def test_model_json_drives_the_custom_simulation(at):
    at.switch_page("pages/data.py").run()
    at.radio(key="cfg_source").set_value("custom").run()
    from moecore.simulation import get_design

    prm = get_design("two-experts-1d").params
    at.file_uploader(key="model_upload").upload("m.json", explorer.io.model_to_json(prm).encode(),
                                                "application/json").run()
    clean(at)
    at.button(key="btn_generate").click().run()
    data = at.session_state["data"]
    np.testing.assert_allclose(data.truth.experts, prm.experts)
    assert data.name.startswith("exact parameters")


def test_typed_parameters_drive_the_custom_simulation(at):
    at.switch_page("pages/data.py").run()
    at.radio(key="cfg_source").set_value("custom").run()
    at.file_uploader(key="model_upload").clear().run()  # an uploaded model file would take priority
    text = '{"gates": [[0, 0], [2, 0]], "experts": [[1, -1], [0.5, 2]], "variances": [0.3, 0.1]}'
    at.text_area(key="custom_params_text").input(text).run()
    at.checkbox(key="use_custom_text").check().run()
    clean(at)
    at.button(key="btn_generate").click().run()
    data = at.session_state["data"]
    np.testing.assert_allclose(data.truth.experts, [[1, -1], [0.5, 2]])
    np.testing.assert_allclose(data.truth.variances, [0.3, 0.1])
    at.checkbox(key="use_custom_text").uncheck().run()


def test_csv_upload_path(at):
    at.switch_page("pages/data.py").run()
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 400)
    z = rng.normal(size=400)
    y = np.where(x < 0, 1 + 2 * x, -1 - x) + 0.1 * rng.normal(size=400)
    rows = (f"{p:.4f},{q:.4f},{r:.4f},n{i}" for i, (p, q, r) in enumerate(zip(x, z, y, strict=True)))
    csv = "a,b,resp,note\n" + "\n".join(rows)
    at.file_uploader(key="csv_upload").upload("mine.csv", csv.encode(), "text/csv").run()
    clean(at)
    at.selectbox(key="csv_y").select("resp").run()
    assert set(at.multiselect(key="csv_x").value) == {"a", "b"}  # the text column is not offered by default
    at.multiselect(key="csv_x").unselect("b").run()
    at.button(key="btn_use_csv").click().run()
    clean(at)
    data = at.session_state["data"]
    assert data.source == "csv" and data.n == 400 and data.x_names == ["a"] and data.y_name == "resp"
    assert data.truth is None
    assert at.success and "Loaded 400 rows" in at.success[0].value


def test_fit_page_widgets_and_plot_options_do_not_refit(at):
    at.switch_page("pages/data.py").run()
    at.radio(key="cfg_source").set_value("design").run()
    at.selectbox(key="cfg_design").select("teaching-1d").run()
    at.number_input(key="cfg_n").set_value(6000).run()
    at.button(key="btn_generate").click().run()
    at.switch_page("pages/fit.py").run()
    assert at.warning, "a fit of older data must say so"
    at.number_input(key="cfg_K").set_value(3).run()
    at.number_input(key="cfg_M").set_value(4).run()
    at.checkbox(key="cfg_support_size_rule").uncheck().run()
    at.number_input(key="cfg_support_size").set_value(300).run()
    at.number_input(key="cfg_restarts").set_value(2).run()
    at.number_input(key="cfg_mm_restarts").set_value(2).run()
    at.selectbox(key="cfg_backend").select("sequential").run()
    at.number_input(key="cfg_n_jobs").set_value(1).run()
    at.number_input(key="cfg_fit_seed").set_value(3).run()
    at.radio(key="cfg_variance_update").set_value("authors").run()
    at.selectbox(key="cfg_gate_targets").set_value("posterior").run()
    at.button(key="btn_fit").click().run()
    clean(at)
    fit = at.session_state["fit"]
    assert fit.data_key == at.session_state["data"].key
    assert fit.settings["M"] == 4 and fit.settings["backend"] == "sequential"
    assert len(fit.dm.support_indices_) == 300 and fit.dm.variance_update == "authors"
    assert not at.warning
    # Plot options: the same fit object stays in the session (nothing refitted).
    at.checkbox(key="fit_show_local").uncheck().run()
    at.checkbox(key="fit_show_data").uncheck().run()
    at.selectbox(key="fit_coef_a").select("slope x1").run()
    at.selectbox(key="fit_coef_b").select("intercept").run()
    clean(at)
    assert at.session_state["fit"] is fit
    assert len(at.get("download_button")) == 2  # the model JSON and the predictions


def test_settings_survive_page_switches_and_go_to_the_url():
    at = clean(new_app())
    assert at.query_params.get("M") != "5"
    at.number_input(key="cfg_M").set_value(5).run()
    at.selectbox(key="cfg_backend").select("sequential").run()
    at.switch_page("pages/learn.py").run()
    at.switch_page("pages/fit.py").run()
    clean(at)
    assert at.session_state["_cfg"]["M"] == 5 and at.session_state["_cfg"]["backend"] == "sequential"
    assert at.number_input(key="cfg_M").value == 5
    # The address bar mirrors the settings: the link a user copies reopens them.
    assert at.query_params["M"] == "5" and at.query_params["backend"] == "sequential"


def test_a_repeated_url_parameter_is_named_with_the_value_used():
    # A hand-edited link with M twice took the last in silence.
    at = clean(new_app({"M": ["4", "5"], "K": "3"}))
    assert [w.value for w in at.warning] == ["Repeated URL parameter(s): M given 2 times (4, 5): the last, 5, is used."]
    assert at.session_state["_cfg"]["M"] == 5 and at.session_state["_cfg"]["K"] == 3
    assert not at.run().warning  # said once: the address now holds one M


def test_compare_page(at):
    at.switch_page("pages/compare.py").run()
    clean(at)
    at.button(key="btn_compare").click().run()
    clean(at)
    cmp = at.session_state["compare"]["cmp"]
    table = cmp.table()
    assert list(table.index) == ["reduction", "global", "weighted average", "median", "single machine"]
    assert {"rpe", "correlation", "loglik", "time", "ari", "mse_all", "transport_divergence"} <= set(table.columns)
    assert at.table and charts(at) == 1


def test_experiments_page_sweep(at):
    at.switch_page("pages/experiments.py").run()
    at.selectbox(key="exp_design").select("two-experts-1d").run()
    at.radio(key="exp_parameter").set_value("support_fraction").run()
    run_sweep(at, "n_machines", "2, 4", n=3000, M=4, variance="authors")
    clean(at)
    rows = at.session_state["sweep_rows"]
    assert len(rows) == 4 and {r["method"] for r in rows} == {"reduction", "global"}
    assert "Finished: 4 fits" in at.info[0].value
    assert charts(at) == 3
    at.selectbox(key="exp_metric").select("ari").run()
    at.checkbox(key="exp_global").uncheck().run()
    clean(at)
    assert len(at.get("download_button")) == 1


def test_a_cancelled_sweep_keeps_its_rows_while_the_old_run_still_appends(at):
    # On Cancel, Streamlit starts the next run in a new thread at once (runner.fastReruns) while the
    # old run finishes its fit and appends one more row to the list it holds. The next run must not
    # read that list: built into a DataFrame while a row was appended, it raised "Length of values
    # (2) does not match length of index (3)" in a browser test.
    at.switch_page("pages/experiments.py").run()
    at.selectbox(key="exp_design").select("two-experts-1d").run()
    run_sweep(at, "n_machines", "2, 4", n=3000, M=4)
    old = at.session_state["sweep_rows"]
    assert len(old) == 4
    at.session_state["sweep_running"] = True  # as if the sweep were still running
    at.button(key="btn_cancel").click().run()
    clean(at)
    assert any("Cancelled after 4 runs" in i.value for i in at.info)
    old.append(dict(old[-1], repeat=99))  # the old run's thread, after the cancel
    at.run()
    clean(at)
    assert len(at.session_state["sweep_rows"]) == 4


def test_learn_page_steps_through_mm(at):
    at.switch_page("pages/learn.py").run()
    clean(at)
    assert at.session_state["learn_step"] == 0
    at.button(key="learn_next").click().run()
    at.button(key="learn_next").click().run()
    assert at.session_state["learn_step"] == 2
    at.button(key="learn_prev").click().run()
    assert at.session_state["learn_step"] == 1
    at.button(key="learn_reset").click().run()
    assert at.session_state["learn_step"] == 0
    at.slider(key="cfg_learn_M").set_value(3).run()
    at.radio(key="cfg_learn_init").set_value("kmeans").run()
    at.number_input(key="cfg_learn_seed").set_value(2).run()
    clean(at)
    assert charts(at) == 4
    assert "Iteration 0 of" in at.markdown[-1].value or any("Iteration 0 of" in m.value for m in at.markdown)


def test_url_settings_are_applied_on_first_load():
    at = clean(new_app({"K": "2", "M": "4", "n": "4000", "design": "two-experts-1d", "backend": "sequential"}))
    fit = at.session_state["fit"]
    assert fit.settings["K"] == 2 and fit.settings["M"] == 4
    assert at.session_state["data"].name == "two-experts-1d" and at.session_state["data"].n == 4000
    # The share box gives the same settings back as a URL.
    code = " ".join(c.value for c in at.get("code"))
    for part in ("K=2", "M=4", "n=4000", "design=two-experts-1d", "backend=sequential"):
        assert part in code


def test_bad_url_parameters_are_ignored_with_a_warning():
    at = new_app({"K": "abc", "backend": "gpu", "M": "100000"})
    assert not at.exception
    text = " ".join(w.value for w in at.warning)
    assert "K='abc'" in text and "backend='gpu'" in text and "M='100000'" in text
    assert at.session_state["fit"].settings["K"] == 3  # the defaults were used
