"""App settings become estimator and sweep keyword arguments in one function, explorer.runs.fit_params.

The Fit page, a lesson and the Experiments page run under AppTest with fit_params wrapped (the
real function, its calls recorded); what each run fitted is compared with what fit_params gave.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

import pytest
from app_helpers import new_session, run_sweep

import explorer.settings
from explorer import runs

SMALL = {"n": "4000", "M": "4", "backend": "sequential", "jobs": "1"}
# Keyword arguments that fit_params keeps as plain values and the estimator as one Split object.
SPLIT_KEYS = ("split", "split_alpha", "split_feature")


@pytest.fixture()
def calls(monkeypatch):
    """[(sweep, automatic, keyword arguments returned)] of every fit_params call while the test runs."""
    seen, real = [], runs.fit_params

    def recorded(s, **kw):
        out = real(s, **kw)
        seen.append((kw.get("sweep", False), kw.get("automatic", False), dict(out)))
        return out

    monkeypatch.setattr(runs, "fit_params", recorded)
    return seen


def assert_fitted_with(dm, kw):
    params = dm.get_params()
    mapped = {k: v for k, v in kw.items() if k not in SPLIT_KEYS}
    assert mapped and set(mapped) <= set(params)
    assert {k: params[k] for k in mapped} == mapped
    assert (dm.split.kind, dm.split.alpha, dm.split.feature) == tuple(kw[k] for k in SPLIT_KEYS)


def test_the_fit_page_fits_with_what_fit_params_gives(calls):
    at = new_session("pages/fit.py", query=dict(SMALL, K="2", S="300", rounds="1", mw="auto"))
    calls.clear()
    at.number_input(key="cfg_fit_seed").set_value(5).run()
    at.button(key="btn_fit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    kw = [out for sweep, _, out in calls if not sweep][-1]
    assert (kw["n_experts"], kw["support_size"], kw["refine_rounds"], kw["random_state"]) == (2, 300, 1, 5)
    assert_fitted_with(at.session_state["fit"].dm, kw)


def test_a_lesson_fits_with_what_fit_params_gives(calls):
    at = new_session("pages/lessons.py", query={"backend": "sequential", "jobs": "1"})
    calls.clear()
    at.button(key="btn_lesson_non-iid").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # A lesson's fit is automatic (run in this process); the sidebar's checks of the fit are not.
    kw = next(out for sweep, automatic, out in calls if automatic and not sweep)
    assert (kw["split"], kw["machine_weights"], kw["n_machines"]) == ("region", "auto", 8)
    assert_fitted_with(at.session_state["fit"].dm, kw)


def test_a_sweep_runs_with_what_fit_params_gives(calls):
    at = new_session("pages/experiments.py", query=dict(SMALL, xK="2", xr="2", xs="7", xS="150"))
    calls.clear()
    rows = run_sweep(at, "n_machines", "4", n=3000, M=4)
    assert not at.exception and not at.error, [e.value for e in at.error]
    sweeps = [out for sweep, _, out in calls if sweep]
    assert sweeps, "the sweep's keyword arguments did not come from fit_params"
    kw = sweeps[-1]
    assert set(kw) >= {"n", "n_experts", "n_init", "random_state", "repeats", "include_global", "backend"}
    for r in rows:
        assert (r["n"], r["K"], r["restarts"], r["seed"], r["support"], r["backend"], r["n_jobs"]) == (
            kw["n"], kw["n_experts"], kw["n_init"], kw["random_state"], kw["support_size"], kw["backend"],
            kw["n_jobs"]) == (3000, 2, 2, 7, 150, "sequential", 1)


def test_every_setting_that_gives_an_argument_is_a_fit_or_experiments_setting():
    for s in explorer.settings.SETTINGS.values():
        assert not s.keyword or s.group in ("fit", "experiments"), s.name
    # The Experiments page's own names reach the sweep under the library's names.
    keywords = {explorer.settings.SETTINGS[n].keyword for n in explorer.settings.EXPERIMENT_SETTINGS}
    assert {"n", "n_machines", "n_experts", "n_init", "support_size", "random_state"} <= keywords
