"""Issue 15, the app in a hostile world: lost data, links that reach outside, crashes.

URL settings are untrusted input: a link must never make the server connect anywhere, start
worker processes or crash a page (``explorer.settings.parse_query`` is the one place that reads
them).  Data must survive a download and an upload bit for bit.
"""

import os
import socket
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hst

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # explorer/ is not installed

from streamlit.testing.v1 import AppTest  # noqa: E402

import explorer.io  # noqa: E402
import explorer.settings  # noqa: E402
from explorer import runs  # noqa: E402
from moecore import MoEParams, simulate  # noqa: E402


def new_app(query=None, page=None, script="app.py"):
    at = AppTest.from_file(str(ROOT / script), default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at):
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.error)


def warnings_text(at):
    return " ".join(w.value for w in at.warning)


# ------------------------------------------------------------ case 1 + the round-trip property
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(K=hst.integers(1, 4), d=hst.integers(1, 3), n=hst.integers(20, 300),
       x_exp=hst.integers(-300, 300), y_exp=hst.integers(-300, 140), loc_exp=hst.integers(0, 12),
       seed=hst.integers(0, 2**32 - 1), labelled=hst.booleans())
def test_property_simulate_csv_upload_download_gives_identical_arrays(K, d, n, x_exp, y_exp, loc_exp, seed,
                                                                      labelled):
    """simulate -> CSV -> upload (parse + column choice, as the Data page does) -> download again:
    the same float64 arrays and the same bytes, at any scale (1e-300 to 1e300) and offset."""
    rng = np.random.default_rng(seed)
    params = MoEParams(rng.normal(size=(d + 1, K)), rng.normal(size=(d + 1, K)), rng.uniform(0.1, 2, K))
    sim = simulate(params, n, x_dist="gaussian", x_loc=10.0**loc_exp, random_state=seed)
    X = sim.X * 10.0**x_exp
    y = sim.y * 10.0**y_exp
    # An offset of 1e12 scaled by 1e300 is past float64 (inf): no data the app holds, which refuses it.
    assume(np.isfinite(X).all())
    names = [f"x{j + 1}" for j in range(d)]
    labels = sim.labels if labelled else None
    csv = explorer.io.data_to_csv(X, y, labels, names, "y")
    df = explorer.io.parse_csv(csv, "data.csv")
    X2, y2 = explorer.io.select_columns(df, "y", names)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert list(df.columns) == names + ["y"] + (["true_expert"] if labelled else [])
    if labelled:
        np.testing.assert_array_equal(df["true_expert"].to_numpy() - 1, sim.labels)
    assert explorer.io.data_to_csv(X2, y2, labels, names, "y") == csv


def test_case1_download_of_the_data_page_uploads_back_identical():
    """Through the app: the Data page's download, uploaded on the same page, is the same data."""
    at = new_app(page="pages/data.py")
    data = at.session_state["data"]
    X = data.X + 20240000.0  # the example: 6 significant digits made these all 2.024e+07
    csv = explorer.io.data_to_csv(X, data.y, data.labels, data.x_names, data.y_name)
    at.file_uploader(key="csv_upload").upload("mine.csv", csv, "text/csv").run()
    at.button(key="btn_use_csv").click().run()
    assert not errors(at)
    back = at.session_state["data"]
    assert back.source == "csv" and back.x_names == data.x_names
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.y, data.y)
    np.testing.assert_array_equal(back.labels, data.labels)


# ------------------------------------------------------------ case 11: formula injection
def test_case11_csv_cells_are_spreadsheet_safe():
    X = np.array([[-1.5], [2.0]])
    csv = explorer.io.data_to_csv(X, np.array([1.0, -2.0]), None, ["=cmd|' /C calc'!A0"], "@SUM(A1)").decode()
    header, *rows = csv.splitlines()
    assert header == "'=cmd|' /C calc'!A0,'@SUM(A1)"
    assert rows == ["-1.5,1", "2,-2"]  # numbers stay numbers (in their shortest exact text)
    for bad in ("=1+1", "+1", "-x", "@x", "\tx", "\rx"):
        assert explorer.io.spreadsheet_safe(bad).startswith("'")
    assert explorer.io.spreadsheet_safe("x1") == "x1"


