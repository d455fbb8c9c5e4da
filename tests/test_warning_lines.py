"""Every warning moecore issues points at the user's line, whatever path inside the package led to it.

Fixed stacklevels counted frames from one call path: reached through ``fit_shards`` (deeper than ``fit``),
a refinement round or a helper such as ``baselines.fit_global``, the same warning pointed inside moecore
(``shards.py:549``), where neither a reader nor a filter by module can place it (moecore._warn).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts
from moecore.baselines import fit_global
from moecore.datasets import load_dataset


@pytest.fixture(scope="module")
def mcycle():
    return load_dataset("mcycle")  # 133 rows: four machines of 33 are small for K = 3 (13 parameters)


@pytest.fixture(scope="module")
def files(mcycle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    paths = []
    for m in range(4):
        rows = slice(34 * m, 34 * (m + 1) if m < 3 else None)
        paths.append(str(folder / f"m{m}.csv"))
        pd.DataFrame({"x": mcycle.X[rows, 0], "y": mcycle.y[rows]}).to_csv(paths[-1], index=False)
    return paths


def _caught(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return record


@pytest.mark.parametrize("case", ["fit", "fit_shards", "fit_shards_loky", "max_iter", "rounds", "column_y",
                                  "one_model", "fit_global"])
def test_every_warning_points_at_the_callers_line(mcycle, files, case):
    X, y = mcycle.X, mcycle.y
    dist = dict(n_experts=3, n_machines=4, random_state=0, backend="sequential")
    calls = {
        "fit": lambda: DistributedMoE(**dist).fit(X, y),
        "fit_shards": lambda: DistributedMoE(**dist).fit_shards(files),
        "fit_shards_loky": lambda: DistributedMoE(**dict(dist, backend="loky", n_jobs=2)).fit_shards(files),
        "max_iter": lambda: DistributedMoE(**dict(dist, max_iter=2)).fit_shards(files),
        "rounds": lambda: DistributedMoE(**dict(dist, max_iter=2, refine_rounds=1)).fit(X, y),
        "column_y": lambda: DistributedMoE(**dict(dist, n_experts=2, n_machines=2)).fit(X, y[:, None]),
        "one_model": lambda: MixtureOfExperts(3, random_state=0, max_iter=2).fit(X, np.c_[y]),
        "fit_global": lambda: fit_global(X, y, 3, random_state=0, max_iter=2),
    }
    record = _caught(calls[case])
    ours = [w for w in record if w.category.__module__.split(".")[0] in {"moecore", "builtins", "sklearn"}]
    assert ours, case  # each case makes the library speak: small shards, EM cut short, a column y
    assert [(w.category.__name__, w.filename) for w in ours] == [(w.category.__name__, __file__) for w in ours]
