"""Issue 22, a second adversarial pass: session files and model files (explorer/io.py).

Session files must reopen whatever the app accepted (names exact, numbers exact, within the size
the Data page accepts) and must not carry where a fit runs; a model file is accepted only if it
can predict, within the app's own d and K limits.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import explorer.io
from explorer.data import Dataset
from moecore import model
from moecore.model import MoEParams, predict_mean


def _dataset(X, y, x_names, y_name, name="upload.csv"):
    return Dataset(np.asarray(X, float), np.asarray(y, float), name, list(x_names), y_name, source="csv")


def test_session_keeps_names_a_spreadsheet_would_run():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    names = ["-x", "=a", "@b"]
    raw = explorer.io.session_to_json(_dataset(X, y, names, "+y"), {"K": 2})
    X2, y2, _, x_names, y_name, _, _ = explorer.io.session_from_json(raw)
    assert x_names == names and y_name == "+y"
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    # The downloadable CSV, which a spreadsheet may open, still guards them.
    header = explorer.io.data_to_csv(X, y, None, names, "+y").decode().split("\n", 1)[0]
    assert header == "'-x,'=a,'@b,'+y"


def test_session_of_one_digit_integers_is_no_larger_than_the_upload():
    # The case scaled down (2 000 rows, not 200 000): one-digit integers came back as 'd.0'.
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 10, (2000, 100))
    upload = ("y," + ",".join(f"x{j}" for j in range(1, 100)) + "\n"
              + "\n".join(",".join(map(str, r)) for r in cells) + "\n").encode()
    df = explorer.io.parse_csv(upload, "digits.csv")
    X, y = explorer.io.select_columns(df, "y", [f"x{j}" for j in range(1, 100)])
    raw = explorer.io.session_to_json(_dataset(X, y, [f"x{j}" for j in range(1, 100)], "y"), {"K": 2})
    # At most one byte more per row (JSON writes a newline as two characters) plus the JSON frame.
    assert len(raw) <= len(upload) + len(cells) + 2000
    X2, y2, *_ = explorer.io.session_from_json(raw)
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


# Numbers as a person or a program may write them: the session must never write one longer.
_token = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.integers(1, 9).flatmap(lambda m: st.integers(-30, 30).map(lambda e: f"{m}e{e}")),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(-1, 1, allow_nan=False).map(lambda v: f"{v:.3f}".replace("0.", ".", 1)),
    st.sampled_from(["1e15", "1e-7", ".5", "-.25", "5e-324", "1.7976931348623157e308", "12345678901234567e3"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_token, _token), min_size=2, max_size=30))
def test_session_numbers_are_exact_and_never_longer_than_their_upload(rows):
    rows.append(("0", "1"))  # never constant
    rows.append(("1", "0"))
    upload = "x,y\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n"
    df = explorer.io.parse_csv(upload.encode(), "t.csv")
    try:
        X, y = explorer.io.select_columns(df, "y", ["x"])
    except explorer.io.InputError:
        return  # e.g. overflow to inf: not an accepted upload
    raw = explorer.io.session_to_json(_dataset(X, y, ["x"], "y"), {})
    table = json.loads(raw)["data"]["csv"]
    assert len(table) <= len(upload)
    X2, y2, *_ = explorer.io.session_from_json(raw)
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


def test_session_at_the_upload_limits_fits_the_session_limit():
    # The largest accepted upload: MAX_ROWS rows of short cells up to MAX_UPLOAD_MB, names at their
    # longest (the worst case of the size rule). Cells '1e15' are 4 characters; written naively,
    # 1000000000000000.0.
    n_cols = 10
    names = [f"n{j}".ljust(explorer.io.MAX_NAME_CHARS, '"') for j in range(n_cols)]
    row = ",".join(["1e15", ".5", "1", "-.5", "2e-9", "7", "3", "9e20", ".25", "8"])
    rng_rows = [row] * (explorer.io.MAX_ROWS - 2) + ["0,.1,2,.5,1e-9,1,2,1e20,.75,1", "2,.9,0,-.1,3e-9,0,4,1e19,.5,2"]
    header = ",".join('"' + n.replace('"', '""') + '"' for n in names)
    upload = (header + "\n" + "\n".join(rng_rows) + "\n").encode()
    assert len(upload) <= explorer.io.MAX_UPLOAD_MB * 1024 * 1024
    df = explorer.io.parse_csv(upload, "limits.csv")
    X, y = explorer.io.select_columns(df, names[1], [names[0], *names[2:]])
    settings_ = {"K": 3, "M": 8, "design": "x" * 40}
    raw = explorer.io.session_to_json(_dataset(X, y, [names[0], *names[2:]], names[1], name="n" * 80), settings_)
    io = explorer.io
    assert len(raw) <= len(upload) + io.MAX_ROWS + 1 + 12 * io.MAX_NAME_CHARS * io.MAX_COLUMNS + 65536
    assert len(raw) <= explorer.io.MAX_SESSION_MB * 1024 * 1024
    X2, y2, *_ = explorer.io.session_from_json(raw)
    assert np.array_equal(X2, X) and np.array_equal(y2, y)


def test_a_column_name_longer_than_the_limit_is_refused_with_the_limit():
    long = "a" * (explorer.io.MAX_NAME_CHARS + 1)
    with pytest.raises(explorer.io.InputError, match=str(explorer.io.MAX_NAME_CHARS)):
        explorer.io.parse_csv(f"{long},y\n1,2\n3,4\n".encode(), "long.csv")


def test_session_carries_no_backend_nor_scheduler():
    rng = np.random.default_rng(2)
    data = _dataset(rng.normal(size=(30, 1)), rng.normal(size=30), ["x"], "y")
    raw = explorer.io.session_to_json(data, {"K": 2, "backend": "dask", "scheduler": "tcp://10.0.0.9:8786"})
    doc = json.loads(raw)
    assert "backend" not in doc["settings"] and "scheduler" not in doc["settings"]
    # A file written by hand (or by an older app) with them: they are not returned.
    doc["settings"].update(backend="dask", scheduler="tcp://10.0.0.9:8786")
    *_, values = explorer.io.session_from_json(json.dumps(doc).encode())
    assert values == {"K": 2}


def _model_doc(gates, experts, variances):
    return json.dumps({"format": explorer.io.MODEL_FORMAT, "version": 1,
                       "params": {"gates": gates, "experts": experts, "variances": variances}})


@pytest.mark.parametrize("gates,experts,variances,what", [
    ([[1e308, 0], [1e308, 0]], [[0, 1], [1, 0]], [1, 1], "gates"),
    ([[1, 0], [1, 0]], [[1e308, 1], [1, 0]], [1, 1], "experts"),
    ([[1, 0], [1, 0]], [[0, 1], [1, 0]], [1e300, 1], "variances"),
    ([[1, 0], [1, 0]], [[0, 1], [1, 0]], [1e-300, 1], "variances"),
])
def test_a_model_that_cannot_predict_is_refused(gates, experts, variances, what):
    # Unchecked, gates of 1e308 cannot predict (NaN once, now a ValueError): evidence that the case is real.
    p = MoEParams(gates, experts, variances)
    if what == "gates":
        with pytest.raises(ValueError, match=r"the predictions overflow .* the model's coefficients reach 1e\+308"):
            predict_mean(np.array([[2.0], [-2.0]]), p)
    with pytest.raises(explorer.io.InputError, match=what):
        explorer.io.model_from_json(_model_doc(gates, experts, variances))


def test_a_model_text_with_a_byte_order_mark_reads_as_its_bytes_do():
    doc = _model_doc([[1, 0], [1, 0]], [[0, 1], [1, 0]], [1, 1])
    from_bytes, _ = explorer.io.model_from_json(("\ufeff" + doc).encode("utf-8"))
    from_text, _ = explorer.io.model_from_json("\ufeff" + doc)  # refused before: "not valid JSON"
    np.testing.assert_array_equal(from_text.vector(), from_bytes.vector())


def test_a_model_at_the_bound_predicts_finite_values():
    b = model.MAX_COEFFICIENT
    params, _ = explorer.io.model_from_json(_model_doc([[b, 0], [-b, 0]], [[b, -b], [b, b]], [1e100, 1e-100]))
    X = np.array([[-1e99], [0.0], [1e99]])
    assert np.isfinite(predict_mean(X, params)).all()


def test_a_model_beyond_the_apps_d_and_k_is_refused():
    K, d = explorer.io.MAX_MODEL_EXPERTS + 1, 2
    doc = _model_doc([[0.0] * K] * (d + 1), [[1.0] * K] * (d + 1), [1.0] * K)
    with pytest.raises(explorer.io.InputError, match=f"K = {explorer.io.MAX_MODEL_EXPERTS}"):
        explorer.io.model_from_json(doc)
    d = explorer.io.MAX_MODEL_FEATURES + 1
    doc = _model_doc([[0.0, 0.0]] * (d + 1), [[1.0, 2.0]] * (d + 1), [1.0, 1.0])
    with pytest.raises(explorer.io.InputError, match=f"d = {explorer.io.MAX_MODEL_FEATURES}"):
        explorer.io.model_from_json(doc)


def test_markdown_escape_leaves_no_link_nor_image():
    text = explorer.io.markdown_escape("![t](http://evil.example/p.png) [x](http://e) **b** :red[c] $x$\n# h")
    assert "](" not in text.replace("\\](", "").replace("\\]\\(", "")
    assert "\n" not in text
    import re
    # Every punctuation character is escaped: none is left bare.
    assert not re.search(r"(?<!\\)[!\[\]()*:$#]", text)
