"""The Fit page with many machines (AppTest): per-machine views become summaries, the whole plan
is on demand in a table, and nothing on the page grows with M."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def _charts(at):
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_fit_page_with_48_machines_shows_summaries():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["M"] = "48"
    at.query_params["n"] = "6000"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fit = at.session_state["fit"]
    assert fit.settings["M"] == 48
    charts = _charts(at)
    kept = len(fit.dm.local_models_)
    assert charts["fit_plan"]["layout"]["title"]["text"].startswith("Transport plan per machine")
    assert charts["fit_loglik"]["layout"]["title"]["text"].startswith(f"Local EM of {kept} machines")
    assert "slowest machines" in charts["fit_timing"]["layout"]["title"]["text"]
    for key in ("fit_plan", "fit_loglik", "fit_timing"):
        assert len(charts[key]["data"]) <= 12 and charts[key]["layout"]["height"] <= 500, key
    tables = [t.value for t in at.dataframe]
    plan = next(t for t in tables if "local expert" in t.columns)
    assert len(plan) == 3 * kept  # the whole plan, one row per local expert
