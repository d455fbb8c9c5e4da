"""Reading user files and writing results: CSV data and model JSON.

Nothing here executes user content: CSV goes through pandas' C parser, JSON through ``json.loads``
and a JSON Schema; no pickle anywhere.  Every failure is an :class:`InputError` (a ``ValueError``)
whose message says what is wrong and what to change, ready for ``st.error``.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd

from moecore import MoEParams

__all__ = [
    "InputError",
    "MAX_UPLOAD_MB",
    "MAX_ROWS",
    "MAX_COLUMNS",
    "MODEL_FORMAT",
    "MODEL_SCHEMA",
    "parse_csv",
    "select_columns",
    "data_to_csv",
    "model_to_json",
    "model_from_json",
    "params_to_text",
    "params_from_text",
]

# Streamlit refuses larger files itself (.streamlit/config.toml server.maxUploadSize): same number.
MAX_UPLOAD_MB = 50
# EM on more rows than this makes the app sluggish on a laptop; the CLI has no such limit.
MAX_ROWS = 200_000
MAX_COLUMNS = 200
MAX_MODEL_BYTES = 1_000_000
MODEL_FORMAT = "dmoe-explorer/model"


class InputError(ValueError):
    """A user file or choice that the app cannot use; the message says what to change."""


# ---------------------------------------------------------------------------------------- CSV
def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise InputError(
            f"{name} is not a CSV file (it contains binary data). Upload a comma-separated text "
            "file with a header row, e.g. exported from a spreadsheet as 'CSV UTF-8'."
        )
    for enc in ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded). Save it again "
                "with UTF-8 encoding (in a spreadsheet: 'CSV UTF-8')."
            ) from None
    raise AssertionError  # pragma: no cover


def parse_csv(data: bytes, name: str = "the file", *, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """Parse uploaded bytes into a DataFrame with a header row and at least one data row.

    Columns keep whatever type pandas infers; :func:`select_columns` checks the ones the user
    picks, so a text column the user does not use is no error.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("internal: parse_csv expects bytes.")
    if not name.lower().endswith(".csv"):
        raise InputError(f"{name} is not a .csv file. Upload a CSV (comma-separated values) file.")
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise InputError(f"{name} is larger than the {MAX_UPLOAD_MB} MB limit: upload a smaller sample.")
    text = _decode(bytes(data), name)
    if not text.strip():
        raise InputError(f"{name} is empty. Upload a CSV with a header row and numeric data rows.")
    # Count rows before parsing: a 10^6-row file is refused without building a DataFrame.
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if n_lines - 1 > max_rows:
        raise InputError(
            f"{name} has about {n_lines - 1:,} data rows; the app accepts at most {max_rows:,}. "
            "Upload a random subsample (or use the command line `python -m moecore` for big data)."
        )
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        sep = dialect.delimiter
    except csv.Error:
        sep = ","
    # pandas would silently rename a repeated name to "x.1": check the header ourselves.
    header = [h.strip() for h in next(csv.reader(io.StringIO(text.lstrip("\n").split("\n", 1)[0]), delimiter=sep), [])]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{name} has duplicated column names {dup}: give every column a distinct name.")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, on_bad_lines="error", engine="c")
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{name} has rows with a different number of fields than the header ({exc}). "
            "Every row needs one value per column: fix or delete the ragged rows."
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} has no columns. Upload a CSV with a header row.") from None
    except (ValueError, UnicodeError) as exc:
        raise InputError(f"{name} could not be read as CSV: {exc}") from None
    if df.shape[0] == 0:
        raise InputError(f"{name} has a header but no data rows. Add data rows below the header.")
    if df.shape[1] < 2:
        raise InputError(
            f"{name} has {df.shape[1]} column(s) (separator detected: {sep!r}); it needs a response "
            "column and at least one input column, separated by commas."
        )
    if df.shape[1] > MAX_COLUMNS:
        raise InputError(f"{name} has {df.shape[1]} columns; the app accepts at most {MAX_COLUMNS}.")
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise InputError(f"{name} has duplicated column names: give every column a distinct name.")
    return df


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"column '{col}' is not numeric: row {i + 2} of the file holds {str(s.iloc[i])!r} "
                f"({int(bad.sum())} non-numeric value(s) in all). Pick numeric columns, or fix those cells."
            )
        s = conv
    a = s.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = ~np.isfinite(a)
    if missing.any():
        rows = (np.flatnonzero(missing)[:5] + 2).tolist()
        raise InputError(
            f"column '{col}' has {int(missing.sum())} missing or infinite value(s) (file rows "
            f"{rows}{'...' if missing.sum() > 5 else ''}). Remove those rows or fill them in."
        )
    return a


