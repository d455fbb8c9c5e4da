"""Inputs tied by a linear relation on every row (moecore.collinear): named before a fit.

A duplicated column, a column that is a combination of others, a full one-hot coding next to the intercept:
the fit runs and predicts, but no fit can tell those coefficients apart, and every model counts parameters
the data cannot fix (a distributed fit's screening floors, 4 q nats, rise with them).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore._validation import column_moments
from moecore.collinear import CollinearWarning, ColumnScatter, collinear_columns
from moecore.datasets import dataset_names, load_dataset
from moecore.simulation import DESIGNS


@pytest.fixture(scope="module")
def sim():
    return simulate_design("separated-2d", n=4000, random_state=0)


def _groups(X):
    mean, scale, _ = column_moments(X)
    assert collinear_columns(X) == collinear_columns(X, mean, scale)
    return collinear_columns(X, mean, scale)


def test_tied_columns_are_grouped(sim):
    X = sim.X
    noise = np.random.default_rng(0).normal(size=len(X))
    assert _groups(np.column_stack([X, X[:, 0]])) == [[0, 2]]
    assert _groups(np.column_stack([X, X[:, 0] * (1 + 1e-9)])) == [[0, 2]]  # tied up to rounding
    assert _groups(np.column_stack([X, X[:, 0] + 2 * X[:, 1]])) == [[0, 1, 2]]
    assert _groups(np.column_stack([X, X[:, 1], 2 * X[:, 1]])) == [[1, 2, 3]]  # two relations, one group
    onehot = np.column_stack([X, X[:, 0] > 0, X[:, 0] <= 0]).astype(float)
    assert _groups(onehot) == [[2, 3]]  # the levels sum to 1, the intercept's column
    # Correlated is not tied: r = 0.9999995 gives an eigenvalue near 1e-6, far above the rule's 1e-10.
    assert _groups(np.column_stack([X, X[:, 0] + 1e-3 * noise])) == []
    assert _groups(np.column_stack([X, 1e9 + noise])) == []  # a large offset is centred away
    assert _groups(X[:, :1]) == []
    # A constant column (the estimators refuse it first) is left out, not read as tied.
    assert collinear_columns(np.column_stack([X, np.ones(len(X)), X[:, 0]])) == [[0, 3]]


@pytest.mark.parametrize("est", [MixtureOfExperts(4, random_state=0, n_init=1),
                                 DistributedMoE(4, 4, random_state=0, backend="sequential")],
                         ids=lambda e: type(e).__name__)
def test_the_fit_names_the_tied_columns_at_the_callers_line(sim, est):
    X = pd.DataFrame(np.column_stack([sim.X, sim.X[:, 0] > 0, sim.X[:, 0] <= 0]).astype(float),
                     columns=["x1", "x2", "high", "low"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit(X, sim.y)
    found = [w for w in record if issubclass(w.category, CollinearWarning)]
    assert len(found) == 1 and found[0].filename == __file__
    assert "('high', 'low')" in str(found[0].message) and "Drop 1 of them" in str(found[0].message)


def test_machines_summaries_pooled_give_the_same_groups(sim):
    """fit_shards' check: each machine sends its inputs' mean and centred scatter; pooled, they find the
    groups the rows together give, whatever the split, and a large offset still cancels nothing."""
    X = sim.X
    noise = np.random.default_rng(0).normal(size=len(X))
    cases = [np.column_stack([X, X[:, 0]]), np.column_stack([X, X[:, 0] + 2 * X[:, 1]]),
             np.column_stack([X, X[:, 0] > 0, X[:, 0] <= 0]).astype(float),
             np.column_stack([X, X[:, 0] + 1e-3 * noise]), np.column_stack([X, 1e9 + noise]),
             np.column_stack([X + 1e9, X[:, 0] + 1e9 + 1e-3 * noise]), X]
    # Unequal parts, one of a single row, cut where the first column is sorted (regions, as a
    # quantile split makes them: the parts' means differ, so their spread about the pooled mean counts).
    order = np.argsort(X[:, 0])
    cuts = np.split(order, [1, 700, 2500])
    for Z in cases:
        pooled = ColumnScatter.pooled([ColumnScatter.of(Z[rows]) for rows in cuts])
        assert pooled.n == len(Z) and np.allclose(pooled.mean, Z.mean(axis=0), rtol=1e-12)
        assert pooled.collinear_columns() == collinear_columns(Z)
    # A tie on one region only is no tie of the whole.
    Z = np.column_stack([X, np.where(X[:, 0] < 0, X[:, 1], noise)])
    assert ColumnScatter.of(Z[X[:, 0] < 0]).collinear_columns() == [[1, 2]]
    assert ColumnScatter.pooled([ColumnScatter.of(Z[X[:, 0] < 0]), ColumnScatter.of(Z[X[:, 0] >= 0])]
                                ).collinear_columns() == []


@pytest.mark.parametrize("backend", ["sequential", "threading"])
def test_fit_shards_names_inputs_tied_across_the_files(sim, tmp_path, backend):
    """No process holds every row: the machines' summaries, pooled at the server, say it once."""
    paths = []
    for m in range(4):
        part = slice(1000 * m, 1000 * (m + 1))
        frame = pd.DataFrame({"dose": sim.X[part, 0], "age": sim.X[part, 1], "effect": sim.y[part]})
        frame["dose_mg"] = 1000 * frame["dose"]
        paths.append(tmp_path / f"site{m}.csv")
        frame.to_csv(paths[-1], index=False)
    est = DistributedMoE(4, 4, random_state=0, backend=backend)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit_shards([str(p) for p in paths], response="effect")
    found = [w for w in record if issubclass(w.category, CollinearWarning)]
    assert len(found) == 1 and found[0].filename == __file__  # pointed at the caller's line
    assert "The data of the 4 files has inputs tied" in str(found[0].message)
    assert "('dose', 'dose_mg')" in str(found[0].message)
    # Without the copy: not a word.
    for p in paths:
        pd.read_csv(p).drop(columns="dose_mg").to_csv(p, index=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit_shards([str(p) for p in paths], response="effect")
    assert not [w for w in record if issubclass(w.category, CollinearWarning)]


def test_the_shipped_data_and_designs_have_no_tied_inputs():
    for name in dataset_names():
        assert _groups(load_dataset(name).X) == [], name
    for design in DESIGNS:
        assert _groups(simulate_design(design, 5000, random_state=0).X) == [], design


def test_the_pages_name_tied_inputs(sim):
    from app_helpers import new_session

    import explorer.data

    X = np.column_stack([sim.X, sim.X[:, 0] > 0, sim.X[:, 0] <= 0]).astype(float)
    at = new_session()
    at.session_state["data"] = explorer.data.Dataset(X, sim.y, "coded.csv", ["x1", "x2", "high", "low"],
                                                     source="csv")
    for page in ("pages/data.py", "pages/fit.py", "pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        tied = [w.value for w in at.warning if w.value.startswith("Tied inputs (high, low)")]
        assert len(tied) == 1 and "drop 1 of them" in tied[0], page


def test_an_overflowing_input_leaves_the_files_check_without_numpy_warnings(sim, tmp_path):
    """x = 1e308 in one file (warned as an outlying row): its square overflows on its machine; the column is
    left out of the check, and no NumPy overflow warning reaches the caller."""
    import os

    paths = []
    for m in range(4):
        frame = pd.DataFrame({"a": sim.X[m::4, 0], "b": sim.X[m::4, 1], "y": sim.y[m::4]})
        if m == 2:
            frame.loc[5, "a"] = 1e308
        paths.append(str(tmp_path / f"m{m}.csv"))
        frame.to_csv(paths[-1], index=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        DistributedMoE(4, 4, random_state=0, backend="sequential").fit_shards(paths)
    numpy_side = [str(w.message) for w in record if os.path.basename(w.filename) != os.path.basename(__file__)]
    assert numpy_side == [] and not [w for w in record if issubclass(w.category, CollinearWarning)]
    parts = [ColumnScatter.of(pd.read_csv(p)[["a", "b"]].to_numpy()) for p in paths]
    assert ColumnScatter.pooled(parts).collinear_columns() == []