# ------------------------------------------------------------ cases 6-8: URL settings
def test_url_settings_are_parsed_in_one_place_with_bounds():
    values, ignored = explorer.settings.parse_query({
        "xscale": "1e308", "csep": "1e308", "cvar": "nan", "cgate": "inf", "jobs": "1000",
        "n": "9" * 5000, "K": "2", "backend": "dask", "scheduler": "tcp://203.0.113.9:8786",
        "seed": "x" * 100_000,
    })
    assert values == {"K": 2, "backend": "dask"}
    text = "; ".join(ignored)
    for name in ("xscale", "csep", "cvar", "cgate", "jobs", "n=", "seed", "scheduler ("):
        assert name in text, name
    assert len(text) < 2000  # a 100 000-character value is not quoted whole
    assert "scheduler" not in explorer.settings.QUERY_KEYS


def test_case6_a_link_never_makes_the_server_connect():
    # A real listening socket: the link points the dask backend at it; nobody may knock.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    try:
        at = new_app({"backend": "dask", "scheduler": f"tcp://127.0.0.1:{port}"})
        assert "a dask scheduler address is never taken from a link" in warnings_text(at)
        assert at.session_state["_cfg"]["scheduler"] == ""
        fit = at.session_state["fit"]  # the automatic first fit ran in the server process
        assert fit.settings["backend"] == "threading" and fit.dm.scheduler is None
        at.switch_page("pages/compare.py").run()  # a page that fills itself: in-process too
        assert not errors(at) and at.session_state["compare"]["cmp"].distributed.backend == "threading"
        with pytest.raises(BlockingIOError):
            srv.accept()
        assert "scheduler=" not in " ".join(c.value for c in at.get("code"))  # not shared either
    finally:
        srv.close()


def test_case6_typed_scheduler_outside_the_allow_list_is_refused(monkeypatch):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    monkeypatch.setenv(runs.SCHEDULER_ALLOW_ENV, "tcp://10.1.2.3:8786")
    try:
        at = new_app(page="pages/fit.py")
        before = at.session_state["fit"]
        at.selectbox(key="cfg_backend").select("dask").run()
        at.text_input(key="cfg_scheduler").input(f"tcp://127.0.0.1:{port}").run()
        at.button(key="btn_fit").click().run()
        text = errors(at)
        assert "allow-list" in text and "DMOE_DASK_SCHEDULERS" in text, text
        assert at.session_state["fit"] is before
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()
    assert runs.scheduler_allow_list() == ["tcp://10.1.2.3:8786"]
    monkeypatch.delenv(runs.SCHEDULER_ALLOW_ENV)
    runs.check_scheduler("tcp://127.0.0.1:8786")  # loopback: allowed
    with pytest.raises(explorer.io.InputError, match="allow-list"):
        runs.check_scheduler("tcp://203.0.113.9:8786")


def _worker_children():
    return {c.pid for c in psutil.Process().children(recursive=True)}


def test_case7_a_link_starts_no_worker_process_and_jobs_are_capped():
    before = _worker_children()
    at = new_app({"backend": "loky", "jobs": str(explorer.settings.MAX_JOBS + 14)})
    assert f"jobs='{explorer.settings.MAX_JOBS + 14}'" in warnings_text(at)
    assert at.session_state["fit"].settings["backend"] == "threading"
    assert _worker_children() <= before  # no new process
    defaults = {k[4:]: v for k, v in explorer.settings.DEFAULTS.items()}
    kw = runs.fit_params(dict(defaults, n_jobs=1000, backend="loky"))
    assert kw["n_jobs"] == explorer.settings.MAX_JOBS and kw["backend"] == "loky"


def test_case7_library_never_starts_more_processes_than_cores():
    from moecore import DistributedMoE

    cores = os.cpu_count()
    assert DistributedMoE(n_jobs=1000, backend="loky")._runner().effective_jobs(400) == cores
    assert DistributedMoE(n_jobs=-1, backend="multiprocessing")._runner().effective_jobs(400) == cores
    assert DistributedMoE(n_jobs=1000, backend="threading")._runner().effective_jobs(8) == 8  # no more than tasks


def test_case8_out_of_range_link_values_do_not_crash_the_page():
    # parse_query is the only reader (its bounds: test above); here the whole page, with all three.
    at = new_app({"src": "custom", "xscale": "1e308", "csep": "1e308", "cvar": "nan"})
    for bad in ("xscale", "csep", "cvar"):
        assert f"{bad}=" in warnings_text(at)
    assert not errors(at)
    assert at.session_state["data"].source == "custom" and at.session_state["fit"] is not None
    at.switch_page("pages/data.py").run()
    assert not errors(at)


