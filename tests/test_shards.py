"""DistributedMoE.fit_shards: one CSV or Parquet file per machine, each read where it is fitted."""

import warnings

import distributed
import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, simulate_design
from moecore.alignment import align_to
from moecore.collinear import CollinearWarning
from moecore.outliers import OutlierWarning
from moecore.shards import ShardError, allocate_support, inspect_shard, read_shard

K, M, N = 4, 4, 6000


@pytest.fixture(scope="module")
def data():
    d = simulate_design("separated-2d", N, random_state=11)
    d.machine = np.random.default_rng(5).integers(0, M, N)
    return d


def write_shards(data, folder, kinds=("csv", "parquet", "csv", "parquet")):
    paths = []
    for m in range(M):
        sel = data.machine == m
        df = pd.DataFrame({"x1": data.X[sel, 0], "x2": data.X[sel, 1], "y": data.y[sel]})
        path = folder / f"machine{m}.{kinds[m % len(kinds)]}"
        df.to_csv(path, index=False) if kinds[m % len(kinds)] == "csv" else df.to_parquet(path)
        paths.append(str(path))
    return paths


def fit(paths, workers=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return DistributedMoE(K, M, random_state=2, max_iter=100, **kw).fit_shards(paths, workers=workers)


@pytest.fixture(scope="module")
def shard_paths(data, tmp_path_factory):
    return write_shards(data, tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def array_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return DistributedMoE(K, M, random_state=2, max_iter=100, n_jobs=2).fit(
            data.X, data.y, machine=data.machine
        )


@pytest.fixture(scope="module")
def loky_fit(shard_paths):
    return fit(shard_paths, n_jobs=2)


def test_round_trip_of_files_is_exact(data, shard_paths):
    for m, p in enumerate(shard_paths):
        X, y, feats = read_shard(p)
        sel = data.machine == m
        assert feats == ["x1", "x2"]
        np.testing.assert_array_equal(X, data.X[sel])
        np.testing.assert_array_equal(y, data.y[sel])
        assert inspect_shard(m, p).n_samples == sel.sum()


def test_local_models_equal_the_array_path(loky_fit, array_fit, data):
    """Same rows per machine and the same per-machine seeds: identical local models."""
    np.testing.assert_array_equal(loky_fit.shard_sizes_, np.bincount(data.machine, minlength=M))
    np.testing.assert_allclose(loky_fit.weights_, array_fit.weights_, rtol=0, atol=1e-15)
    for a, b in zip(loky_fit.local_models_, array_fit.local_models_, strict=True):
        np.testing.assert_array_equal(a.experts_, b.experts_)
        np.testing.assert_array_equal(a.gates_, b.gates_)
        np.testing.assert_array_equal(a.variances_, b.variances_)


def test_reduced_model_close_to_the_array_path(loky_fit, array_fit, data):
    """Only the supporting sample differs (stratified by machine here): same model up to noise."""
    a = align_to(array_fit.params_, loky_fit.params_)
    np.testing.assert_allclose(a.experts, array_fit.params_.experts, atol=0.05)
    np.testing.assert_allclose(a.variances, array_fit.params_.variances, rtol=0.05)
    assert abs(loky_fit.score(data.X, data.y) - array_fit.score(data.X, data.y)) < 0.01


def test_support_drawn_from_every_shard_proportionally(loky_fit, data):
    S = N // (4 * M)
    sizes = loky_fit.shard_sizes_
    shares = loky_fit.support_shares_
    assert shares.sum() == S == len(loky_fit.support_y_) == len(loky_fit.support_X_)
    assert np.all(np.abs(shares - S * sizes / sizes.sum()) < 1)
    # Every support point is a row of its machine's shard, and none is drawn twice.
    start = 0
    for m, s in enumerate(shares):
        sel = data.machine == m
        rows = {tuple(r) for r in np.column_stack([data.X[sel], data.y[sel]])}
        got = np.column_stack([loky_fit.support_X_[start:start + s], loky_fit.support_y_[start:start + s]])
        assert all(tuple(r) in rows for r in got) and len({tuple(r) for r in got}) == s
        start += s
    assert loky_fit.timings_["read"].shape == (M,) and loky_fit.timings_["learning_time"] > 0


@pytest.mark.parametrize("backend,n_jobs", [("sequential", None), ("threading", 2), ("loky", 1)])
def test_same_result_for_every_backend(shard_paths, loky_fit, backend, n_jobs):
    other = fit(shard_paths, backend=backend, n_jobs=n_jobs)
    np.testing.assert_array_equal(other.experts_, loky_fit.experts_)
    np.testing.assert_array_equal(other.gates_, loky_fit.gates_)
    np.testing.assert_array_equal(other.support_X_, loky_fit.support_X_)


def test_dask_shards_equal_loky(shard_paths, loky_fit, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
    try:
        with distributed.Client(cluster) as client:
            dm = fit(shard_paths, backend="dask", scheduler=client)
            # Pinning each file to a named worker (the host that holds it) gives the same fit.
            workers = sorted(client.scheduler_info()["workers"])
            pinned = fit(shard_paths, backend="dask", scheduler=client,
                         workers=[workers[m % len(workers)] for m in range(M)])
            with pytest.raises(ShardError, match="does not exist"):
                fit([*shard_paths[:-1], shard_paths[-1] + ".missing.csv"], backend="dask", scheduler=client)
            # Refinement rounds run on the shards loaded on the workers.
            rounds = fit(shard_paths, backend="dask", scheduler=client, refine_rounds=1)
            # Each worker checks the file it loaded for outlying rows (moecore.outliers), and sends its
            # inputs' scatter for the check on columns tied across every file (moecore.collinear).
            odd_paths = []
            for m, path in enumerate(shard_paths):
                frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
                frame["x1_copy"] = frame["x1"]
                if m == 1:
                    frame.loc[3, "y"] = 1e4
                odd_paths.append(str(tmp_path / ("odd.csv" if m == 1 else f"copy{m}.csv")))
                frame.to_csv(odd_paths[-1], index=False)
            with pytest.warns(OutlierWarning, match=r"in odd\.csv, row 3 \(y = 10000\)"), \
                    pytest.warns(CollinearWarning, match=r"4 files has inputs tied .*\('x1', 'x1_copy'\)"):
                fit(odd_paths, backend="dask", scheduler=client)
    finally:
        cluster.close()
    np.testing.assert_allclose(rounds.params_.vector(), fit(shard_paths, n_jobs=2, refine_rounds=1).params_.vector(),
                               rtol=0, atol=1e-10)
    for got in (dm, pinned):
        np.testing.assert_allclose(got.experts_, loky_fit.experts_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.gates_, loky_fit.gates_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.variances_, loky_fit.variances_, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.support_X_, loky_fit.support_X_)


def test_explicit_features_and_response(data, tmp_path):
    paths = []
    for m in range(M):
        sel = data.machine == m
        df = pd.DataFrame({"id": np.arange(sel.sum()), "target": data.y[sel], "b": data.X[sel, 1],
                           "a": data.X[sel, 0]})
        p = tmp_path / f"m{m}.csv"
        df.to_csv(p, index=False)
        paths.append(str(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dm = DistributedMoE(K, M, random_state=2, max_iter=100, backend="sequential").fit_shards(
            paths, response="target", features=["a", "b"])
    assert list(dm.feature_names_in_) == ["a", "b"]
    assert dm.predict(data.X[:5]).shape == (5,)


# ---------------------------------------------------------------------- errors
def test_missing_file_named(shard_paths, tmp_path):
    bad = [*shard_paths[:-1], str(tmp_path / "nowhere.csv")]
    with pytest.raises(ShardError, match=r"nowhere\.csv.*does not exist"):
        fit(bad, backend="sequential")


def test_wrong_number_of_files(shard_paths):
    with pytest.raises(ValueError, match=r"got 3 file.*n_machines=4"):
        fit(shard_paths[:3])
    with pytest.raises(TypeError, match="list of files"):
        fit(shard_paths[0])


def test_unknown_suffix(shard_paths):
    with pytest.raises(ShardError, match="unknown file type"):
        fit([*shard_paths[:-1], "data.xlsx"])


def _write(tmp_path, name, df):
    p = tmp_path / name
    df.to_parquet(p) if name.endswith(".parquet") else df.to_csv(p, index=False)
    return str(p)


@pytest.mark.parametrize("first", ["# y,x1,x2", "# exported by the logger"])
def test_a_shard_that_begins_with_a_comment_is_refused_by_name(shard_paths, tmp_path, first):
    # numpy.savetxt(header="y,x1,x2") writes "# y,x1,x2": pandas read a response named "# y" (the fit ran on
    # the wrong name, or found no 'y'); a note above the header read as one column named after it.
    text = open(shard_paths[0]).read()
    body = text.split("\n", 1)[1] if first.startswith("# y") else text
    bad = tmp_path / "commented.csv"
    bad.write_text(first + "\n" + body)
    with pytest.raises(ShardError, match=r"commented\.csv' begins with a comment line.*remove the comment lines"):
        fit([*shard_paths[:-1], str(bad)], backend="sequential")


def test_a_row_index_written_by_pandas_is_not_fitted_as_an_input(shard_paths, tmp_path):
    # to_csv's default writes the index under an empty name, read back as "Unnamed: 0": it became an input and
    # predict asked for a row number (the audit of 2026-12-06). Named features still read such a file.
    frame = pd.read_csv(shard_paths[0])
    frame.index = frame.index * M + 3  # a split's rows keep their original numbers
    bad = tmp_path / "indexed.csv"
    frame.to_csv(bad)
    with pytest.raises(ShardError, match=r"indexed\.csv' has a column without a name in its header \(read as "
                                         r"'Unnamed: 0'\): a row index.*to_csv\(index=False\)"):
        fit([*shard_paths[:-1], str(bad)], backend="sequential")
    X, y, feats = read_shard(str(bad), features=["x1", "x2"])
    assert feats == ["x1", "x2"] and X.shape == (len(frame), 2) and len(y) == len(frame)


def test_missing_columns_named(shard_paths, tmp_path):
    df = pd.read_csv(shard_paths[0]).rename(columns={"y": "response"})
    bad = _write(tmp_path, "noy.csv", df)
    with pytest.raises(ShardError, match=r"noy\.csv.*no response column 'y'"):
        fit([*shard_paths[:-1], bad], backend="sequential")
    with pytest.raises(ShardError, match=r"lacks the feature column\(s\) \['x3'\]"):
        DistributedMoE(K, M, backend="sequential").fit_shards(shard_paths, features=["x1", "x3"])
    other = _write(tmp_path, "extra.parquet", pd.read_csv(shard_paths[0]).assign(x3=1.0))
    with pytest.raises(ShardError, match=r"extra\.parquet.*same features"):
        fit([*shard_paths[:-1], other], backend="sequential")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_non_numeric_column_named(shard_paths, tmp_path, suffix):
    df = pd.read_csv(shard_paths[0])
    df["x2"] = df["x2"].astype(str)
    df.loc[7, "x2"] = "oops"
    bad = _write(tmp_path, f"text.{suffix}", df)
    # The row index 7 is the file's eighth data row, counted from 1 below the header as a reader counts.
    with pytest.raises(ShardError, match=r"column 'x2' is not numeric.*data row 8 \(counted from 1 below the header\) "
                                         r"holds 'oops'"):
        fit([*shard_paths[:-1], bad], backend="sequential")


def test_missing_values_named(shard_paths, tmp_path):
    df = pd.read_csv(shard_paths[0])
    df.loc[3, "y"] = np.nan
    bad = _write(tmp_path, "nan.parquet", df)
    with pytest.raises(ShardError, match=r"column 'y' holds 1 missing.*data row 4, counted from 1"):
        fit([*shard_paths[:-1], bad], n_jobs=2)


def test_too_small_shard(shard_paths, tmp_path):
    bad = _write(tmp_path, "tiny.csv", pd.read_csv(shard_paths[0]).head(5))
    with pytest.raises(ValueError, match=r"tiny\.csv.*holds 5 rows"):
        fit([*shard_paths[:-1], bad], backend="sequential")


def test_allocate_support():
    np.testing.assert_array_equal(allocate_support(10, [5, 5, 10]), [3, 2, 5])
    np.testing.assert_array_equal(allocate_support(100, [3, 4]), [3, 4])
    for S, sizes in [(37, [10, 20, 33, 7]), (1, [1, 1]), (500, [1000, 1, 999])]:
        a = allocate_support(S, sizes)
        assert a.sum() == min(S, sum(sizes)) and np.all(a <= sizes)


def test_refinement_rounds_read_the_files_on_the_workers(shard_paths, data):
    """With fit_shards the rounds run on the workers from their files; the rounds are exact, so
    they equal rounds over the same rows held in memory, from the same one-shot model."""
    from moecore.model import Standardizer
    from moecore.refine import em_rounds

    dm = fit(shard_paths, n_jobs=2, refine_rounds=2)
    shards = [(data.X[data.machine == m], data.y[data.machine == m]) for m in range(M)]
    ref, hist = em_rounds(shards, dm.one_shot_params_, 2, scaler=Standardizer.fit(dm.support_X_, dm.support_y_))
    np.testing.assert_allclose(dm.params_.vector(), ref.vector(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dm.refine_loglik_, hist, rtol=1e-12)
    seq = fit(shard_paths, backend="sequential", refine_rounds=2)
    np.testing.assert_array_equal(seq.params_.vector(), dm.params_.vector())


@pytest.mark.parametrize("line", [2, 5])
def test_a_row_longer_than_the_header_is_refused_naming_the_file(tmp_path, line):
    # The first data row (line 2) is the case pandas would read as a row index or trim with only
    # a warning; it must fail as any later row does, whatever the process's warning filters.
    rows = ["x1,y", *(f"{i},{2 * i}" for i in range(1, 8))]
    rows[line - 1] += ",99"
    path = tmp_path / "long.csv"
    path.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ParserWarning ignored here must not let the row through
        with pytest.raises(ShardError, match=rf"long\.csv.*Expected 2 fields in line {line}, saw 3"):
            read_shard(path)
    X, y, names = read_shard(_write(tmp_path, "fine.csv", pd.DataFrame({"x1": [1.0, 2.0], "y": [3.0, 4.0]})))
    assert X.tolist() == [[1.0], [2.0]] and y.tolist() == [3.0, 4.0] and names == ["x1"]


def test_small_file_shards_warn_before_any_local_fit(tmp_path):
    """fit_shards applies DistributedMoE.fit's small-shard rule to the machines' own files, judged
    by the smallest file, once they are inspected and before any local fit."""
    from moecore.datasets import load_dataset
    from moecore.shard_check import SmallShardWarning, check_shards

    ds = load_dataset("mcycle")  # 133 rows; K = 3, d = 1: 13 parameters per model
    cuts = [0, 60, 100, 120, 133]  # files of 60, 40, 20 and 13 rows
    paths = []
    for m in range(4):
        path = tmp_path / f"m{m}.csv"
        pd.DataFrame({"x": ds.X[cuts[m]:cuts[m + 1], 0], "y": ds.y[cuts[m]:cuts[m + 1]]}).to_csv(path, index=False)
        paths.append(str(path))
    expect = check_shards(133, 1, 3, 4, 133 // 16, smallest_shard=13)
    assert not expect.ok and expect.message.startswith("The smallest shard holds 13 rows for the 13 parameters")
    stages = []
    est = DistributedMoE(3, 4, random_state=0, backend="sequential")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallShardWarning)
        with pytest.raises(SmallShardWarning) as caught:
            est.fit_shards(paths, progress=lambda stage, done, total: stages.append(stage))
    assert str(caught.value) == expect.message and stages == []  # raised as an error: nothing was fitted
    assert not hasattr(est, "params_")
    with pytest.warns(SmallShardWarning, match="The smallest shard holds 13 rows") as record:
        est.fit_shards(paths)
    assert record[0].filename == __file__  # points at the caller's line
    assert est.shard_sizes_.tolist() == [60, 40, 20, 13]


def test_large_file_shards_do_not_warn(shard_paths):
    from moecore.shard_check import SmallShardWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallShardWarning)
        fit(shard_paths, backend="sequential")  # ~1 500 rows a machine for 25 parameters
