"""A third hostile audit of the app, in Chromium (2026-12-06): what it found, each failing before.

A 10-row upload put a traceback on the Experiments page; a CSV written by pandas had its row numbers
picked as an input; ticked but unreadable custom parameters gave way to the knobs while "New data
generated" said all was well; a link too large to fit by itself left a page saying it "already holds a
fit"; the paper's S rule below K was refused with a value nobody typed; two perfect fits raised an
alarm of "216 053.79x"; a link's bad boolean asked for "a bool in (-inf, inf)".
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

from app_helpers import new_session, two_lines, upload_csv

import explorer.io
from explorer import explain
from explorer.io import InputError, left_out_inputs, numeric_inputs, parse_csv, select_columns


def _upload(at, name, frame, *, index=False, use=True):
    upload_csv(at, name, frame.to_csv(index=index).encode(), use=use)


_line = two_lines


def test_experiments_on_ten_rows_draw_no_traceback():
    at = new_session()
    _upload(at, "ten_rows.csv", _line(10))
    assert at.session_state["data"].n == 10
    at.switch_page("pages/experiments.py").run()
    at.radio(key="exp_data").set_value("current").run()
    assert not at.exception, [e.value for e in at.exception]
    hint = " ".join(i.value for i in at.info)
    assert "vary K over 1, 2, 3" in hint


def test_row_numbers_and_empty_columns_are_not_picked_as_inputs():
    frame = _line(300).assign(z=np.nan)
    df = parse_csv(frame.to_csv().encode(), "pd.csv")  # pandas' default writes the index as "Unnamed: 0"
    assert numeric_inputs(df, "y") == ["x"]
    assert left_out_inputs(df, "y") == [("Unnamed: 0", "row numbers 0..299"), ("z", "empty")]
    at = new_session()
    _upload(at, "pd.csv", frame, index=True, use=False)
    assert at.multiselect(key="csv_x").value == ["x"]
    # The name as markdown_escape writes it (a colon escaped, so that "Unnamed:" is no emoji or link).
    assert any("0 (row numbers 0..299), z (empty)" in i.value and i.value.startswith("Not picked as inputs")
               for i in at.info)
    at.button(key="btn_use_csv").click().run()
    assert at.session_state["data"].x_names == ["x"]


def test_a_constant_column_is_not_picked_as_an_input_and_the_note_says_why():
    # A fourth audit: "const" was picked by default, then "Use these columns" refused it as constant.
    frame = _line(300).assign(const=1.0)
    at = new_session()
    _upload(at, "const.csv", frame, use=False)
    assert at.multiselect(key="csv_x").value == ["x"]
    assert any(i.value == "Not picked as inputs by default: const (constant: every value is 1)." for i in at.info)
    at.button(key="btn_use_csv").click().run()
    assert not at.error and at.session_state["data"].x_names == ["x"]


def test_a_column_of_row_numbers_out_of_order_is_data():
    df = pd.DataFrame({"i": [3, 1, 2, 0], "x": [0.1, 0.5, 0.2, 0.9], "y": [1.0, 2.0, 0.5, 0.1]})
    assert numeric_inputs(df, "y") == ["i", "x"]


def test_one_row_is_refused_for_its_rows_not_as_constant():
    df = pd.DataFrame({"x": [1.0], "y": [2.0]})
    try:
        select_columns(df, "y", ["x"])
    except InputError as exc:
        assert "the file has 1 data row(s)" in str(exc) and "constant" not in str(exc)
    else:
        raise AssertionError("one row was accepted")
    try:
        select_columns(pd.DataFrame({"x": [1.0, 2.0], "z": [np.nan, np.nan], "y": [1.0, 3.0]}), "y", ["x", "z"])
    except InputError as exc:
        assert "column 'z' is empty" in str(exc) and "leave it out" in str(exc)


def test_unreadable_typed_parameters_generate_nothing():
    at = new_session("pages/data.py")
    before = at.session_state["data"]
    at.radio(key="cfg_source").set_value("custom").run()
    at.text_area(key="custom_params_text").input('{"gates": [[0, 0]], "experts": [[1, 2]], "variances": [1e-300, 1]}'
                                                 ).run()
    at.checkbox(key="use_custom_text").check().run()
    at.button(key="btn_generate").click().run()
    assert not at.exception
    assert at.session_state["data"] is before
    assert not at.success
    text = " ".join(e.value for e in at.error)
    assert "Nothing generated" in text and "untick the box" in text
    assert "Upload a model JSON" not in text  # typed text: nothing to upload


def test_a_page_without_a_fit_does_not_say_it_holds_one():
    at = new_session(query={"design": "separated-10d", "n": "1000000", "M": "256", "K": "10"})
    assert "fit" not in at.session_state
    start = next(m.value for m in at.markdown if "Start here" in m.value)
    assert "already holds a fit" not in start and "Choose the settings" in start
    # A link refused for its size is information, not a failure.
    assert not [e.value for e in at.error if "automatic first fit" in e.value]
    assert any(i.value.startswith("The automatic first fit was not started") for i in at.info)
    fresh = new_session()
    assert "already holds a fit" in next(m.value for m in fresh.markdown if "Start here" in m.value)


def test_the_paper_rule_below_k_is_taken_as_the_library_takes_it():
    # tonedata: 150 rows; M = 8 gives floor(150 / 32) = 4 support points, fewer than K = 5. The library
    # takes max(4, K) = 5; the page refused "support_size must be in [5, 150], got 4".
    at = new_session("pages/fit.py", query={"src": "real", "real": "tonedata", "K": "5", "M": "8"})
    assert at.session_state["data"].n == 150
    assert not [e.value for e in at.error if "cannot run" in e.value]


def test_a_bad_boolean_in_a_link_asks_for_true_or_false():
    at = new_session(query={"unal": "maybe"})
    said = " ".join(w.value for w in at.warning)
    assert "unal='maybe' (must be true or false)" in said and "(-inf, inf)" not in said


def test_perfect_fits_raise_no_accuracy_alarm_and_ratios_read_above_the_bound():
    assert explain.accuracy_warning(8.61e-8, 3.99e-13, "training") == ""
    line = explain.accuracy_warning(0.12004, 0.1, "held-out")
    assert "1.2004x the global EM's" in line
    assert "2 (1.2004x)" in explain.sweep_accuracy_warning({2: (0.12004, 0.1)}, "S ratio")


def test_ending_a_lesson_brings_back_the_users_own_work():
    """Running a lesson replaced the user's data, fit and settings, and "End the lesson" brought nothing back."""
    at = new_session()
    _upload(at, "mine.csv", _line(400))
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_K").set_value(2).run()
    at.number_input(key="cfg_M").set_value(2).run()
    at.button(key="btn_fit").click().run()
    mine, my_fit = at.session_state["data"], at.session_state["fit"]
    assert mine.name == "mine.csv" and my_fit.data_key == mine.key
    at.switch_page("pages/lessons.py").run()
    at.button(key="btn_lesson_label-switching").click().run()
    assert at.session_state["lesson"] == "label-switching" and at.session_state["data"] is not mine
    at.switch_page("pages/compare.py").run()  # the lesson's page, which its button opens in a browser
    at.button(key="btn_end_lesson").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "lesson" not in at.session_state
    assert at.session_state["data"] is mine and at.session_state["fit"] is my_fit
    assert at.session_state["_cfg"]["K"] == 2 and at.session_state["_cfg"]["M"] == 2
    # The lesson's comparison went with it: the Compare page, drawn again, holds one of the user's data if any.
    assert "compare" not in at.session_state or at.session_state["compare"]["name"] == "mine.csv"


