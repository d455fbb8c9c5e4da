"""The app on real data: the shipped flights from the Data page's picker, fitted over 64 machines, and
the small-shard rule shown next to M and S before a run (AppTest, a real Streamlit script run)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

import numpy as np
import pytest
from app_helpers import load_real

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

import explorer.io

ROOT = Path(__file__).resolve().parents[1]


def clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture(scope="module")
def at():
    return clean(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run())


def test_flights_in_one_click_then_64_machines(at):
    at.switch_page("pages/data.py").run()
    at.radio(key="cfg_source").set_value("real").run()
    at.button(key="btn_real").click().run()
    clean(at)
    data = at.session_state["data"]
    assert (data.name, data.n, data.x_names, data.y_name) == ("flights", 327_346,
                                                               ["dep_delay", "distance", "hour"], "arr_delay")
    assert at.session_state["_cfg"]["K"] == 3
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_M").set_value(64).run()
    assert any("enough for the reduction" in c.value for c in at.caption)
    at.button(key="btn_fit").click().run()
    clean(at)
    fit = at.session_state["fit"]
    assert fit.data_key == data.key and len(fit.dm.local_models_) == 64 and fit.dm.params_.n_experts == 3
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download predictions on the data (CSV)" in labels
    # Apply a saved model: the reduced model's JSON, as downloaded, back onto the data.
    doc = explorer.io.model_to_json(fit.dm.params_, {"x_names": data.x_names, "y_name": data.y_name})
    at.file_uploader(key="apply_model_upload").upload("reduced_model.json", doc.encode(), "application/json").run()
    clean(at)
    shown = at.dataframe[-1].value
    assert list(shown.columns[:5]) == ["dep_delay", "distance", "hour", "arr_delay", "prediction"]
    np.testing.assert_allclose(shown["prediction"], fit.dm.predict(data.X[:8]), rtol=1e-12)
    # The settings travel in the share link: the real data set is shipped, so a link reopens it.
    code = " ".join(c.value for c in at.get("code"))
    assert "src=real" in code and "M=64" in code


def test_a_link_reopens_the_real_data():
    # The flights are larger than what a link may fit by itself (the per-session budget): the link
    # reopens the data and the settings, and the page says to press Run instead of fitting.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["src"] = "real"
    at.query_params["M"] = "64"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["data"].name == "flights" and at.session_state["_cfg"]["M"] == 64
    assert "fit" not in at.session_state
    assert any("larger than a link starts by itself" in e.value and "press Run" in e.value for e in at.info)


def test_small_shards_are_flagged_before_the_run(at):
    # mcycle (133 rows) with its usual K = 3 over 4 machines: the configuration of the issue.
    load_real(at, "mcycle")
    clean(at)
    assert at.session_state["data"].n == 133 and at.session_state["_cfg"]["K"] == 3
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_M").set_value(4).run()
    text = " ".join(w.value for w in at.warning)
    assert "33 rows per machine for 13 parameters" in text and "use at most 1 machine(s) for K = 3" in text
    at.number_input(key="cfg_M").set_value(1).run()
    assert not any("rows per machine" in w.value for w in at.warning)


def test_k_view_marks_the_chosen_k():
    at = clean(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run())  # teaching-1d, K = 3
    at.switch_page("pages/experiments.py").run()
    at.text_input(key="k_values").input("2, 3, 4").run()
    at.button(key="btn_choose_k").click().run()
    clean(at)
    _, name, sel = at.session_state["k_selection"]
    assert name == "teaching-1d" and list(sel.table["K"]) == [2, 3, 4]
    assert sel.chosen_global == 3 and sel.chosen_distributed == 3
    assert any("BIC chooses **K = 3** for the global EM and **K = 3** for the distributed fit" in m.value
               for m in at.markdown)
    for typed in ("0, 2", "1, \u00b2, 3"):  # a superscript two passed isdigit() and int() raised its own words
        at.text_input(key="k_values").input(typed).run()
        at.button(key="btn_choose_k").click().run()
        assert at.error[0].value == "K values must be distinct whole numbers from 1 to 10. Type them as 1, 2, 3, 4."
    assert at.session_state["k_selection"][2] is sel  # the previous result stays
    # A K too many for the Fit page's machines (faithful's 272 rows over 16: K = 10 needs 21 a machine) is left
    # out, the others computed (one such K failed them all, in the Fit page's words, until 2026-12-06).
    load_real(at, "faithful")
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_M").set_value(16).run()
    at.switch_page("pages/experiments.py").run()
    at.text_input(key="k_values").input("1, 2, 10").run()
    at.button(key="btn_choose_k").click().run()
    clean(at)
    assert list(at.session_state["k_selection"][2].table["K"]) == [1, 2]
    assert any(i.value.startswith("K = 10 left out: too many experts for 16 machines of about 17 rows")
               for i in at.info)


def test_experiments_sweep_the_current_real_data():
    """A shipped real set picked on the Data page is what the Experiments page sweeps: its own rows,
    each repeat holding out a random 20 % (no design offered, no truth-based metric)."""
    at = clean(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run())
    at.switch_page("pages/experiments.py").run()
    assert not at.get("radio") or "exp_data" not in [r.key for r in at.radio]  # simulated data: designs only
    load_real(at, "faithful")
    at.switch_page("pages/experiments.py").run()
    # New real data: the sweeps start on them (they started on a design until 2026-12-06), and the greyed n
    # box shows their training rows (it showed the design's 20 000).
    assert at.radio(key="exp_data").value == "current"
    assert "alpha" not in at.radio(key="exp_parameter").options
    assert at.number_input(key="exp_n_current").disabled and at.number_input(key="exp_n_current").value == 217
    assert at.number_input(key="exp_K").value == 2  # the real set's own K, as on the Fit page
    # Going back to a design stays a choice.
    at.radio(key="exp_data").set_value("design").run()
    assert at.radio(key="exp_data").value == "design" and not at.number_input(key="exp_n").disabled
    at.radio(key="exp_data").set_value("current").run()
    at.text_input(key="exp_values_n_machines").input("1, 2").run()
    at.number_input(key="exp_repeats").set_value(2).run()
    at.number_input(key="exp_seed").set_value(4).run()
    at.button(key="btn_sweep").click().run()
    clean(at)
    rows = at.session_state["sweep_rows"]
    assert len(rows) == 8
    assert {(r["design"], r["n"], r["n_test"], r["K"], r["seed"]) for r in rows} == {("faithful", 217, 55, 2, 4)}
    assert "mse_gates" not in rows[0] and at.selectbox(key="exp_metric").value == "loglik"  # no truth on data
    assert any("data **faithful**" in c.value and "random 20 %" in c.value for c in at.caption)
    # The rows are those of moecore's sweep on the same data and seed: the page adds nothing of its own.
    from moecore.datasets import load_dataset
    from moecore.experiments import sweep

    ds = load_dataset("faithful")
    s = at.session_state["_cfg"]
    again = list(sweep("faithful", "n_machines", [1, 2], data=(ds.X, ds.y), n_experts=2, repeats=2, random_state=4,
                       n_init=s["exp_restarts"], backend="sequential", variance_update=s["exp_var"]))
    assert [r["rpe"] for r in again] == [r["rpe"] for r in rows]
    # A sweep over n beyond the training rows is refused before any fit, the results kept.
    at.radio(key="exp_parameter").set_value("n").run()
    at.text_input(key="exp_values_n").input("100, 250").run()
    at.button(key="btn_sweep").click().run()
    assert "at most the 217 training rows" in at.error[0].value
    assert at.session_state["sweep_rows"] == rows


def test_the_fit_page_says_where_a_speed_up_on_small_data_comes_from():
    # faithful (272 rows) over 2 machines: the global EM repeats its portfolio (4 of them, every start
    # continued), the local fits do not. The cost model times that and the page says it, next to the
    # measured speed-up, instead of a global EM of a few milliseconds and a speed-up below 1.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"src": "real", "real": "faithful", "K": "2", "M": "2"})
    clean(at.run())
    assert at.session_state["data"].name == "faithful" and "fit" in at.session_state
    pays = [c.value for c in at.caption if "When does distribution pay?" in c.value]
    assert len(pays) == 1, [c.value for c in at.caption]
    assert "On 272 rows the global EM runs 4 whole portfolios of starts" in pays[0]
    assert "Past 1,000 rows, where the global EM runs one portfolio" in pays[0]
