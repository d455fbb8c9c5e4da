"""explorer.figures and explorer.io without a browser: figures are readable and consistent,
files are parsed or refused with a message that says what to change."""

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # explorer/ is not installed


import json
import warnings

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
from app_helpers import plain_title

import explorer.figures
import explorer.io
from explorer import tables
from moecore import DistributedMoE, MixtureOfExperts, MoEParams
from moecore.experiments import SWEEPABLE, compare_methods
from moecore.reduction import LargeMixture, ReductionProblem, mm_steps
from moecore.simulation import simulate_design


def _fitted(design, seed, *, with_global=False):
    """4000 points of ``design``, its distributed fit over 4 machines (and the global EM)."""
    sim = simulate_design(design, 4000, random_state=seed)
    K = sim.params.n_experts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(K, 4, backend="sequential", random_state=0).fit(sim.X, sim.y)
        if not with_global:
            return sim, dm
        return sim, dm, MixtureOfExperts(K, random_state=0).fit(sim.X, sim.y)


@pytest.fixture(scope="module")
def teach():
    return _fitted("teaching-1d", 3, with_global=True)


@pytest.fixture(scope="module")
def sep2d():
    return _fitted("separated-2d", 1)


def _readable(fig):
    """Every figure has a title, a template and, when it has axes, axis titles."""
    assert plain_title(fig), "figure without a title"
    # Plotly gives every figure a template object: compare it with the house one.
    assert fig.layout.template.to_plotly_json() == pio.templates[explorer.figures.TEMPLATE].to_plotly_json()
    return fig


def test_palette_is_distinct_and_cyclic():
    assert len(set(explorer.figures.PALETTE)) == len(explorer.figures.PALETTE)
    assert explorer.figures.expert_color(0) == explorer.figures.expert_color(len(explorer.figures.PALETTE))


def test_data_figure_colours_points_by_true_expert(teach):
    sim, _, _ = teach
    fig = _readable(explorer.figures.data_figure(sim.X, sim.y, sim.labels, sim.params, max_points=4000))
    pts = [t for t in fig.data if t.mode == "markers"]
    assert [t.name for t in pts] == ["true expert 1", "true expert 2", "true expert 3"]
    assert [t.marker.color for t in pts] == explorer.figures.PALETTE[:3]
    assert sum(len(t.x) for t in pts) == 4000  # under max_points: every point drawn
    assert fig.layout.xaxis.title.text == "x1" and fig.layout.yaxis.title.text == "y"
    assert any(t.name == "true E[y | x]" for t in fig.data)


def test_data_figure_subsamples_and_says_so(teach):
    sim, _, _ = teach
    fig = explorer.figures.data_figure(sim.X, sim.y, sim.labels, max_points=500)
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 500
    assert "500 of 4,000" in plain_title(fig)


def test_projection_and_one_input_views_for_d_gt_1(sep2d):
    sim, _ = sep2d
    fig = _readable(explorer.figures.projection_figure(sim.X, sim.labels))
    assert "PC 1" in fig.layout.xaxis.title.text
    assert len(fig.data) == 4
    fig = explorer.figures.data_figure(sim.X, sim.y, sim.labels, sim.params, feature=1)
    assert fig.layout.xaxis.title.text == "x2" and "other inputs at their mean" in plain_title(fig)


def test_reduced_colors_follow_the_truth(teach):
    sim, dm, _ = teach
    perm = np.array([2, 0, 1])
    shuffled = sim.params.permute(perm)  # shuffled expert k = true expert perm[k]
    col = explorer.figures.reduced_colors(shuffled, sim.params)
    assert col.tolist() == perm.tolist()
    col = explorer.figures.reduced_colors(dm.params_, sim.params)
    assert sorted(col.tolist()) == [0, 1, 2]
    assert explorer.figures.reduced_colors(dm.params_, None).tolist() == [0, 1, 2]


def test_local_experts_share_the_colour_of_their_reduced_expert(teach):
    sim, dm, _ = teach
    colors = explorer.figures.reduced_colors(dm.params_, sim.params)
    fig = _readable(explorer.figures.experts_figure(dm, sim.X, sim.y, sim.params, colors=colors))
    dom = dm.transport_plan_.dominant()
    local = [t for t in fig.data if (t.name or "").startswith("local → reduced")]
    reduced = {t.name: t.line.color for t in fig.data if (t.name or "").startswith("reduced expert")}
    n_lines = {}
    for t in local:
        k = int(t.name.rsplit(" ", 1)[1])
        assert t.line.color == explorer.figures.rgba(reduced[f"reduced expert {k}"], 0.45)
        n_lines[k - 1] = int(np.isnan(np.asarray(t.y, dtype=float)).sum())  # one NaN after each line
    assert sum(n_lines.values()) == 12
    assert n_lines == {c: int((colors[dom] == c).sum()) for c in np.unique(colors[dom])}
    assert [t.name for t in local] == sorted(t.name for t in local)  # legend in colour order
    no_local = explorer.figures.experts_figure(dm, sim.X, sim.y, None, show_local=False, show_data=False)
    assert len(no_local.data) == 3


def test_coefficient_cloud_marks_local_reduced_and_truth(sep2d):
    sim, dm = sep2d
    fig = _readable(explorer.figures.coefficient_figure(dm, sim.params, a=1, b=2))
    assert fig.layout.xaxis.title.text == "slope x1" and fig.layout.yaxis.title.text == "slope x2"
    n_local = sum(len(t.x) for t in fig.data if t.name.startswith("local"))
    assert n_local == 16
    assert any(t.name == "reduced experts" and len(t.x) == 4 for t in fig.data)
    assert any(t.name == "true experts" for t in fig.data)


