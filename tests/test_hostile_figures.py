"""Issue 22: user strings (column names) reach Plotly figures as text, never as live markup.

Plotly renders pseudo-HTML (``<a href>``, ``<b>``, ``<br>``) in titles, axis titles, legends and
hover text, and fills ``%{...}`` fields of hover templates: a column named like a link must show
as those characters, so no figure built from user names may contain a raw ``<a``.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

import numpy as np
import plotly.io as pio
import pytest

import explorer.figures
from moecore import DistributedMoE
from moecore.simulation import simulate_design

LINK = '<a href="http://x">x</a>'
FIELD = "%{y}"


@pytest.fixture(scope="module")
def fitted():
    sim = simulate_design("separated-2d", 1200, random_state=0)
    dm = DistributedMoE(sim.params.n_experts, 2, random_state=0).fit(sim.X, sim.y)
    return sim, dm


def _builders(sim, dm):
    names = [LINK, FIELD]
    one = simulate_design("teaching-1d", 600, random_state=0)
    machine = np.repeat(np.arange(2), len(sim.y) // 2)
    return {
        "data": lambda: explorer.figures.data_figure(sim.X, sim.y, sim.labels, sim.params, x_names=names, y_name=LINK),
        "gates": lambda: explorer.figures.gates_figure({"truth": sim.params}, sim.X, x_names=names),
        # names x if d = 1
        "compare": lambda: explorer.figures.compare_figure({"truth": one.params}, one.X, one.y, x_names=[LINK]),
        "experts": lambda: explorer.figures.experts_figure(dm, sim.X, sim.y, sim.params, x_names=names),
        "coefficients": lambda: explorer.figures.coefficient_figure(dm, sim.params, a=1, b=2, x_names=names),
        "machines": lambda: explorer.figures.machines_figure(sim.X, machine, x_names=names),
    }


@pytest.mark.parametrize("name", ["data", "gates", "compare", "experts", "coefficients", "machines"])
def test_a_column_named_like_a_link_is_text_in_every_figure(fitted, name):
    sim, dm = fitted
    text = json.dumps(json.loads(pio.to_json(_builders(sim, dm)[name]())))  # to_json writes < as \u003c
    # The name is there (as entities Plotly displays as the characters), but no live link.
    assert "&lt;a href=&quot;http://x&quot;&gt;" in text
    assert "<a" not in text.lower()


def test_a_hover_field_in_a_name_is_not_filled(fitted):
    sim, _ = fitted
    fig = explorer.figures.data_figure(sim.X, sim.y, x_names=[FIELD, "x2"], y_name="y")
    assert all("%{y}=" not in (t.hovertemplate or "") for t in fig.data)
    assert "&#37;{y}" in fig.data[0].hovertemplate
