"""Issue 22, a second adversarial pass: a per-session budget (explorer.runs.check_budget).

A link may start only a small fit by itself; a click at most the session's budget; memory is
estimated before anything is allocated; a MemoryError is a message, not a crash.  The browser
side (a heavy link beside ordinary sessions, server RSS) is tests/test_hostile_budget_browser.py
and, timed, benchmarks/bench_budget.py.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # explorer/ is not installed

from streamlit.testing.v1 import AppTest  # noqa: E402

import explorer.settings  # noqa: E402
from explorer import runs  # noqa: E402


def _kw(**over):
    s = {k[4:]: v for k, v in explorer.settings.DEFAULTS.items()}
    s.update(over)
    return runs.fit_params(s)


def _link(query):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("query", [
    {"design": "separated-10d", "n": "1000000", "M": "256", "K": "10"},
    {"restarts": "10", "mmrestarts": "10", "rounds": "10"},
])
def test_a_heavy_link_starts_no_fit_by_itself(query):
    # Unbudgeted, the first link ran its automatic fit for 184 s (the 60 s timeout would fail).
    at = _link(query)
    assert "fit" not in at.session_state
    notes = " ".join(e.value for e in at.info)  # information, not an error: nothing went wrong
    assert "larger than a link starts by itself" in notes and "press Run" in notes
    assert not any("automatic first fit" in e.value for e in at.error)


def test_a_heavy_link_simulates_no_heavy_data_either():
    # Simulating the link's 10^6 x 10 rows before its fit was refused held the GIL for seconds
    # (ordinary sessions' first chart at 4.95x an idle server's, benchmarks/bench_budget.py).
    at = _link({"design": "separated-10d", "n": "1000000", "M": "256", "K": "10"})
    data = at.session_state["data"]
    assert data.n == explorer.settings.SETTINGS["n"].default and data.d == 10
    notes = " ".join(e.value for e in at.info)
    assert "not simulated at n = 1,000,000" in notes and "Generate data" in notes


def test_a_link_refused_its_fit_keeps_its_data_when_they_are_cheap_to_simulate():
    # The rounds lesson's share link (n = 40 000, M = 32, 3 rounds): its fit waits for a click, and its
    # data fell back to the default 20 000 rows, whose comparison the Compare page then ran by itself
    # beside a note saying nothing was started; the address dropped n = 40 000.
    query = {"design": "separated-2d", "n": "40000", "K": "4", "M": "32", "rounds": "3"}
    at = _link(query)
    assert "fit" not in at.session_state and at.session_state["data"].n == 40_000
    notes = " ".join(e.value for e in at.info)
    assert "press Run" in notes and "not simulated" not in notes
    assert at.query_params["n"] == ["40000"] or at.query_params["n"] == "40000"
    at.switch_page("pages/compare.py").run()
    assert not at.exception and "compare" not in at.session_state
    assert any("press **Run the comparison**" in e.value for e in at.info)
    assert 40_000 <= explorer.settings.MAX_LINK_ROWS


def test_the_default_link_still_fits_by_itself():
    at = _link({})
    assert "fit" in at.session_state
    assert runs.fit_work(20_000, 1, _kw()) <= explorer.settings.MAX_LINK_WORK


def test_a_click_within_the_budget_passes_and_beyond_is_refused_with_the_sizes():
    # The paper's size (n = 10^6, d = 2, K = 4) may be clicked.
    runs.check_budget(1_000_000, 2, _kw(K=4))
    with pytest.raises(runs.InputError, match=r"beyond a session's budget.*n = 1,000,000 rows.*K = 10"):
        runs.check_budget(1_000_000, 10, _kw(K=10))
    with pytest.raises(runs.InputError, match="beyond a session's budget"):
        runs.check_budget(1_000_000, 2, _kw(K=4, restarts=10, mm_restarts=10, rounds=10))


def test_memory_is_estimated_before_allocating(monkeypatch):
    monkeypatch.setattr(explorer.settings, "MAX_SESSION_WORK", float("inf"))
    with pytest.raises(runs.InputError, match=r"need about .* MB of memory; a session may use 1,024 MB"):
        runs.check_budget(10_000_000, 2, _kw(K=2))


def test_attempt_turns_a_memory_error_into_a_message():
    def allocate():
        raise MemoryError("Unable to allocate 40.0 GiB for an array with shape (1000000, 5001)")

    assert runs.attempt("The simulation", allocate) is None


def _exp(parameter="n_machines", **over):
    """(design, varied parameter, the sweep's keyword arguments) of the Experiments page's settings
    at their defaults but K = 4 and ``over`` (by name without ``exp_``)."""
    s = {k[4:]: v for k, v in explorer.settings.DEFAULTS.items()}
    s.update({f"exp_{k}": v for k, v in dict(K=4, parameter=parameter, **over).items()})
    return s["exp_design"], parameter, runs.fit_params(s, sweep=True)


def test_a_sweep_is_checked_against_the_session_budget_before_it_starts():
    # The page's own default sweep passes; the same at n = 10^6 is 2.6e8 in all, each fit within budget.
    runs.check_sweep_budget(*_exp(), [2, 4, 8, 16])
    runs.check_budget(1_000_000, 2, _kw(K=4))
    with pytest.raises(runs.InputError, match=r"sweep is beyond a session's budget .*4 values x 2 repeats"):
        runs.check_sweep_budget(*_exp(n=1_000_000), [2, 4, 8, 16])
    # The swept n and rounds count at their own values; an alpha sweep's two distributed fits too.
    with pytest.raises(runs.InputError, match="sweep is beyond"):
        runs.check_sweep_budget(*_exp(parameter="n", repeats=20), [250_000, 500_000, 1_000_000])
    runs.check_sweep_budget(*_exp(parameter="refine_rounds", n=200_000), [0])
    with pytest.raises(runs.InputError, match="sweep is beyond"):
        runs.check_sweep_budget(*_exp(parameter="refine_rounds", n=200_000), [0, 5, 10, 10])
    assert (runs.fit_work(1000, 2, _kw(K=4), distributed=2)
            > runs.fit_work(1000, 2, _kw(K=4)) > runs.fit_work(1000, 2, _kw(K=4), reference=False))


def test_a_k_sweep_and_a_sweep_of_the_current_data_count_their_own_k_d_and_rows():
    # Each K swept counts at its own value, not the K box's (4): 2 repeats x (1 + 2) x 1.1e7 passes,
    # (2 + 8) x 1.1e7 does not (at K = 4 twice it would be 8.8e7, within budget).
    runs.check_sweep_budget(*_exp(parameter="n_experts", n=1_000_000), [1, 2])
    with pytest.raises(runs.InputError, match=r"sweep is beyond .*n = 1,000,000 rows, d = 1, K up to 8"):
        runs.check_sweep_budget(*_exp(parameter="n_experts", n=1_000_000), [2, 8])
    # On the current data the fits take its d and its training rows (8 000 of 10 000 with 20 %
    # held out), not the design's d = 1 and the n box's 20 000: 20 repeats x 4 values x 8 000 x 31
    # x 4 x 2.75 = 2.2e8, where the design's d would give 3.5e7.
    design, parameter, kw = _exp(repeats=20)
    kw.update(data=(np.zeros((10_000, 30)), np.zeros(10_000)), test_size=0.2)
    with pytest.raises(runs.InputError, match=r"sweep is beyond .*n = 8,000 rows, d = 30, K up to 4"):
        runs.check_sweep_budget(design, parameter, kw, [2, 4, 8, 16])
    kw["repeats"] = 2
    runs.check_sweep_budget(design, parameter, kw, [2, 4, 8, 16])


def test_the_experiments_page_refuses_a_sweep_beyond_the_budget_with_no_fit():
    at = _link({"xn": "1000000"})
    at.switch_page("pages/experiments.py").run()
    at.button(key="btn_sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "Checking the sweep failed" in errors and "beyond a session's budget" in errors
    assert "sweep_rows" not in at.session_state  # no sweep started


def test_the_server_runs_no_full_garbage_collection_after_every_run():
    # Streamlit's default collects the whole heap after each script run, holding the GIL for as
    # long as that takes (0.15 s and more with the compute stack imported), during which every
    # other session waits (benchmarks/bench_budget.py, benchmarks/README.md section 13).
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_figures_take_the_house_template_without_setting_it():
    # Setting a template through update_layout validates and deep-copies it (15-25 ms a figure,
    # the GIL held); a figure built after explorer.figures is imported has it from Plotly's default.
    import plotly.graph_objects as go
    import plotly.io as pio

    import explorer.figures

    assert pio.templates.default == explorer.figures.TEMPLATE
    fig = explorer.figures.common._layout(go.Figure(), "t")
    assert fig.layout.template.to_plotly_json() == pio.templates[explorer.figures.TEMPLATE].to_plotly_json()
