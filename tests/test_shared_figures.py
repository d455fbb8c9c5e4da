"""The Fit page's figures are built once per server for one fit and shared by every session that
shows it (issue 22: five sessions opening one link waited for each other's figures)."""

import explorer.figures as figures
from tests.app_helpers import new_session


def test_sessions_on_one_link_share_the_fit_pages_figures(monkeypatch):
    calls = []
    build = figures.timing_figure

    def counted(*args, **kwargs):
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(figures, "timing_figure", counted)
    query = {"M": "5", "K": "3", "n": "4000"}  # a link no other test opens: its figures are built here
    first = new_session(query=query)
    second = new_session(query=query)
    assert len(calls) == 1, "the second session built the timing figure again"
    assert first.session_state["fit"].key == second.session_state["fit"].key
    charts = [[c.proto.spec for c in at.get("plotly_chart")] for at in (first, second)]
    assert charts[0] and charts[0] == charts[1]

    # Other data (another n): its own figures.
    new_session(query=dict(query, n="4500"))
    assert len(calls) == 2
