"""The fit page on a real dask.distributed cluster given by its scheduler address (issue 4)."""

import sys
from pathlib import Path

import distributed
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # explorer/ is not installed

from streamlit.testing.v1 import AppTest  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc:
        yield lc


def fit_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("pages/fit.py").run()
    assert not at.exception
    return at


def test_fit_page_runs_on_a_scheduler_address(cluster):
    at = fit_page()
    default = at.session_state["fit"]
    at.selectbox(key="cfg_backend").select("dask").run()
    at.text_input(key="cfg_scheduler").input(cluster.scheduler_address).run()
    at.button(key="btn_fit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fit = at.session_state["fit"]
    assert fit is not default and fit.settings["backend"] == "dask"
    assert fit.dm.scheduler == cluster.scheduler_address
    # Same seed, same numbers as the threading fit shown on first load.
    np.testing.assert_allclose(fit.dm.experts_, default.dm.experts_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("address, message", [
    ("", "needs the address of a running scheduler"),
    ("localhost 8786", "is not a dask scheduler address"),
])
def test_missing_or_malformed_address_is_an_error(address, message):
    at = fit_page()
    before = at.session_state["fit"]
    at.selectbox(key="cfg_backend").select("dask").run()
    at.text_input(key="cfg_scheduler").input(address).run()
    at.button(key="btn_fit").click().run()
    text = " ".join(e.value for e in at.error)
    assert message in text and "previous results stay on screen" in text
    assert at.session_state["fit"] is before
