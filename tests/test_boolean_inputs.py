"""An input of True/False is an indicator, read as 0/1 wherever it is held (moecore._validation): a boolean
array, a DataFrame of boolean columns alone or beside numbers, a column of a shard file.  Before, the three
disagreed: a DataFrame with a number column beside its boolean one was fitted, the same column alone or as
a NumPy array was a TypeError, and a file's True/False column a ShardError.  A response of True/False is
refused everywhere with one message: a Gaussian expert is no model of a 0/1 outcome."""

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts
from moecore.shards import ShardError


@pytest.fixture(scope="module")
def indicator_data():
    """x, an indicator b that switches the expert (slopes 2 and -1) and y: 600 rows."""
    rng = np.random.default_rng(7)
    n = 600
    b = rng.random(n) > 0.5
    x = rng.normal(size=n)
    y = np.where(b, 2.0 * x + 1.0, -x) + 0.2 * rng.normal(size=n)
    return x, b, y


def same(p, q):
    return all(np.array_equal(getattr(p, k), getattr(q, k)) for k in ("gates", "experts", "variances"))


def fit_moe(X, y):
    return MixtureOfExperts(n_experts=2, random_state=0).fit(X, y).params_


def test_a_boolean_input_is_its_0_1_column_whatever_holds_it(indicator_data):
    x, b, y = indicator_data
    numbers = fit_moe(np.column_stack([x, b.astype(float)]), y)
    assert same(fit_moe(pd.DataFrame({"x": x, "b": b}), y), numbers)
    alone = fit_moe(b[:, None].astype(float), y)
    assert same(fit_moe(b[:, None], y), alone)  # a boolean array: a TypeError before
    assert same(fit_moe(pd.DataFrame({"b": b}), y), alone)  # a DataFrame of booleans only: a TypeError before
    model = MixtureOfExperts(n_experts=2, random_state=0).fit(np.column_stack([x, b]), y)
    assert np.array_equal(model.predict(np.column_stack([x, b])), model.predict(np.column_stack([x, b * 1.0])))


def test_the_distributed_fit_reads_a_boolean_input_as_0_1(indicator_data):
    x, b, y = indicator_data
    kw = dict(n_experts=2, n_machines=3, random_state=0, backend="sequential")
    as_numbers = DistributedMoE(**kw).fit(np.column_stack([x, b.astype(float)]), y).params_
    assert same(DistributedMoE(**kw).fit(pd.DataFrame({"x": x, "b": b}), y).params_, as_numbers)


def test_shard_files_read_a_true_false_column_as_0_1(indicator_data, tmp_path):
    x, b, y = indicator_data
    text, numbers = [], []
    for m, rows in enumerate(np.array_split(np.arange(len(y)), 3)):
        frame = pd.DataFrame({"x": x[rows], "b": b[rows], "y": y[rows]})
        text.append(tmp_path / f"text_{m}.csv")
        frame.to_csv(text[-1], index=False)  # writes True / False
        numbers.append(tmp_path / f"numbers_{m}.csv")
        frame.assign(b=frame["b"].astype(float)).to_csv(numbers[-1], index=False)
    assert "True" in text[0].read_text() or "False" in text[0].read_text()
    kw = dict(n_experts=2, n_machines=3, random_state=0, backend="sequential")
    read = DistributedMoE(**kw).fit_shards([str(p) for p in text]).params_  # a ShardError before
    assert same(read, DistributedMoE(**kw).fit_shards([str(p) for p in numbers]).params_)


@pytest.mark.parametrize("response", [
    lambda y: y > 0,
    lambda y: pd.Series(y > 0),
    lambda y: np.array(list(y > 0), dtype=object),
])
def test_a_boolean_response_is_refused_with_what_to_do(indicator_data, response):
    x, _, y = indicator_data
    for est in (MixtureOfExperts(n_experts=2), DistributedMoE(n_experts=2, n_machines=2)):
        with pytest.raises(TypeError, match=r"y is boolean .* no model of a 0/1 outcome; pass y as numbers"):
            est.fit(x[:, None], response(y))


def test_a_shard_file_with_a_true_false_response_is_refused(indicator_data, tmp_path):
    x, b, _ = indicator_data
    path = tmp_path / "flags.csv"
    pd.DataFrame({"x": x, "y": b}).to_csv(path, index=False)
    with pytest.raises(ShardError, match="response column 'y' is boolean"):
        DistributedMoE(n_experts=2, n_machines=1, backend="sequential").fit_shards([str(path)])


def test_the_app_reads_a_true_false_input_as_0_1_and_refuses_it_as_the_response():
    from explorer.io import InputError, parse_csv, select_columns

    rows = "".join(f"{i},{i % 2 == 0},{i * 0.5 + i % 3}\n" for i in range(12))
    df = parse_csv(("x,flag,y\n" + rows).encode(), "flags.csv")
    X, _ = select_columns(df, "y", ["x", "flag"])
    assert X.dtype == np.float64 and X[:, 1].tolist() == [float(i % 2 == 0) for i in range(12)]
    with pytest.raises(InputError, match=r"'flag' holds True/False.*Pick a numeric response"):
        select_columns(df, "flag", ["x"])
