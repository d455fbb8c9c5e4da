"""What a browser audit of 2026-12-05 found the app leaving unsaid: a fit stopped by leaving the page, a
comparison that fitted its own models, an uploaded file a reload cannot bring back, and files the readers
took wrongly (semicolons on the command line, a missing header, too few rows)."""

import re

import numpy as np
import pytest
from app_helpers import new_session

from moecore.shards import ShardError, file_columns, header_looks_like_data, read_shard, sniff_separator


def _texts(at, kind):
    return [e.value for e in getattr(at, kind)]


def test_a_fit_stopped_by_leaving_the_page_is_reported_on_return():
    at = new_session()
    # What a run leaves when Streamlit stops the page's script mid-fit (the user clicked another page).
    at.session_state["_fit_running"] = "K = 6, M = 8, seed 5"
    at.run()
    assert not at.exception
    warned = [w for w in _texts(at, "warning") if "did not finish" in w]
    assert warned and "K = 6, M = 8, seed 5" in warned[0] and "press Run distributed fit" in warned[0]
    # Said once: the next run of the page shows the fit as usual.
    at.run()
    assert not any("did not finish" in w for w in _texts(at, "warning"))
    assert "_fit_running" not in at.session_state


def test_a_finished_fit_leaves_no_running_mark():
    at = new_session()
    at.button(key="btn_fit").click().run()
    assert not at.exception and "_fit_running" not in at.session_state
    assert not any("did not finish" in w for w in _texts(at, "warning"))


def test_compare_says_when_it_fitted_its_own_models():
    at = new_session()
    at.switch_page("pages/compare.py").run()
    assert any("models of the Distributed fit page (not refitted)" in c for c in _texts(at, "caption"))
    # Settings the Fit page has no fit of: the comparison fits them itself and says so.
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_K").set_value(2).run()
    at.switch_page("pages/compare.py").run()
    at.button(key="btn_compare").click().run()
    assert not at.exception
    captions = _texts(at, "caption")
    assert any("fitted the reduction and the global EM itself" in c for c in captions)
    assert not any("(not refitted)" in c for c in captions)


def test_a_reloaded_address_of_an_upload_names_the_missing_file():
    at = new_session(query={"upload": "my data.csv", "K": "2"})
    info = [i for i in _texts(at, "info") if "uploaded file" in i]
    assert info and r"**my data\.csv**" in info[0] and "upload the file again" in info[0]  # markdown-escaped
    assert at.session_state["_cfg"]["K"] == 2  # the other settings still apply
    at.run()  # said on the session's first run only
    assert not any("uploaded file" in i for i in _texts(at, "info"))


def test_the_address_names_an_uploaded_file_in_use():
    import explorer.data

    at = new_session()
    rng = np.random.default_rng(0)
    at.session_state["data"] = explorer.data.Dataset(rng.normal(size=(400, 1)), rng.normal(size=400), "mine.csv",
                                                     ["a"], source="csv")
    at.run()
    assert at.query_params["upload"] == "mine.csv"


@pytest.mark.parametrize("text,sep", [("y,x1\n1,2\n", ","), ("y;x1;x2\n1;2;3\n", ";"), ("y\tx\n1\t2\n", "\t"),
                                      ("y\n1\n2\n", ",")])
def test_the_separator_is_read_from_the_first_lines(text, sep):
    assert sniff_separator(text) == sep


def test_command_line_files_with_semicolons_and_without_a_header(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 2)), rng.normal(size=50)
    semi = tmp_path / "semi.csv.gz"
    import gzip

    with gzip.open(semi, "wt") as fh:
        fh.write("y;x1;x2\n" + "".join(f"{b};{a[0]};{a[1]}\n" for a, b in zip(X, y, strict=True)))
    Xr, yr, names = read_shard(semi)
    assert names == ["x1", "x2"] and np.allclose(Xr, X) and np.allclose(yr, y)
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(f"{b},{a[0]},{a[1]}\n" for a, b in zip(X, y, strict=True)))
    with pytest.raises(ShardError, match=r"holds numbers, not column names.*needs a header row"):
        file_columns(bare)
    # Whole numbers are names a program writes (pandas' 0, 1, 2; years): read as a header.
    ints = tmp_path / "ints.csv"
    ints.write_text("0,1,2\n" + "".join(f"{b},{a[0]},{a[1]}\n" for a, b in zip(X, y, strict=True)))
    assert file_columns(ints) == ["0", "1", "2"]
    assert not header_looks_like_data(["y", "1.5"]) and header_looks_like_data(["-2.4", "0.8"])


