"""Issue 22, a second adversarial pass: shard files are pinned for the whole fit.

Real files changed or deleted while a real fit runs (from its progress callback, so at a known
stage): the fit either uses exactly the rows each machine fitted or stops with an error naming
the machine; under on_error="skip" a file gone before its local fit skips that machine.
"""

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, simulate_design
from moecore.local import LocalFitError
from moecore.shards import ShardError

K, M, N_M = 2, 3, 1500


@pytest.fixture()
def paths(tmp_path):
    sim = simulate_design("teaching-1d", M * N_M, random_state=3)
    out = []
    for m in range(M):
        rows = slice(m * N_M, (m + 1) * N_M)
        p = tmp_path / f"machine{m}.csv"
        pd.DataFrame({"x1": sim.X[rows, 0], "y": sim.y[rows]}).to_csv(p, index=False)
        out.append(str(p))
    return out


def _estimator(**kw):
    return DistributedMoE(K, M, random_state=0, max_iter=50, n_init=1, local_check="off", **kw)


def _fit(paths, on_progress, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _estimator(**kw).fit_shards(paths, progress=on_progress)


def _truncate(path):
    df = pd.read_csv(path)
    df.iloc[: len(df) // 2].to_csv(path, index=False)


def _change_values(path):
    df = pd.read_csv(path)
    df["y"] = df["y"] + 1.0
    df.to_csv(path, index=False)


@pytest.mark.parametrize("backend,n_jobs", [("sequential", 1), ("loky", 2)])
@pytest.mark.parametrize("change,what", [(_truncate, "held 1500 rows when its machine fitted them and 750 now"),
                                         (_change_values, "other values")])
def test_a_shard_changed_between_rounds_stops_the_fit_naming_the_machine(paths, backend, n_jobs, change, what):
    def progress(stage, done, total):
        if stage == "round" and done == 1:
            change(paths[1])

    with pytest.raises(ShardError, match=rf"machine 1: shard file .*machine1\.csv.*{what}"):
        _fit(paths, progress, refine_rounds=3, backend=backend, n_jobs=n_jobs)


def test_an_unchanged_shard_gives_the_same_rounds(paths):
    # Rewriting a file with the same rows (new mtime, so re-read) is no change.
    def progress(stage, done, total):
        if stage == "round" and done == 1:
            pd.read_csv(paths[1]).to_csv(paths[1], index=False)

    touched = _fit(paths, progress, refine_rounds=3, backend="sequential")
    plain = _fit(paths, None, refine_rounds=3, backend="sequential")
    assert np.array_equal(touched.params_.vector(), plain.params_.vector())


def test_a_shard_deleted_between_rounds_is_an_error_naming_the_machine(paths):
    def progress(stage, done, total):
        if stage == "round" and done == 1:
            os.remove(paths[2])

    with pytest.raises(ShardError, match=r"machine 2: shard file .*machine2\.csv.*disappeared during the fit"):
        _fit(paths, progress, refine_rounds=3, backend="loky", n_jobs=2)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_shard_deleted_before_its_local_fit(paths, on_error):
    def progress(stage, done, total):
        if stage == "local" and done == 1 and os.path.exists(paths[2]):
            os.remove(paths[2])

    if on_error == "raise":
        with pytest.raises(LocalFitError, match=r"machine 2 .*machine2\.csv.*disappeared"):
            _fit(paths, progress, backend="sequential", on_error=on_error)
        return
    dm = _fit(paths, progress, backend="sequential", on_error=on_error)
    assert list(dm.machines_) == [0, 1]
    assert np.all(np.isfinite(dm.params_.vector()))
