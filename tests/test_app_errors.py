"""Every bad input the app can meet gives an st.error saying what to change, never an exception,
and the session keeps its previous data and results.  ``BAD_INPUTS`` below is the enumerated list
(its length is the count reported in docs/app.md)."""

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # explorer/ is not installed


from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import explorer.io
import moecore.local as mlocal

ROOT = Path(__file__).resolve().parents[1]


def new_app(page=None):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception
    return at


def errors(at):
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.error)


def small_csv(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = np.where(x < 0, 1 + 2 * x, -1 - x) + 0.1 * rng.normal(size=n)
    return ("x,y\n" + "\n".join(f"{a:.5f},{b:.5f}" for a, b in zip(x, y, strict=True))).encode()


# ------------------------------------------------------------------------------------ uploads
BAD_FILES = {
    "empty file": ("e.csv", b"", "is empty"),
    "blank lines only": ("b.csv", b"\n \n", "is empty"),
    "header only": ("h.csv", b"x,y\n", "no data rows"),
    "ragged rows": ("r.csv", b"x,y\n1,2\n3,4,5\n6,7\n", "different number of fields"),
    "wrong encoding (latin-1)": ("l.csv", "x,y\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    "binary file named .csv": ("p.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "binary data"),
    "not a CSV (xlsx)": ("data.xlsx", b"PK\x03\x04 spreadsheet", "not a .csv file"),
    "10^6 rows": ("big.csv", b"x,y\n" + b"1.5,2.5\n" * 1_000_000, "at most 200,000"),
    "a single column": ("one.csv", b"x\n1\n2\n3\n", "needs a response column"),
    "duplicated column names": ("dup.csv", b"x,x\n1,2\n3,4\n", "duplicated column names"),
    "comment lines only": ("notes.csv", b"# y,x\n# nothing measured yet\n", "only comment lines"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_csv_upload_shows_error_and_keeps_data(case):
    name, content, expect = BAD_FILES[case]
    at = new_app("pages/data.py")
    before = at.session_state["data"].key
    at.file_uploader(key="csv_upload").upload(name, content, "text/csv").run()
    text = errors(at)
    assert expect in text, text
    assert "current data is unchanged" in text
    assert at.session_state["data"].key == before
    assert all(b.key != "btn_use_csv" for b in at.button)  # nothing to load from a refused file


MIXED = (b"x,y,txt,gap,c\n" + b"\n".join(
    f"{i / 10:.2f},{(i % 7) / 3:.3f},{'abc' if i == 5 else i},{'' if i == 9 else i},1".encode() for i in range(40)))
BAD_COLUMNS = {
    "non-numeric input column": ("y", ["txt"], "column 'txt' is not numeric: row 7"),
    "missing values": ("y", ["gap"], "1 missing"),
    "constant input column": ("y", ["c"], "constant"),
    "no input column": ("y", [], "at least one input"),
    "constant response": ("c", ["x"], "is constant"),
}


@pytest.mark.parametrize("case", list(BAD_COLUMNS))
def test_bad_column_choice_shows_error_and_keeps_data(case):
    y_col, x_cols, expect = BAD_COLUMNS[case]
    at = new_app("pages/data.py")
    before = at.session_state["data"].key
    at.file_uploader(key="csv_upload").upload("mixed.csv", MIXED, "text/csv").run()
    assert not errors(at)
    at.selectbox(key="csv_y").select(y_col).run()
    at.multiselect(key="csv_x").set_value(x_cols).run()
    at.button(key="btn_use_csv").click().run()
    text = errors(at)
    assert expect in text, text
    assert at.session_state["data"].key == before


# --------------------------------------------------------------------------------- model JSON
def _model_doc(**over):
    import json

    doc = {"format": explorer.io.MODEL_FORMAT, "version": 1,
           "params": {"gates": [[0, 0], [1, 0]], "experts": [[1, 2], [0, 1]], "variances": [0.1, 0.2]}}
    doc["params"].update(over)
    return json.dumps(doc).encode()


BAD_MODELS = {
    "model JSON: not JSON": (b"{'gates': [1, 2]", "not valid JSON"),
    "model JSON: wrong encoding": ('{"x": "\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "model JSON: not our schema": (b'{"format": "other", "version": 1, "params": {}}',
                                   "does not follow the model schema"),
    "model JSON: negative variance": (_model_doc(variances=[0.1, -0.2]), "params/variances/1"),
    "model JSON: ragged matrix": (_model_doc(gates=[[0, 0, 1], [1, 0]]), "ragged"),
    "model JSON: extra field (code)": (_model_doc(code="__import__('os')"), "Additional properties"),
    # The columns the model reads: a hand-edited list applied a model to (x, x) or to its own response.
    "model JSON: an input named twice": (_model_doc()[:-1] + b', "meta": {"x_names": ["x", "x"]}}', "non-unique"),
    "model JSON: the response as an input": (_model_doc()[:-1] + b', "meta": {"x_names": ["y"], "y_name": "y"}}',
                                             "both as the response"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_json_shows_error(case):
    content, expect = BAD_MODELS[case]
    at = new_app("pages/data.py")
    at.radio(key="cfg_source").set_value("custom").run()
    at.file_uploader(key="model_upload").upload("m.json", content, "application/json").run()
    text = errors(at)
    assert expect in text, text
    assert "custom_truth" not in at.session_state
    # Generating now uses the knobs, not the rejected file.
    at.button(key="btn_generate").click().run()
    assert at.session_state["data"].name.startswith("custom")


BAD_TYPED = {
    "typed parameters: not JSON": ('{"gates": [[0, 0], [1, 0]], "experts": ', "not valid JSON"),
    "typed parameters: shapes disagree": (('{"gates": [[0, 0], [1, 0]], "experts": [[1, 2], [0, 1]], '
                                           '"variances": [0.1]}'), "must agree"),
}


@pytest.mark.parametrize("case", list(BAD_TYPED))
def test_bad_typed_parameters_show_error(case):
    text, expect = BAD_TYPED[case]
    at = new_app("pages/data.py")
    at.radio(key="cfg_source").set_value("custom").run()
    at.text_area(key="custom_params_text").input(text).run()
    at.checkbox(key="use_custom_text").check().run()
    msg = errors(at)
    assert expect in msg and "untick the box" in msg, msg
    assert "custom_truth" not in at.session_state


# ------------------------------------------------------------------------------ fit settings
@pytest.fixture()
def small_data_app():
    """A session whose data is a 200-row CSV: small enough to hit every size limit."""
    at = new_app("pages/data.py")
    at.file_uploader(key="csv_upload").upload("small.csv", small_csv(), "text/csv").run()
    at.button(key="btn_use_csv").click().run()
    assert at.session_state["data"].n == 200
    at.switch_page("pages/fit.py").run()
    return at


BAD_FIT = {
    "K larger than a shard can support": ({"cfg_K": 5, "cfg_M": 20}, "more than a shard can support"),
    "M too large for n": ({"cfg_M": 250}, "is more than the n = 200 samples"),
    "support size larger than n": ({"support": 500}, "larger than n = 200"),
    "support size smaller than K": ({"support": 2}, "smaller than K = 3"),
}


@pytest.mark.parametrize("case", list(BAD_FIT))
def test_bad_fit_settings_show_error_and_keep_results(small_data_app, case):
    at = small_data_app
    before = at.session_state["fit"]
    change, expect = BAD_FIT[case]
    for key, value in change.items():
        if key == "support":
            at.checkbox(key="cfg_support_size_rule").uncheck().run()
            at.number_input(key="cfg_support_size").set_value(value).run()
        else:
            at.number_input(key=key).set_value(value).run()
    at.button(key="btn_fit").click().run()
    text = errors(at)
    assert expect in text, text
    assert "previous results stay on screen" in text
    assert at.session_state["fit"] is before
    assert len(at.get("plotly_chart")) >= 6


def test_fit_failing_midway_keeps_previous_results(monkeypatch):
    at = new_app()
    before = at.session_state["fit"]
    real = mlocal.fit_local

    def flaky(index, *args, **kw):
        if index == 2:
            return mlocal.LocalFitResult(index, 10, None, 0.0, "LinAlgError: singular matrix (injected)")
        return real(index, *args, **kw)

    monkeypatch.setattr(mlocal, "fit_local", flaky)
    at.number_input(key="cfg_fit_seed").set_value(424242).run()  # a cache miss: really refit
    at.button(key="btn_fit").click().run()
    text = errors(at)
    assert "local fit of machine 2" in text and "injected" in text
    assert at.session_state["fit"] is before
    assert len(at.get("plotly_chart")) >= 7


def test_compare_with_impossible_settings_shows_error(small_data_app):
    at = small_data_app
    at.number_input(key="cfg_M").set_value(40).run()
    at.switch_page("pages/compare.py").run()
    assert "more than a shard can support" in errors(at)


BAD_SWEEPS = {
    "sweep: non-numeric values": ("n_machines", "2, four", "numbers separated by commas"),
    "sweep: no values": ("n_machines", " , ", "at least one value"),
    "sweep: fractional M": ("n_machines", "2.5", "positive whole numbers"),
    "sweep: M too large for n": ("n_machines", "2, 200", "more than a shard can support"),
    "sweep: n above 10^6": ("n", "1000, 2000000", "limited to 1,000,000"),
    "sweep: zero support fraction": ("support_fraction", "0, 1", "must be > 0"),
    "sweep: negative rounds": ("refine_rounds", "0, -1", "whole numbers from 0"),
    "sweep: too many rounds": ("refine_rounds", "1, 50", "at most 10 refinement rounds"),
    "sweep: K above the app's 10": ("n_experts", "2, 12", "n_experts must be in [1, 10]"),
    "sweep: fractional K": ("n_experts", "2, 2.5", "K must be whole numbers"),
    # Its copies ran with the same seeds and were pooled as independent repeats (too narrow error bars).
    "sweep: a value twice": ("n_machines", "2, 2, 4", "2 is given more than once"),
}


@pytest.mark.parametrize("case", list(BAD_SWEEPS))
def test_bad_sweep_values_show_error(case):
    parameter, values, expect = BAD_SWEEPS[case]
    at = new_app("pages/experiments.py")
    at.radio(key="exp_parameter").set_value(parameter).run()
    at.text_input(key=f"exp_values_{parameter}").input(values).run()
    at.number_input(key="exp_n").set_value(1000).run()
    at.button(key="btn_sweep").click().run()
    text = errors(at)
    assert expect in text, text
    assert not at.session_state.get("sweep_rows")


BAD_INPUTS = (list(BAD_FILES) + list(BAD_COLUMNS) + list(BAD_MODELS) + list(BAD_TYPED) + list(BAD_FIT)
              + ["local fit failing midway", "compare with impossible settings"] + list(BAD_SWEEPS)
              + ["bad URL parameters (tests/test_app_pages.py)"])


def test_bad_input_count():
    """The number reported in docs/app.md."""
    assert len(BAD_INPUTS) == len(set(BAD_INPUTS)) == 44
