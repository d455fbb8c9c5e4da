"""Helpers shared by the AppTest tests."""


def run_sweep(at, parameter, values, *, n, M, repeats=1, design=None, split=None, variance=None):
    """Set the Experiments page's controls (the page must be open), press Run; the sweep's rows."""
    if design is not None:
        at.selectbox(key="exp_design").select(design).run()
    at.radio(key="exp_parameter").set_value(parameter).run()
    if split is not None:
        at.selectbox(key="exp_split").select(split).run()
    at.text_input(key=f"exp_values_{parameter}").input(values).run()
    at.number_input(key="exp_n").set_value(n).run()
    at.number_input(key="exp_M").set_value(M).run()
    at.number_input(key="exp_repeats").set_value(repeats).run()
    if variance is not None:
        at.radio(key="exp_var").set_value(variance).run()
    at.button(key="btn_sweep").click().run()
    return at.session_state.get("sweep_rows")


def new_session(page=None, query=None):
    """A fresh AppTest session of app.py (URL ``query`` applied), on ``page`` if given; no exception."""
    import sys
    from pathlib import Path

    import pytest

    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain_title(fig):
    """A figure's title as one line of text: the house layout breaks long titles into lines
    (explorer.figures.common._wrap_title), which a phrase a test looks for may straddle."""
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fig.layout.title.text or "")).strip()


def load_real(at, name):
    """On the Data page of the AppTest session ``at``: pick the shipped real data set ``name`` and load it."""
    at.switch_page("pages/data.py").run()
    at.radio(key="cfg_source").set_value("real").run()
    at.selectbox(key="cfg_real_set").select(name).run()
    at.button(key="btn_real").click().run()
    return at


def upload_csv(at, name, data: bytes, *, use=True):
    """Upload ``data`` as the CSV ``name`` on the Data page; with ``use``, press "Use these columns"."""
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="csv_upload").upload(name, data, "text/csv").run()
    if use:
        at.button(key="btn_use_csv").click().run()
    assert not at.exception, [e.value for e in at.exception]


def two_lines(n, seed=0):
    """A DataFrame of n rows (x, y): two lines meeting at x = 0, noise sd 0.1."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    return pd.DataFrame({"x": x, "y": np.where(x > 0, 2 * x, -x) + 0.1 * rng.normal(size=n)})