def _heatmap_z(fig):
    """(L, K) cells of a plan heatmap drawn as one trace per reduced expert (column c of trace c;
    the other columns of each trace are empty)."""
    zs = [np.asarray(t.z, dtype=float) for t in fig.data]
    for c, z in enumerate(zs):
        assert np.isnan(np.delete(z, c, axis=1)).all()
    return np.column_stack([z[:, c] for c, z in enumerate(zs)])


def test_plan_heatmap_holds_all_the_mass_in_the_reduced_experts_colours(teach):
    sim, dm, _ = teach
    colors = explorer.figures.reduced_colors(dm.params_, sim.params)
    fig = _readable(explorer.figures.plan_figure(dm, colors=colors))
    z = _heatmap_z(fig)
    assert z.shape == (12, 3)
    assert z.sum() == pytest.approx(100.0, rel=1e-9)
    assert fig.data[0].y[0] == "m1 · e1"
    assert all(list(t.x) == ["reduced 1", "reduced 2", "reduced 3"] for t in fig.data)
    # Column c is reduced expert c + 1 in colour order, shaded white -> that expert's colour.
    assert [t.colorscale[-1][1] for t in fig.data] == explorer.figures.PALETTE[:3]
    for c in range(3):
        k = int(np.flatnonzero(colors == c)[0])
        np.testing.assert_allclose(z[:, c], 100 * dm.transport_plan_.coupling[:, k])
    assert len({t.zmax for t in fig.data}) == 1  # one scale: equal shades are equal masses


def test_convergence_and_timing_figures(teach):
    _, dm, g = teach
    fig = _readable(explorer.figures.loglik_figure(dm, g))
    assert len(fig.data) == 5 and fig.data[-1].name == "global EM (all data)"
    # Each machine in its colour of the machines chart (Plotly's ten came round again at machine 11).
    from explorer.figures.fit import machine_color
    assert [t.line.color for t in fig.data[:4]] == [machine_color(m, 4) for m in range(4)]
    for t in fig.data:
        assert np.all(np.diff(np.asarray(t.y)) >= -1e-9)  # EM never decreases the likelihood
    fig = _readable(explorer.figures.mm_figure(dm.mm_history_, dm.reduction_.init_objectives))
    assert np.all(np.diff(np.asarray(fig.data[0].y)) <= 1e-12)
    fig = _readable(explorer.figures.timing_figure(dm, g.fit_time_))
    labels = list(fig.data[0].y)
    assert labels[:4] == [f"machine {m}" for m in range(1, 5)]
    assert "learning time (paper's figure)" in labels and "global EM on all data" in labels
    assert "screening" in labels and "reduction" in labels
    vals = dict(zip(labels, fig.data[0].x, strict=True))
    assert vals["learning time (paper's figure)"] == pytest.approx(dm.timings_["learning_time"])
    compare = dm.timings_["compare"]  # the screening's comparisons on the machines' own rows
    assert vals[f"slowest of {compare.size} comparisons on the machines' rows"] == pytest.approx(compare.max())


def test_gates_figure_sums_to_one(teach):
    sim, dm, _ = teach
    fig = _readable(explorer.figures.gates_figure({"reduced": dm.params_, "truth": sim.params}, sim.X))
    assert len(fig.data) == 6
    total = sum(np.asarray(t.y) for t in fig.data[:3])
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    assert all(t.line.dash == "dash" for t in fig.data[3:])


@pytest.mark.parametrize("design", ["teaching-1d", "separated-2d"])
def test_compare_figure_has_one_panel_per_method(design):
    train = simulate_design(design, 3000, random_state=0)
    test = simulate_design(design, 1000, random_state=1)
    K = train.params.n_experts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_methods(train.X, train.y, test.X, test.y, K, 3, truth=train.params, backend="sequential")
    fig = _readable(explorer.figures.compare_figure(cmp.params, test.X, test.y, truth=train.params))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == list(cmp.params)
    xaxes = [k for k in fig.layout if k.startswith("xaxis")]
    assert len(xaxes) == 5
    # At most three panels a row, so that a panel keeps a readable width in a narrow page: five in one
    # row left 86 px each in a 900 px window, their titles written over each other.
    widths = [fig.layout[k].domain[1] - fig.layout[k].domain[0] for k in xaxes]
    assert min(widths) > 0.28, widths
    # One y scale for all, across rows.
    assert all(fig.layout[k].matches == "y" for k in fig.layout if k.startswith("yaxis") and k != "yaxis")


def test_sweep_figure_mean_and_sd():
    df = pd.DataFrame({"method": ["reduction"] * 4 + ["global"] * 4, "value": [2, 2, 4, 4] * 2,
                       "rpe": [1.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]})
    fig = _readable(explorer.figures.sweep_figure(df, "n_machines", "rpe"))
    red = next(t for t in fig.data if t.name == "reduction")
    assert list(red.y) == [200.0, 200.0]  # RPE shown in %
    assert red.error_y.array[0] == pytest.approx(100 * np.std([1.0, 3.0], ddof=1))
    glob = next(t for t in fig.data if t.name == "global")
    assert glob.line.dash == "dot"
    assert fig.layout.xaxis.title.text == "machines M"
    assert plain_title(fig) == "relative prediction error RPE (%) against number of machines M"
    assert plain_title(explorer.figures.sweep_figure(None, "n", "rpe")) == "No results yet"
    big = pd.DataFrame({"method": ["reduction"] * 2, "value": [1000, 100000], "rpe": [1.0, 0.5]})
    assert explorer.figures.sweep_figure(big, "n", "rpe").layout.xaxis.type == "log"