def select_columns(df: pd.DataFrame, y_col: str, x_cols) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, d), y (n,)) from the chosen response and input columns, all checked."""
    x_cols = list(x_cols)
    if y_col not in df.columns:
        raise InputError(f"response column {y_col!r} is not in the file; pick one of {list(df.columns)}.")
    if not x_cols:
        raise InputError("pick at least one input column (x).")
    if y_col in x_cols:
        raise InputError(f"'{y_col}' is the response: remove it from the input columns.")
    unknown = [c for c in x_cols if c not in df.columns]
    if unknown:
        raise InputError(f"input column(s) {unknown} are not in the file.")
    y = _numeric(df, y_col)
    X = np.column_stack([_numeric(df, c) for c in x_cols])
    const = [c for c, col in zip(x_cols, X.T, strict=True) if not np.ptp(col) > 0]
    if const:
        raise InputError(
            f"input column(s) {const} are constant: remove them (the intercept already models a constant)."
        )
    if not np.ptp(y) > 0:
        raise InputError(f"the response '{y_col}' is constant: there is nothing to regress.")
    return X, y


def data_to_csv(X, y, labels=None, x_names=None, y_name="y") -> bytes:
    """The data as UTF-8 CSV bytes: inputs, response and (for simulated data) the true expert."""
    X = np.asarray(X)
    x_names = list(x_names) if x_names is not None else [f"x{j + 1}" for j in range(X.shape[1])]
    df = pd.DataFrame(X, columns=x_names)
    df[y_name] = y
    if labels is not None:
        df["true_expert"] = np.asarray(labels) + 1
    return df.to_csv(index=False, float_format="%.6g").encode("utf-8")


# ---------------------------------------------------------------------------------- model JSON
def _matrix_schema(desc):
    return {
        "description": desc,
        "type": "array",
        "minItems": 2,
        "items": {"type": "array", "minItems": 1, "items": {"type": "number"}},
    }


MODEL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "DMoE Explorer model",
    "type": "object",
    "required": ["format", "version", "params"],
    "properties": {
        "format": {"const": MODEL_FORMAT},
        "version": {"const": 1},
        "params": {
            "type": "object",
            "required": ["gates", "experts", "variances"],
            "additionalProperties": False,
            "properties": {
                "gates": _matrix_schema("softmax gate coefficients (d+1, K); row 0 intercepts"),
                "experts": _matrix_schema("expert coefficients (d+1, K); row 0 intercepts"),
                "variances": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "number", "exclusiveMinimum": 0},
                },
            },
        },
        "meta": {"type": "object"},
    },
}


def model_to_json(params: MoEParams, meta: dict | None = None) -> str:
    """A fitted model as JSON text following :data:`MODEL_SCHEMA`."""
    doc = {"format": MODEL_FORMAT, "version": 1, "params": params.to_dict(), "meta": dict(meta or {})}
    return json.dumps(doc, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def model_from_json(data, name: str = "the model file") -> tuple[MoEParams, dict]:
    """Validate JSON text or bytes against :data:`MODEL_SCHEMA`; return (params, meta)."""
    import jsonschema

    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_MODEL_BYTES:
            raise InputError(f"{name} is larger than {MAX_MODEL_BYTES // 1000} kB; a model file is much smaller.")
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{name} is not UTF-8 text: upload the .json file the app produced.") from None
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    try:
        jsonschema.validate(doc, MODEL_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise InputError(
            f"{name} does not follow the model schema at {where}: {exc.message}. "
            "Upload a model JSON downloaded from this app."
        ) from None
    p = doc["params"]
    rows = {len(r) for r in p["gates"]} | {len(r) for r in p["experts"]}
    if len(rows) != 1:
        raise InputError(f"{name}: every row of gates and experts must have K entries (ragged matrix).")
    try:
        params = MoEParams.from_dict(p)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {exc}") from None
    return params, doc.get("meta", {})


def params_to_text(params: MoEParams, digits: int = 4) -> str:
    """The three parameter arrays as short JSON, one array per line, for a text box."""
    r = lambda a: json.dumps(np.round(np.asarray(a, dtype=float), digits).tolist())  # noqa: E731
    return (f'{{\n  "gates": {r(params.gates)},\n  "experts": {r(params.experts)},\n'
            f'  "variances": {r(params.variances)}\n}}')


def params_from_text(text: str, name: str = "the parameters") -> MoEParams:
    """Parameters typed as JSON {"gates", "experts", "variances"}, checked like a model file."""
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} are not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    doc = {"format": MODEL_FORMAT, "version": 1, "params": params}
    return model_from_json(json.dumps(doc), name)[0]
