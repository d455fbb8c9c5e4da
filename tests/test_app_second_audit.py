"""A second hostile audit of the app (and the helpers behind it): what it found, each failing before.

An input of 1e300 crashed the Fit page (its colour matching met inf costs) and printed "inf %"; numbers
written with thousands separators vanished from the inputs without a word; a value swept twice was pooled
as independent repeats; a hand-edited model JSON reached pandas with a repeated column; a link's input of
the regions beyond the data's made the first fit fail; settings no fit can run with showed two different
"at most" numbers; K = 10 charts put their legends beside plots a third of their width.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

from app_helpers import new_session

from explorer import explain, figures
from explorer.io import InputError, parse_csv, parse_sweep_values, text_number_columns
from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.alignment import match_experts
from moecore.experiments import sweep


def _csv(frame):
    return frame.to_csv(index=False).encode()


def _upload(at, name, content, x_cols=None):
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="csv_upload").upload(name, content, "text/csv").run()
    if x_cols is not None:
        at.multiselect(key="csv_x").set_value(x_cols).run()
    at.button(key="btn_use_csv").click().run()
    assert not at.exception, [e.value for e in at.exception]


def _two_inputs(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] > 0, 2 * X[:, 0], -X[:, 1]) + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"x": X[:, 0], "z": X[:, 1], "y": y})


# ------------------------------------------------------------------------------ the library's side
def test_experts_are_matched_when_one_row_overflows_a_line():
    frame = _two_inputs()
    X, y = frame[["x", "z"]].to_numpy(), frame["y"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = MixtureOfExperts(3, random_state=0).fit(X, y).params_
    X_big = X.copy()
    X_big[7, 0] = 1e300  # a line of slope 2 reaches 2e300 there: its square overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warning either
        perm = match_experts(ref, ref.permute([2, 0, 1]), X_big)
    np.testing.assert_array_equal(perm, [1, 2, 0])  # the same matching as without the row
    np.testing.assert_array_equal(match_experts(ref, ref.permute([2, 0, 1]), X), perm)


def test_a_sweep_refuses_a_value_twice():
    with pytest.raises(ValueError, match="values holds 2 more than once"):
        sweep("teaching-1d", "n_machines", [2, 2, 4])
    with pytest.raises(InputError, match=r"0\.1 is given more than once"):
        parse_sweep_values("0.1, 0.1", "support_fraction", 8)
    assert parse_sweep_values("2, 4", "n_machines", 8) == [2, 4]


def test_numbers_with_separators_are_named():
    df = parse_csv(b'y,x,z,name,dec\n1,"-1,381.3",2,abc,"1,5"\n2,"12,000",3,def,"2,25"\n', "t.csv")
    assert text_number_columns(df, "y") == [("x", "-1,381.3"), ("dec", "1,5")]  # not "name", a text column
    assert parse_csv(b"y\tx\n1\t2\n3\t4\n", "t.tsv").columns.tolist() == ["y", "x"]  # a .tsv is read


def test_rpe_words_for_an_overflowed_prediction():
    assert explain.rpe_text(0.12345) == "12.345 %" and explain.rpe_text(np.inf) == "not finite"
    line = explain.accuracy_warning(np.inf, 0.5, "training")
    assert "not finite" in line and "outlying rows" in line and "inf" not in line.replace("infinite", "")


def test_long_legends_go_below_the_plot():
    sim = simulate_design("teaching-1d", 2000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(10, 4, random_state=0, backend="sequential").fit(sim.X, sim.y)
    many = figures.gates_figure({"reduced": dm.params_, "global EM": dm.local_models_[0].params_}, sim.X)
    assert many.layout.legend.orientation == "h" and many.layout.height > 420  # 20 entries
    few = figures.gates_figure({"reduced": dm.local_models_[0].params_.permute(list(range(10)))}, sim.X[:, :1])
    assert few.layout.legend.orientation is None  # 10 entries: beside the plot, as before
    rows = pd.DataFrame({"method": ["reduction"] * 4, "value": [2, 2, 4, 4], "rpe": [0.1, 0.12, 0.2, 0.22]})
    ticks = figures.sweep_figure(rows, "n_machines", "rpe").layout.xaxis
    assert list(ticks.tickvals) == [2, 4] and list(ticks.ticktext) == ["2", "4"]  # not 2.5, 3, 3.5


# ------------------------------------------------------------------------------ in the app (AppTest)
def test_an_input_of_1e300_is_fitted_and_said_not_crashed():
    frame = _two_inputs()
    frame.loc[7, "x"] = 1e300
    at = new_session()
    _upload(at, "hugex.csv", _csv(frame), ["x", "z"])
    at.switch_page("pages/fit.py").run()
    at.button(key="btn_fit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["fit"].data_key == at.session_state["data"].key
    captions = " ".join(c.value for c in at.caption)
    assert "Training RPE: reduction not finite" in captions or "reduction not finite" in captions
    shown = " ".join(w.value for w in at.warning)
    assert "Outlying rows" in shown and "inf %" not in shown and "infx" not in shown


def test_separated_numbers_are_named_on_the_data_page():
    frame = _two_inputs(200)
    text = frame.assign(x=[f"{1000 * v:,.1f}" for v in frame["x"]]).to_csv(index=False).encode()
    at = new_session("pages/data.py")
    at.file_uploader(key="csv_upload").upload("thousands.csv", text, "text/csv").run()
    assert not at.exception
    assert at.multiselect(key="csv_x").value == ["z"]
    assert any(w.value.startswith("Read as text, so not among the inputs: x (e.g.") for w in at.warning)


def test_settings_no_fit_can_run_say_so_once_before_the_run():
    at = new_session()
    _upload(at, "small.csv", _csv(_two_inputs(2000)))
    at.switch_page("pages/fit.py").run()
    before = at.session_state["fit"]
    at.number_input(key="cfg_K").set_value(10).run()
    at.number_input(key="cfg_M").set_value(256).run()
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and errs[0].startswith("These settings cannot run: M = 256")
    assert "the most that can run at all" in errs[0]
    assert not any(w.value.startswith("Small shards") for w in at.warning)  # no second "at most" number
    at.button(key="btn_fit").click().run()
    assert not at.exception and at.session_state["fit"] is before and len(at.error) == 1


def test_a_links_region_input_beyond_the_data_is_ignored():
    at = new_session(query={"split": "region", "sfeat": "5"})  # the built-in example has one input
    assert any(w.value.startswith("Ignored URL parameter(s): sfeat=5") for w in at.warning)
    assert "fit" in at.session_state and not [e.value for e in at.error]


def test_choose_k_box_says_what_to_type():
    at = new_session("pages/experiments.py")
    at.text_input(key="k_values").input("1, 2.5").run()
    at.button(key="btn_choose_k").click().run()
    assert [e.value for e in at.error] == [("K values must be distinct whole numbers from 1 to 10. Type them as "
                                           "1, 2, 3, 4.")]


# ------------------------------------------------------------------------------ a third audit (lessons, Compare)
def test_the_projector_toggle_stays_on_across_pages():
    """Each page draws its own toggle and Streamlit dropped its state on the next page: it switched off."""
    at = new_session("pages/lessons.py")
    at.toggle(key="big_text").set_value(True).run()
    for page in ("pages/data.py", "pages/compare.py", "pages/learn.py"):
        at.switch_page(page).run()
        assert not at.exception and at.toggle(key="big_text").value, page
    assert any("font-size: 20px" in m.value for m in at.markdown)  # larger text, not a zoom that cuts charts
    at.toggle(key="big_text").set_value(False).run()
    at.switch_page("pages/fit.py").run()
    assert not at.toggle(key="big_text").value


def test_a_heavy_first_comparison_waits_for_its_button():
    """Compare's first visit on 10^6 rows said "The comparison failed ... press Run on the Distributed fit
    page": nothing had failed, and the button to press was on Compare."""
    at = new_session("pages/data.py")
    at.number_input(key="cfg_n").set_value(1_000_000).run()
    at.button(key="btn_generate").click().run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not [e.value for e in at.error]
    assert any("press **Run the comparison** to start it" in i.value for i in at.info)
    assert "compare" not in at.session_state


def test_compare_says_small_shards_and_what_its_columns_are_against():
    """mcycle (133 rows) over 8 machines: Compare showed a held-out RPE of 141 % against 25 % with only the
    generic advice; and its caption spoke of the true model on data that have none."""
    at = new_session("pages/data.py")
    at.radio(key="cfg_source").set_value("real").run()
    at.selectbox(key="cfg_real_set").select("mcycle").run()
    at.button(key="btn_real").click().run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert any(w.value.startswith("Small shards: 13 rows per machine") for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "no true model: every column is against the global EM" in captions
    assert "against the true model" not in captions


@pytest.mark.parametrize("text, parameter, said", [("0", "n_machines", "got 0."), ("2.5", "n_machines", "got 2.5."),
                                                    ("2.5", "n_experts", "got 2.5.")])
def test_a_refused_sweep_value_is_quoted_as_typed(text, parameter, said):
    # A fourth audit: typing 0 read "got 0.0" (the value as parsed, a float).
    with pytest.raises(InputError) as exc:
        parse_sweep_values(text, parameter, 8)
    assert str(exc.value).endswith(said)