def test_sweep_figure_sets_each_methods_bars_beside_the_others():
    # At the same x the reduction's error bars hid the global EM's (drawn first).
    df = pd.DataFrame({"method": ["global", "reduction"] * 6, "value": [2, 2, 8, 8, 64, 64] * 2,
                       "rpe": [0.130, 0.134, 0.131, 0.139, 0.136, 0.142, 0.128, 0.136, 0.133, 0.141, 0.137, 0.140]})
    fig = explorer.figures.sweep_figure(df, "n_machines", "rpe")
    # On a log axis each method sits beside the value by a factor: Plotly's scatter groups shift by a width in
    # the axis' units, which drew S / floor(n/4M) = 0.001 at 0.3 (the audit of 2026-12-06).
    assert fig.layout.xaxis.type == "log" and fig.layout.scattermode is None
    glob, red = (next(t for t in fig.data if t.name == m) for m in ("global", "reduction"))
    shift = np.log10(np.asarray(red.x, float) / [2, 8, 64])
    assert np.allclose(shift, -np.log10(np.asarray(glob.x, float) / [2, 8, 64])) and 0.01 < shift[0] < 0.25 * 0.6 / 2
    assert list(red.customdata[:, 1]) == ["2", "8", "64"]  # the hover names the value run, not the drawn x
    # The axes keep to the data: grouped points would otherwise stretch y down to 0, as bars do.
    lo, hi = fig.layout.yaxis.range
    assert 12.5 < lo < 12.8 and 14.2 < hi < 14.5
    assert fig.layout.xaxis.range[0] < np.log10(2) < np.log10(64) < fig.layout.xaxis.range[1] < 1.9
    tiny = explorer.figures.sweep_figure(df.assign(value=[0.001, 0.001, 0.25, 0.25, 4, 4] * 2), "support", "rpe")
    for t in tiny.data:
        assert np.all(np.abs(np.log10(np.asarray(t.x, float) / [0.001, 0.25, 4])) < 0.3), (t.name, t.x)
    linear = explorer.figures.sweep_figure(df.assign(value=[2, 2, 4, 4, 6, 6] * 2), "n_machines", "rpe")
    assert linear.layout.xaxis.type == "linear" and linear.layout.scattermode == "group"
    assert {t.name: t.offsetgroup for t in linear.data} == {"global": "global", "reduction": "reduction"}


def test_a_method_keeps_its_colour_across_pages_and_none_is_an_experts():
    # Compare drew "reduction" in expert 1's blue on the page of the experts' panels, and a method's colour
    # followed its row: "median" was green in one table and red in another.
    from explorer.figures.common import PALETTE

    methods = ["reduction", "global", "weighted average", "median", "single machine"]
    table = pd.DataFrame({f"mse_{b}": [0.1, 0.2, 0.3, 0.4, 0.5] for b in ("gates", "experts", "variances")},
                         index=methods)
    bars = {t.name: t.marker.color for t in explorer.figures.param_error_figure(table).data}
    swept = pd.DataFrame({"method": methods[::-1] * 2, "value": [2] * 5 + [4] * 5, "rpe": np.arange(10.0)})
    lines = {t.name: t.line.color for t in explorer.figures.sweep_figure(swept, "n_machines", "rpe").data}
    for m in ("reduction", "weighted average", "median", "single machine"):
        assert bars[m] == lines[m] and bars[m] not in PALETTE, (m, bars[m], lines[m])
    assert len({bars[m] for m in methods if m != "global"}) == 4


def test_mm_step_and_large_mixture_figures(teach):
    sim, dm, _ = teach
    large = LargeMixture([m.params_ for m in dm.local_models_], dm.weights_)
    problem = ReductionProblem(large, sim.X[dm.support_indices_])
    B0, V0 = problem.initial_experts(3, np.random.default_rng(0))
    states = list(mm_steps(problem, B0, V0, max_iter=5))
    fig = _readable(explorer.figures.mm_step_figure(problem, states[-1], truth=sim.params))
    assert f"MM iteration {states[-1].iteration}" in plain_title(fig)
    assert sum(1 for t in fig.data if (t.name or "").startswith("reduced expert")) == 3
    fig = _readable(explorer.figures.large_mixture_figure(large, sim.X))
    total = sum(np.asarray(t.y) for t in fig.data)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------- io
def test_csv_round_trip():
    X = np.array([[0.5], [1.5], [2.0], [2.5], [3.0]])
    raw = explorer.io.data_to_csv(X, [1.0, 2.0, 3.0, 4.0, 5.0], [0, 1, 1, 0, 1])
    df = explorer.io.parse_csv(raw, "d.csv")
    assert list(df.columns) == ["x1", "y", "true_expert"]
    X2, y2 = explorer.io.select_columns(df, "y", ["x1"])
    np.testing.assert_allclose(X2, X)
    np.testing.assert_allclose(y2, [1, 2, 3, 4, 5])
    # Fewer rows than a mixture of two experts needs: refused, saying how many.
    with pytest.raises(explorer.io.InputError, match=r"has 4 data row\(s\).*needs at least 5"):
        explorer.io.select_columns(df.iloc[:4], "y", ["x1"])