def test_the_app_refuses_an_upload_without_a_header_or_with_too_few_rows():
    import explorer.io

    with pytest.raises(explorer.io.InputError, match=r"holds numbers, not column names"):
        explorer.io.parse_csv(b"-2.4,0.8\n1.5,0.3\n0.2,0.1\n", "bare.csv")
    df = explorer.io.parse_csv(b"x,y\n1,2\n3,4\n", "two.csv")
    with pytest.raises(explorer.io.InputError, match=re.escape("has 2 data row(s)")):
        explorer.io.select_columns(df, "y", ["x"])


@pytest.mark.parametrize("n,K,M,d,says,never", [
    (6, 2, 4, 2, "use at most 1 expert(s) on one machine, or more data", "at most 1 machine"),
    (2, 1, 1, 1, "No fit is possible on 2 sample(s) of 1 input(s): one expert needs 3", "at most 0"),
    (100, 2, 50, 1, "use at most 20 machine(s)", "Even one machine"),
    (3000, 5000, 4, 2, "at most 249 expert(s)", "machine(s) (each"),
])
def test_size_errors_give_only_advice_that_works(n, K, M, d, says, never):
    from moecore import DistributedMoE

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError) as err:
        DistributedMoE(K, M).fit(rng.normal(size=(n, d)), rng.normal(size=n))
    assert says in str(err.value) and never not in str(err.value)


def test_a_missing_table_cell_is_a_dash_not_a_markdown_bullet():
    # st.table renders cells as markdown: a lone "-" (the global EM against itself) showed as "•".
    import pandas as pd

    from explorer.evidence import block_cell, highlight

    html = highlight(pd.DataFrame({"gates": [0.5, np.nan]}), [], block_cell).to_html()
    assert "—" in html and ">-<" not in html


def _xy(n=400):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2)), rng.normal(size=n)


@pytest.mark.parametrize("case,kw,args,error,says", [
    ("constant y", {}, lambda X, y: (X, np.ones_like(y)), ValueError, "y is constant"),
    ("X None", {}, lambda X, y: (None, y), TypeError, "X must be a numeric array of shape (n_samples, n_features)"),
    ("masked X", {}, lambda X, y: (np.ma.masked_array(X, mask=X > 2.5), y), ValueError, "masked array with"),
    ("pandas NA", {}, lambda X, y: (__import__("pandas").DataFrame({"a": __import__("pandas").array(
        [1.0, None] * (len(y) // 2), dtype="Float64"), "b": X[:, 1]}), y), ValueError, "missing value(s)"),
    ("array backend", {"backend": np.array(["loky"])}, lambda X, y: (X, y), TypeError, "backend must be one of"),
    ("scheduler without dask", {"scheduler": "tcp://127.0.0.1:1"}, lambda X, y: (X, y), ValueError,
     "scheduler is for backend='dask' only"),
    ("label split without labels", {"split": "label"}, lambda X, y: (X, y), ValueError,
     'Split("label", labels=labels)'),
])
def test_the_audit_s_inputs_get_clear_errors(case, kw, args, error, says):
    from moecore import DistributedMoE

    with pytest.raises(error) as err:
        DistributedMoE(2, 4, **kw).fit(*args(*_xy()))
    assert says in str(err.value), str(err.value)


def test_predictions_refuse_inputs_that_would_overflow():
    # At |x| = 1e308 (slopes of a few units) the products overflowed and predict returned NaN with NumPy's
    # overflow warnings only: a silent wrong answer.
    from moecore import MixtureOfExperts, simulate_design

    sim = simulate_design("teaching-1d", 2000, random_state=0)
    model = MixtureOfExperts(3, random_state=0).fit(sim.X, sim.y)
    far = sim.X[:3].copy()
    far[1, 0] = 1e308
    for f in (model.predict, model.predict_proba, model.predict_expert):
        with pytest.raises(ValueError, match=r"overflow at 1 row\(s\) of X \(the first, row 1, has \|x\| up to 1e"):
            f(far)
    far[1, 0] = 1e150  # large, but the products stay finite: an answer, not an error
    assert np.isfinite(model.predict(far)).all() and np.isfinite(model.predict_proba(far)).all()
    assert -np.inf < model.score(far, sim.y[:3]) < -1e200  # y far from every expert there: a tiny density


def test_a_bool_cell_is_shown_as_text_and_the_cli_offers_no_dask(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "b.csv"
    f.write_text("y,x,flag\n" + "".join(f"{i * 0.5},{i},{i % 2 == 0}\n" for i in range(20)))
    X, _, names = read_shard(f)  # an input of True/False is an indicator (tests/test_boolean_inputs.py)
    assert names[X.shape[1] - 1] == "flag" and X[:, -1].tolist() == [float(i % 2 == 0) for i in range(20)]
    out = subprocess.run([sys.executable, "-m", "moecore", "compare", "--help"], capture_output=True, text=True,
                         check=True).stdout
    backend_help = out[out.index("--backend"):]
    assert "DistributedMoE(backend='dask')" in " ".join(backend_help.split()) and "{loky" in backend_help