# ------------------------------------------------------------ case 9: deep links after a restart
@pytest.mark.parametrize("page", ["pages/data.py", "pages/fit.py", "pages/compare.py"])
def test_case9_deep_link_as_first_request_runs_the_page_alone(page):
    """After a restart Streamlit runs the requested page script alone (its pages/ folder
    convention) until app.py calls st.navigation: the page must set the session up itself."""
    at = new_app({"K": "2", "n": "4000"}, script=page)
    assert not errors(at)
    assert at.session_state["data"].n == 4000 and at.session_state["fit"].settings["K"] == 2


# ------------------------------------------------------------ case 10: hostile files and values
def test_case10_carriage_return_line_endings_are_read():
    at = new_app(page="pages/data.py")
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 300)
    y = np.where(x < 0, 1 + 2 * x, -1 - x) + 0.1 * rng.normal(size=300)
    body = "x,y\r" + "\r".join(f"{float(a)!r},{float(b)!r}" for a, b in zip(x, y, strict=True)) + "\r"
    at.file_uploader(key="csv_upload").upload("mac.csv", body.encode(), "text/csv").run()
    at.button(key="btn_use_csv").click().run()
    assert not errors(at)
    np.testing.assert_array_equal(at.session_state["data"].y, y)


def test_case10_a_10mb_cell_gives_a_short_message():
    at = new_app(page="pages/data.py")
    before = at.session_state["data"].key
    content = b"x,y\n1,2\n2," + b"9" * 10_000_000 + b"\n3,4\n"
    at.file_uploader(key="csv_upload").upload("huge.csv", content, "text/csv").run()
    at.button(key="btn_use_csv").click().run()
    text = errors(at)
    assert "not numeric" in text and "10,000,000 characters" in text and len(text) < 1000, len(text)
    assert at.session_state["data"].key == before


def _params(gates_text):
    return '{"gates": ' + gates_text + ', "experts": [[0, 1], [1, 0]], "variances": [1, 1]}'


HOSTILE_JSON = {
    "10^400": (_params("[[1e400, 0], [0, 0]]"), "must be finite"),
    "a 401-digit integer": (_params("[[1" + "0" * 400 + ", 0], [0, 0]]"), "must be finite"),
    "a 5000-digit integer": (_params("[[1" + "0" * 5000 + ", 0], [0, 0]]"), "must be finite"),
    "100 000-deep nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


def _model_doc(params):
    return f'{{"format": "{explorer.io.MODEL_FORMAT}", "version": 1, "params": {params}}}'


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_case10_hostile_json_is_an_input_error(case):
    params, expect = HOSTILE_JSON[case]
    doc = params if "nesting" in case else _model_doc(params)
    for call in (lambda: explorer.io.model_from_json(doc.encode(), "m.json"),
                 lambda: explorer.io.params_from_text(params)):
        with pytest.raises(explorer.io.InputError, match=expect) as info:
            call()
        assert len(str(info.value)) < 1000


@pytest.mark.parametrize("case", ["a 5000-digit integer", "100 000-deep nesting"])
def test_case10_hostile_model_json_in_the_app(case):
    """Uploaded (a session) and typed (another): an st.error each, no exception."""
    params, expect = HOSTILE_JSON[case]
    doc = params if "nesting" in case else _model_doc(params)
    at = new_app(page="pages/data.py")
    at.radio(key="cfg_source").set_value("custom").run()
    at.file_uploader(key="model_upload").upload("m.json", doc.encode(), "application/json").run()
    text = errors(at)
    assert expect in text and len(text) < 1000, text[:300]
    assert "custom_truth" not in at.session_state
    at = new_app(page="pages/data.py")
    at.radio(key="cfg_source").set_value("custom").run()
    at.text_area(key="custom_params_text").input(params).run()
    at.checkbox(key="use_custom_text").check().run()
    text = errors(at)
    assert expect in text and "untick the box" in text and len(text) < 1000, text[:300]
    assert "custom_truth" not in at.session_state


@pytest.mark.parametrize("parameter, values, expect", [
    ("n_machines", "2, inf", "must be finite"),
    ("support_fraction", "0.5, inf", "must be finite"),
    ("support_fraction", "1e400", "must be finite"),
    ("support_fraction", "0.5, 100", "at most 4 M = 32"),
])
def test_case10_infinite_sweep_values(parameter, values, expect):
    at = new_app(page="pages/experiments.py")
    at.radio(key="exp_parameter").set_value(parameter).run()
    at.text_input(key=f"exp_values_{parameter}").input(values).run()
    at.button(key="btn_sweep").click().run()
    assert expect in errors(at)
    assert not at.session_state.get("sweep_rows")