def test_csv_semicolon_and_bom_are_read():
    df = explorer.io.parse_csv("\ufeffa;b\n1;2\n3;5\n".encode("utf-8"), "s.csv")
    assert list(df.columns) == ["a", "b"] and df.shape == (2, 2)


BAD_CSV = {
    "empty": (b"", "e.csv", "empty"),
    "blank": (b"  \n\n", "e.csv", "empty"),
    "header only": (b"x,y\n", "h.csv", "no data rows"),
    "ragged": (b"x,y\n1,2\n3,4,5\n6,7\n", "r.csv", "different number of fields"),
    "ragged first row": (b"x,y\n1,2,3\n4,5\n", "r.csv", "the first data row has 3, the header 2"),
    "latin-1": ("x,y\n1,caf\u00e9\n".encode("latin-1"), "l.csv", "not UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "p.csv", "binary data"),
    "extension": (b"x,y\n1,2\n", "data.xlsx", "not a .csv"),
    "one column": (b"x\n1\n2\n", "o.csv", "column"),
    "duplicate names": (b"x,x\n1,2\n3,4\n", "d.csv", "duplicated column names"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_files_are_refused_with_a_fix(case):
    data, name, expect = BAD_CSV[case]
    with pytest.raises(explorer.io.InputError, match=expect):
        explorer.io.parse_csv(data, name)


def test_too_many_rows_refused_before_parsing():
    data = b"x,y\n" + b"1,2\n" * 1_000_000
    with pytest.raises(explorer.io.InputError, match=r"1,000,000 data rows.*at most 200,000"):
        explorer.io.parse_csv(data, "big.csv")


@pytest.mark.parametrize("y_col,x_cols,expect", [
    ("y", ["txt"], "column 'txt' is not numeric: row 3"),
    ("y", ["gap"], "1 missing"),
    ("y", ["c"], "constant"),
    ("y", [], "at least one input"),
    ("y", ["y"], "is the response"),
    ("c", ["x"], "response 'c' is constant"),
    ("nope", ["x"], "not in the file"),
])
def test_column_selection_errors(y_col, x_cols, expect):
    # Five rows: the fewest a two-expert fit of one input takes (fewer is refused for the rows, first).
    df = explorer.io.parse_csv(b"x,y,txt,gap,c\n1,2,3,4,1\n2,3,abc,,1\n3,5,4,6,1\n4,1,5,7,1\n5,4,6,8,1\n", "c.csv")
    with pytest.raises(explorer.io.InputError, match=expect):
        explorer.io.select_columns(df, y_col, x_cols)


def test_model_json_round_trip_and_schema():
    prm = MoEParams([[0.0, 1.0, 0.0], [1.0, -1.0, 0.0]], [[1.0, 2.0, 3.0], [0.5, 0.0, -0.5]], [0.1, 0.2, 0.3])
    text = explorer.io.model_to_json(prm, {"n": np.int64(5)})
    back, meta = explorer.io.model_from_json(text.encode())
    np.testing.assert_allclose(back.experts, prm.experts)
    assert meta == {"n": 5}


def _doc(**params):
    p = {"gates": [[0, 0], [1, 0]], "experts": [[1, 2], [0, 1]], "variances": [0.1, 0.2]}
    p.update(params)
    return {"format": explorer.io.MODEL_FORMAT, "version": 1, "params": p}


BAD_JSON = {
    "not json": (b"{gates: 1", "not valid JSON"),
    "not utf-8": ('{"a": "\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "wrong format": (json.dumps(dict(_doc(), format="other")).encode(), "schema at format"),
    "no params": (json.dumps({"format": explorer.io.MODEL_FORMAT, "version": 1}).encode(), "'params' is a required"),
    "negative variance": (json.dumps(_doc(variances=[0.1, -1])).encode(), "params/variances/1"),
    "string entry": (json.dumps(_doc(experts=[["a", 2], [0, 1]])).encode(), "params/experts/0/0"),
    "ragged": (json.dumps(_doc(gates=[[0, 0, 1], [1, 0]])).encode(), "ragged"),
    "shape mismatch": (json.dumps(_doc(variances=[0.1, 0.2, 0.3])).encode(), "must agree"),
    "extra field": (json.dumps(_doc(code="import os")).encode(), "Additional properties"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_model_json_is_refused(case):
    data, expect = BAD_JSON[case]
    with pytest.raises(explorer.io.InputError, match=expect):
        explorer.io.model_from_json(data)


def test_figures_mark_screened_machines_and_rounds(teach):
    """A machine the screening flagged is marked on the EM curves, the plan and the timing chart."""
    import copy

    from moecore.screening import ScreeningReport

    _, dm, g = teach
    dm = copy.deepcopy(dm)
    m = int(dm.machines_[1])
    dm.screening_ = ScreeningReport(dm.local_scores_, dm.screening_.threshold, [m], {m: -9.0}, {m: "refit"})
    dm.timings_ = dict(dm.timings_, refit=np.array([0.5]), rounds=np.array([0.1, 0.2]))
    ll = explorer.figures.loglik_figure(dm, g)
    flagged = [t for t in ll.data if "flagged" in t.name]
    assert [t.name for t in flagged] == [f"machine {m + 1} (flagged; its refit)"] and flagged[0].line.dash == "dash"
    plan = explorer.figures.plan_figure(dm)
    assert sum(r.endswith("(refit)") for r in plan.data[0].y) == dm.local_models_[1].params_.n_experts
    tf = explorer.figures.timing_figure(dm, g.fit_time_)
    vals = dict(zip(tf.data[0].y, tf.data[0].x, strict=True))
    assert vals[f"refit of machine {m + 1}"] == 0.5
    assert vals["refinement rounds (2)"] == pytest.approx(0.3)
    assert "learning time (paper's figure, with rounds)" in vals


# ------------------------------------------------------------------- views that scale to M = 256
@pytest.fixture(scope="module")
def many():
    """teaching-1d over M = 256 machines of 40 rows (small shards: the screening flags some)."""
    sim = simulate_design("teaching-1d", 256 * 40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(3, 256, backend="sequential", random_state=0).fit(sim.X, sim.y)
        g = MixtureOfExperts(3, random_state=0).fit(sim.X, sim.y)
    assert dm.screening_.flagged, "the M = 256 views are meant to show flagged machines"
    return sim, dm, g


def _legend_entries(fig):
    return [t.name for t in fig.data if t.name and t.showlegend is not False]


def test_timing_summary_at_256_machines(many):
    _, dm, g = many
    fig = _readable(explorer.figures.timing_figure(dm, g.fit_time_))
    assert len(fig.data) <= 6 and fig.layout.height <= 500
    bars = next(t for t in fig.data if t.type == "bar")
    assert len(bars.y) <= 12  # steps and totals, not one bar per machine
    vals = dict(zip((y.replace("<br>", " ") for y in bars.y), bars.x, strict=True))  # labels wrapped at 26
    local = dm.timings_["local"]
    slowest = int(np.argmax(local))
    assert vals[f"slowest local fit (machine {slowest + 1})"] == pytest.approx(local[slowest])
    assert vals["median local fit (of 256)"] == pytest.approx(np.median(local))
    assert vals["learning time (paper's figure)"] == pytest.approx(dm.timings_["learning_time"])
    assert vals["global EM on all data"] == pytest.approx(g.fit_time_)
    assert f"slowest machines: {slowest + 1} (" in plain_title(fig)
    # Every machine is one point of the distribution, flagged ones in red.
    pts = [t for t in fig.data if t.type == "scatter"]
    assert sorted(int(m) for t in pts for m in t.customdata) == list(range(1, 257))
    red = next(t for t in pts if t.marker.color == "#d62728")
    assert {int(m) - 1 for m in red.customdata} == set(dm.screening_.flagged)


def test_plan_per_machine_at_256_machines(many):
    sim, dm, _ = many
    colors = explorer.figures.reduced_colors(dm.params_, sim.params)
    fig = _readable(explorer.figures.plan_machines_figure(dm, colors=colors))
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 3 and len(fig.data) <= 4 and fig.layout.height <= 500
    assert [t.marker.color for t in bars] == explorer.figures.PALETTE[:3]
    kept = len(dm.local_models_)
    share = np.column_stack([np.asarray(t.y, dtype=float) for t in bars])
    assert share.shape == (kept, 3)
    np.testing.assert_allclose(share.sum(axis=1), 100.0)  # each machine's mass, all of it
    dropped = sorted(m for m, a in dm.screening_.actions.items() if a == "dropped")
    assert set(np.asarray(bars[0].x, dtype=int) - 1).isdisjoint(dropped)
    assert (f"{len(dropped)} dropped by screening" in plain_title(fig)) == bool(dropped)
    table = tables.plan_table(dm, colors=colors)
    assert len(table) == 3 * kept
    to = table[[f"to reduced {k} (%)" for k in (1, 2, 3)]].to_numpy()
    np.testing.assert_allclose(to.sum(axis=1), table["mass (% of the mixture)"])
    assert to.sum() == pytest.approx(100.0)
    assert set(table.loc[table["screening"] != "", "machine"] - 1) <= set(dm.screening_.flagged)


def test_em_curves_at_256_machines_are_a_band_with_outliers(many):
    _, dm, g = many
    fig = _readable(explorer.figures.loglik_figure(dm, g))
    assert len(fig.data) <= 3 + explorer.figures.MAX_OUTLIERS + 1 and fig.layout.height <= 500
    names = _legend_entries(fig)
    assert names[:2] == ["10-90 % of the machines", "median machine"] and names[-1] == "global EM (all data)"
    in_reduction = {int(m) for m in dm.machines_}
    for m in dm.screening_.flagged:
        if m in in_reduction:  # a dropped machine has no local model left to draw
            assert any(n.startswith(f"machine {m + 1} (flagged") for n in names)
    # Quantiles of non-decreasing curves (each padded with its last value) never decrease.
    for t in fig.data[:3]:
        assert np.all(np.diff(np.asarray(t.y, dtype=float)) >= -1e-12)
    lo, hi, med = (np.asarray(t.y, dtype=float) for t in fig.data[:3])  # band edges, then the median
    assert np.all(lo <= med + 1e-12) and np.all(med <= hi + 1e-12)
    assert fig.layout.xaxis.dtick >= 1 and fig.layout.xaxis.tickformat == "d"


def test_small_m_keeps_the_per_machine_views(teach):
    _, dm, g = teach
    assert len(explorer.figures.timing_figure(dm, g.fit_time_).data) == 1
    assert len(explorer.figures.loglik_figure(dm, g).data) == 5


def test_mm_axis_has_whole_iterations(teach):
    _, dm, _ = teach
    fig = explorer.figures.mm_figure(dm.mm_history_[:3])
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"


def test_mm_axis_counts_small_objectives_in_a_power_of_ten():
    # R moving in its fourth digit (teaching-1d: 0.0017960 -> 0.0017944) read 0.0017945, 0.001795, ...
    fig = explorer.figures.mm_figure([0.0017960, 0.0017944, 0.0017944])
    np.testing.assert_allclose(fig.data[0].y, [1.7960, 1.7944, 1.7944])
    assert fig.layout.yaxis.title.text.endswith("(x 1e-3)")
    np.testing.assert_array_equal(fig.data[0].customdata, [0.0017960, 0.0017944, 0.0017944])  # hover: R itself
    plain = explorer.figures.mm_figure([3.0, 2.0])
    assert list(plain.data[0].y) == [3.0, 2.0] and "(x 1e" not in plain.layout.yaxis.title.text


def test_the_mark_sits_on_the_line_when_the_axis_counts_in_a_power_of_ten():
    """Learn's "you are here" was drawn at the raw R (0.040) on an axis counted in 1e-2 (the line at 4.01)."""
    fig = explorer.figures.mm_figure([0.0412, 0.0401, 0.0401], mark=1)
    line, here = fig.data
    assert here.name == "you are here" and here.x[0] == 1
    assert here.y[0] == line.y[1]


def test_legends_list_experts_in_order(teach):
    sim, dm, _ = teach
    perm = np.array([2, 0, 1])
    fig = explorer.figures.gates_figure({"reduced": dm.params_}, sim.X, colors={"reduced": perm})
    assert [t.name for t in fig.data] == ["reduced: expert 1", "reduced: expert 2", "reduced: expert 3"]
    fig = explorer.figures.experts_figure(dm, sim.X, colors=perm, show_local=False, show_data=False)
    assert [t.name for t in fig.data] == ["reduced expert 1", "reduced expert 2", "reduced expert 3"]


def test_param_error_figure_splits_gates_experts_variances(teach):
    sim, dm, g = teach
    test = simulate_design("teaching-1d", 2000, random_state=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_methods(sim.X, sim.y, test.X, test.y, 3, 4, truth=sim.params, backend="sequential",
                              global_model=g)
    table = cmp.table()
    fig = _readable(explorer.figures.param_error_figure(table, n_machines=4, support_size=len(dm.support_indices_)))
    assert [a.text for a in fig.layout.annotations] == ["against the truth", "against the global EM"]
    red = [t for t in fig.data if t.name == "reduction"]
    assert len(red) == 2 and list(red[0].x) == ["gates", "experts", "variances"]
    assert list(red[0].y) == pytest.approx([table.loc["reduction", f"mse_{b}"] for b in explorer.figures.BLOCKS])
    assert list(red[1].y) == pytest.approx([table.loc["reduction", f"gap_{b}"] for b in explorer.figures.BLOCKS])
    assert sum(t.name == "global" for t in fig.data) == 1  # vs truth only: not against itself
    assert fig.layout.yaxis.type == "log"
    assert "supporting sample" in plain_title(fig) and "grows with M" in plain_title(fig)


def test_sweep_labels_and_single_value_axis():
    df = pd.DataFrame({"method": ["reduction", "global"], "value": [1_000_000, 1_000_000],
                       "rpe": [0.0145, 0.0103], "mse_all": [0.1, 0.01], "loglik": [-1.0, -0.9]})
    fig = explorer.figures.sweep_figure(df, "n", "rpe")
    red = next(t for t in fig.data if t.name == "reduction")
    assert fig.layout.xaxis.type == "category" and list(red.x) == ["1,000,000"]
    assert red.y[0] == pytest.approx(1.45)  # RPE in %, as the paper reports it
    assert fig.layout.yaxis.title.text == "RPE (%)"
    shown = tables.readable_table(df.set_index(["value", "method"]))
    assert list(shown.columns) == ["relative prediction error RPE (%)", "parameter MSE vs truth, all blocks",
                                   "held-out log-likelihood per sample (nats)"]
    assert list(shown.index.names) == ["value", "method"]
    assert shown.iloc[0, 0] == pytest.approx(1.45)
    for raw in ("rpe", "mse_all", "loglik", "time", "ari", "support", "restarts"):
        assert tables.label(raw) != raw


def test_axis_titles_fit_along_a_small_plot():
    """An axis title runs along the plot: "BIC on the training rows (lower is better)" (42 characters)
    ran past a 230 px plot into the chart's title with the projector's larger text."""
    for name in (*tables.SWEEP_METRICS, *SWEEPABLE, "alpha"):
        assert len(tables.axis_label(name)) <= tables.AXIS_CHARS, (name, tables.axis_label(name))
    bic = pd.DataFrame({"method": ["reduction", "global"] * 2, "value": [1, 1, 3, 3], "bic": [6400, 6380, 1400, 1390]})
    fig = explorer.figures.sweep_figure(bic, "n_experts", "bic")
    assert fig.layout.yaxis.title.text == "BIC (lower is better)"
    assert fig.layout.yaxis.tickformat.endswith("~r")  # 6,000, not Plotly's 6e+3 from a "g" format


def test_sweep_axis_is_padded_when_values_nearly_agree():
    df = pd.DataFrame({"method": ["reduction", "global"], "value": [128, 128], "rpe": [0.1245875, 0.1245885]})
    lo, hi = explorer.figures.sweep_figure(df, "n_machines", "rpe").layout.yaxis.range
    assert lo < 12.45875 * 0.96 and hi > 12.45885 * 1.04  # not a zoom onto the 5th digit
    df = pd.DataFrame({"method": ["reduction", "global"], "value": [128, 128], "rpe": [0.10, 0.15]})
    # An ordinary spread: the data's extent and 8 % of it either side.
    assert explorer.figures.sweep_figure(df, "n_machines", "rpe").layout.yaxis.range == pytest.approx((9.6, 15.4))


def test_reduced_experts_drawn_where_their_gate_is_largest_unless_full_lines(teach):
    sim, dm, _ = teach
    from moecore.model import gate_proba

    part = explorer.figures.experts_figure(dm, sim.X, show_local=False, show_data=False)
    full = explorer.figures.experts_figure(dm, sim.X, show_local=False, show_data=False, full_lines=True)
    t = np.asarray(part.data[0].x, dtype=float)
    top = gate_proba(t[:, None], dm.params_).argmax(axis=1)
    for k, (a, b) in enumerate(zip(part.data, full.data, strict=True)):
        ya, yb = np.asarray(a.y, dtype=float), np.asarray(b.y, dtype=float)
        assert not np.isnan(yb).any()
        np.testing.assert_array_equal(np.isnan(ya), top != k)
        np.testing.assert_allclose(ya[top == k], yb[top == k])


def test_the_projector_s_text_is_written_into_a_copy_of_the_figure(teach):
    """scale_text (explorer.chrome.chart under the projector toggle) writes every text size out, scaled:
    Streamlit's theme sizes of a figure that sets none, the figure's own where it sets them; the original
    figure is left as it was, and no colour bar appears on a trace that shows none."""
    from explorer.figures.common import THEME_TEXT_PX

    sim, dm, _ = teach
    plan = explorer.figures.plan_figure(dm)  # a heatmap with a colour scale and top axis labels of 13 px
    experts = explorer.figures.experts_figure(dm, sim.X, sim.y, sim.params)  # scatter points, no colour bar
    machines = explorer.figures.machines_figure(sim.X, np.arange(sim.X.shape[0]) % 4)  # an annotation, a colour bar
    for fig in (plan, experts, machines):
        before = json.loads(fig.to_json())
        big = explorer.figures.scale_text(fig, 1.25)
        assert json.loads(fig.to_json()) == before
        lay = big.layout
        assert lay.font.size == 1.25 * THEME_TEXT_PX["text"] and lay.title.font.size == 1.25 * THEME_TEXT_PX["title"]
        assert lay.height == round(1.25 * fig.layout.height) and lay.margin.t == round(1.25 * fig.layout.margin.t)
        for ax, old in zip(big.select_xaxes(), fig.select_xaxes(), strict=True):
            assert ax.tickfont.size == pytest.approx(1.25 * (old.tickfont.size or THEME_TEXT_PX["text"]), abs=0.01)
            assert ax.title.font.size == pytest.approx(1.25 * THEME_TEXT_PX["axis_title"], abs=0.01)
        for note, old in zip(lay.annotations, fig.layout.annotations, strict=True):
            assert note.font.size == pytest.approx(1.25 * (old.font.size or THEME_TEXT_PX["text"]), abs=0.01)
        for t, old in zip(big.data, fig.data, strict=True):
            if t.type == "scatter" and not old.marker.showscale:
                assert "colorbar" not in t.marker.to_plotly_json()
            if t.type == "heatmap" and old.showscale is not False:
                assert t.colorbar.tickfont.size == 1.25 * THEME_TEXT_PX["text"]
    assert plan.layout.xaxis.tickfont.size == 13
    assert explorer.figures.scale_text(plan, 1.25).layout.xaxis.tickfont.size == 16.25
    assert len(machines.layout.annotations) == 1 and machines.layout.annotations[0].font.size == 11


def test_the_note_of_fits_beyond_the_axis_keeps_to_half_a_page():
    # At M = 256 the note named a dozen machines in one line of 90 characters and ran past the left edge of a
    # chart in half the page's width (the audit of 2026-12-06): lines of at most 45 characters now.
    from explorer.figures.fit import beyond_axis_note

    lines = beyond_axis_note([f"{m} ({300 - m})" for m in range(240, 257)]).split("<br>")
    assert lines == ["beyond the axis, machine (iterations):", "240 (60), 241 (59), 242 (58), 243 (57),",
                     "244 (56), 245 (55), 246 (54), 247 (53) ..."]
    assert beyond_axis_note(["7 (300)"]) == "beyond the axis, machine (iterations):<br>7 (300)"


def test_semicolon_files_with_decimal_commas_are_read_as_numbers():
    # Europe's spreadsheet exports: semicolons between fields, commas in numbers. The app read them as text and
    # asked for another file (the audit of 2026-12-06). A thousands separator stays text (ambiguous), and a
    # comma-separated file is never read this way.
    from explorer.io import DECIMAL_COMMA_ATTR, parse_csv

    df = explorer.io.parse_csv(b"x;y;label\n1,5;5,88;a\n-2;-0,5;b\n3;1e2;c\n", "eu.csv")
    assert df["x"].tolist() == [1.5, -2.0, 3.0] and df["y"].tolist() == [5.88, -0.5, 100.0]
    assert df.attrs[DECIMAL_COMMA_ATTR] == ["x", "y"] and df["label"].tolist() == ["a", "b", "c"]
    kept = parse_csv(b"x;y\n1.234,5;2\n7;3\n", "thousands.csv")
    assert not pd.api.types.is_numeric_dtype(kept["x"]) and DECIMAL_COMMA_ATTR not in kept.attrs
    assert DECIMAL_COMMA_ATTR not in parse_csv(b'x,y\n"1,5",2\n3,4\n', "quoted.csv").attrs


def test_comment_lines_are_skipped_and_a_commented_header_is_the_header():
    # A lab logger's notes above the header, a note between rows, numpy.savetxt(header="y,x")'s "# y,x": read as
    # a one-column header with every row ragged, a text row in y, or two data rows named "# y = weight" (the
    # audit of 2026-12-06). The page says how many lines it skipped.
    from explorer.io import COMMENT_LINES_ATTR, parse_csv

    notes = parse_csv(b"# from the lab\n# units: kg\ny,x\n1,2\n3,4\n", "notes.csv")
    assert list(notes.columns) == ["y", "x"] and notes["y"].tolist() == [1, 3] and notes.attrs[COMMENT_LINES_ATTR] == 2
    between = parse_csv(b"y,x\n1,2\n# a note\n3,4\n", "between.csv")
    assert between["y"].tolist() == [1, 3] and between.attrs[COMMENT_LINES_ATTR] == 1
    for sep in ",;":
        saved = parse_csv(f"# y{sep}x\n1.5{sep}2\n3{sep}4\n".encode(), "savetxt.csv")
        assert list(saved.columns) == ["y", "x"] and saved["y"].tolist() == [1.5, 3.0]
    titled = parse_csv(b"# y = weight, x = height\ny,x\n1,2\n", "titled.csv")
    assert list(titled.columns) == ["y", "x"] and titled["x"].tolist() == [2]
    assert COMMENT_LINES_ATTR not in parse_csv(b"y,x\n1,2\n", "plain.csv").attrs


def test_a_file_whose_inputs_read_as_text_is_told_why_from_one_of_its_cells():
    # The page blamed decimal commas for "5.1%" or "-" cells, and Excel's "sep=;" first line made a broken
    # header (the audit of 2026-12-06).
    from explorer.io import parse_csv, text_cell_advice

    assert "percent signs" in text_cell_advice(parse_csv(b"y,x\n1,5.1%\n2,3%\n", "p.csv"), "y")
    dash = text_cell_advice(parse_csv(b"y,x\n1,-\n2,3\n", "d.csv"), "y")
    assert "holds '\\-'" in dash and "decimal comma" not in dash
    assert "decimal comma" in text_cell_advice(parse_csv(b"y;x\n1;1.234,5\n2;3\n", "t.csv"), "y")
    assert text_cell_advice(parse_csv(b"y,x\n1,2\n2,3\n", "ok.csv"), "y") == ""
    excel = parse_csv(b"sep=;\nx;y\n1,5;2\n3;4\n", "excel.csv")
    assert list(excel.columns) == ["x", "y"] and excel["x"].tolist() == [1.5, 3.0]


def test_the_timing_bars_hold_every_term_of_the_learning_time():
    # A region split with covariate weights spends time on the machine weights and on warm refits: the chart
    # had no bars for them, and its bars came to 125 of the 184 ms it called the learning time (the audit of
    # 2026-12-06, the non-IID lesson).
    sim = simulate_design("teaching-1d", 4000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(3, 4, split="region", backend="sequential", random_state=0).fit(sim.X, sim.y)
    parts = {k: v for k, v in dm.costs_.learning_time_parts().items() if v > 0}
    assert {"machine weights", "slowest warm refit"} <= set(parts), parts
    for many in (False, True):
        fig = explorer.figures.timing_figure(dm, 0.1, max_bars=2 if many else 16)
        bars = dict(zip((str(y).replace("<br>", " ") for y in fig.data[-1].y), fig.data[-1].x, strict=True))
        for term, t in parts.items():
            if term == "slowest local fit":
                continue
            label = next(k for k in bars if k.startswith(term.split(" (")[0].replace("machine weights", "machine "
                                                                                             "weights w_m(x)")))
            assert bars[label] == pytest.approx(t), term
        assert all(len(line) <= 26 for y in fig.data[-1].y for line in str(y).split("<br>")) or not many


def test_the_walk_through_colours_each_reduced_expert_as_the_true_expert_it_ends_on():
    # Learn's live example numbered its reduced experts in MM's order: with M = 4, seed 1, the blue reduced
    # expert lay on the line of slope -1, which is green on the Data and Fit pages (the audit of 2026-12-06).
    from explorer import runs
    from explorer.walk import step_figures
    from moecore.simulation import simulate_design

    truth = simulate_design("teaching-1d", 100, random_state=0).params
    for seed in (1, 3):
        last = len(runs.learn_example(4, seed, "kmeans").states) - 1
        for i in (0, last):  # one colour per reduced expert through the walk
            reduced = [t for t in step_figures(4, seed, "kmeans", i)["step"].data
                       if (t.name or "").startswith("reduced expert")]
            assert sorted(int(t.name.split()[2]) for t in reduced) == [1, 2, 3]
            for t in reduced:
                k = int(t.name.split()[2]) - 1
                assert t.line.color == explorer.figures.expert_color(k)
                if i == last:  # on the true expert of its colour: the slope closest to that expert's
                    slope = (t.y[-1] - t.y[0]) / (t.x[-1] - t.x[0])
                    assert int(np.argmin(np.abs(truth.experts[1] - slope))) == k, (seed, k, slope)


def test_the_log_axis_holds_every_methods_points():
    df = pd.DataFrame({"method": ["global", "reduction", "median"] * 2, "value": [0.001] * 3 + [4] * 3,
                       "rpe": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]})
    fig = explorer.figures.sweep_figure(df, "support", "rpe")
    lo, hi = fig.layout.xaxis.range
    drawn = np.log10(np.concatenate([np.asarray(t.x, float) for t in fig.data]))
    assert lo < drawn.min() and drawn.max() < hi