def test_a_data_column_of_one_to_n_stays_an_input():
    """A time index or trend named as data (t = 1..n) is data; only a column named as an index is left out."""
    df = pd.DataFrame({"t": np.arange(1, 7), "idx": np.arange(6), "x": np.linspace(0, 1, 6), "y": np.arange(6.0) ** 2})
    assert numeric_inputs(df, "y") == ["t", "x"]
    assert left_out_inputs(df, "y") == [("idx", "row numbers 0..5")]


def test_a_saved_model_predicts_a_file_of_new_inputs_without_a_response():
    # A fourth audit: new inputs could only be predicted as "the current data", which needs a response
    # column; an empty one was refused with "leave it out".
    at = new_session()
    _upload(at, "train.csv", _line(300))
    at.switch_page("pages/fit.py").run()
    at.button(key="btn_fit").click().run()
    fit = at.session_state["fit"]
    doc = explorer.io.model_to_json(fit.dm.params_, {"x_names": ["x"], "y_name": "y"})
    new = pd.DataFrame({"id": range(5), "x": np.linspace(-2, 2, 5)})  # the model's x, an extra column, no y
    at.file_uploader(key="apply_model_upload").upload("model.json", doc.encode(), "application/json").run()
    at.file_uploader(key="apply_inputs_upload").upload("new_x.csv", new.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = at.dataframe[-1].value
    # The extra column first, to join back by (it was dropped until 2026-12-06).
    assert list(shown.columns[:3]) == ["id", "x", "prediction"] and len(shown) == 5 and "y" not in shown.columns
    assert shown["id"].tolist() == list(range(5))
    np.testing.assert_allclose(shown["prediction"], fit.dm.predict(new[["x"]].to_numpy()), rtol=1e-12)
    assert any(c.value == "Applied to new\\_x\\.csv: 5 rows." for c in at.caption)  # the name markdown-escaped
    assert "Download its predictions (CSV)" in [b.proto.label for b in at.get("download_button")]


def test_an_empty_response_column_is_told_to_pick_another_response():
    df = pd.DataFrame({"x": np.linspace(0, 1, 40), "y": np.nan})
    try:
        select_columns(df, "y", ["x"])
    except InputError as exc:
        assert "column 'y' is empty" in str(exc) and "pick another response column" in str(exc)
        assert "leave it out" not in str(exc)
    else:
        raise AssertionError("an empty response was accepted")


def test_warnings_tables_and_downloads_number_the_reduced_experts_alike():
    # The page numbers the reduced experts like their colours (matched to the truth); the warnings used the
    # model's own order, and so did the model JSON and the predictions' gate columns: "Reduced expert 4 has
    # about 8.6 rows on each machine" named the table's "reduced 1" (the audit of 2026-12-06).
    import re

    from app_helpers import new_session

    from explorer import explain, figures

    at = new_session(query={"design": "separated-2d", "n": "2000", "M": "32", "K": "4"})
    dm, data = at.session_state["fit"].dm, at.session_state["data"]
    shown = figures.reduced_colors(dm.params_, data.truth, data.X)
    assert not np.array_equal(shown, np.arange(4))  # the case: the page's order is not the model's
    rare = int(np.argmin(dm.expert_rows_.rows))
    line = next(w.value for w in at.warning if "rows on each machine" in w.value)
    number = int(re.match(r"Reduced expert (\d+) has about", line).group(1))
    assert number == shown[rare] + 1
    table = next(df.value for df in at.dataframe if "reduced 1" in df.value.columns)
    assert abs(table.loc["expert intercept", f"reduced {number}"] - dm.params_.experts[0, rare]) < 1e-4
    line = explain.renumbered("Expert 2 (numbered from 0) has a variance", [1, 2, 0])
    assert line == "Reduced expert 1 has a variance"
