"""Reading user files and writing results: CSV data and model JSON.

Nothing here executes user content: CSV goes through pandas' C parser, JSON through ``json.loads``
and a JSON Schema; no pickle anywhere.  Every failure is an :class:`InputError` (a ``ValueError``)
whose message says what is wrong and what to change, ready for ``st.error``.
"""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd

from moecore import MoEParams
from moecore.model import feature_names
from moecore.params import min_samples, min_samples_rule
from moecore.shards import header_looks_like_data, sniff_separator

from .settings import MAX_APP_MACHINES, MAX_APP_N, SETTINGS

__all__ = [
    "COMMENT_LINES_ATTR",
    "DECIMAL_COMMA_ATTR",
    "MAX_COLUMNS",
    "MAX_MODEL_MB",
    "MAX_ROWS",
    "MAX_UPLOAD_MB",
    "MODEL_FORMAT",
    "MODEL_SCHEMA",
    "InputError",
    "data_to_csv",
    "markdown_escape",
    "model_from_json",
    "model_to_json",
    "params_from_text",
    "params_to_text",
    "parse_csv",
    "parse_sweep_values",
    "select_columns",
]

# Streamlit refuses larger files itself (.streamlit/config.toml server.maxUploadSize): same number,
# and the same unit: Streamlit counts that setting in MiB (streamlit/web/server/starlette/
# starlette_routes.py: maxUploadSize * 1024 * 1024 bytes).
MAX_UPLOAD_MB = 50
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# EM on more rows than this makes the app sluggish on a laptop; the CLI has no such limit.
MAX_ROWS = 200_000
MAX_COLUMNS = 200
# Characters of one column name: bounds what the names add to a session file (MAX_SESSION_MB).
MAX_NAME_CHARS = 100
# A model file: its uploaders refuse larger ones themselves (max_upload_size, in the same MiB).
MAX_MODEL_MB = 1
MAX_MODEL_BYTES = MAX_MODEL_MB * 1024 * 1024
# A session file holds an accepted upload's data.  Size rule: :func:`session_to_json` writes every
# number no longer than any text that reads as it, so the file is at most the upload's size plus,
# per row, one byte (JSON writes a newline as two) and, per column, its name twice JSON-escaped
# (at most 6 bytes a character) and the settings: 50 MiB + 0.2 MB + 0.24 MB + a few kB < 51 MiB.
# .streamlit/config.toml server.maxUploadSize is this number (the largest of the app's uploads).
MAX_SESSION_MB = MAX_UPLOAD_MB + 1
# The app's own limits on a model it is given (a model JSON, typed parameters): those of the Data
# page's knobs.
MAX_MODEL_EXPERTS = SETTINGS["custom_K"].param.high
MAX_MODEL_FEATURES = SETTINGS["custom_d"].param.high
MODEL_FORMAT = "dmoe-explorer/model"


MAX_MESSAGE = 600  # characters: an st.error is read, not scrolled


class InputError(ValueError):
    """A user file or choice that the app cannot use; the message says what to change.

    Messages are cut at :data:`MAX_MESSAGE` characters: a 10 MB cell quoted whole made an
    st.error of ten million characters.
    """

    def __init__(self, message=""):
        message = str(message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " [...]"
        super().__init__(message)


# Every ASCII punctuation character may be backslash-escaped in CommonMark (Streamlit's Markdown);
# ':' and '$' too, against Streamlit's :color[...] directives and LaTeX.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


# GitHub-flavoured Markdown turns bare addresses into links after escapes are resolved
# (http://..., www...., a@b.c): an invisible WORD JOINER after ':' and '@' and inside 'www.'
# breaks them; the text reads the same.
_AUTOLINK = re.compile(r"(\\:|\\@|(?i:www)(?=\\\.))")


def markdown_escape(text) -> str:
    """``text`` shown as itself inside Markdown (st.markdown, st.caption, st.error...): no link,
    image, emphasis, heading or directive of a user's string (a data, column or file name).

    Every punctuation character is backslash-escaped, and bare addresses get an invisible
    U+2060 that keeps them from becoming links (it travels with a copy of the text).
    """
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))
    return _AUTOLINK.sub("\\1\u2060", escaped)


def _clip(value, limit=60, escape=str):
    """A user value short enough to quote in a message; ``escape`` applies to the user's part only."""
    text = str(value)
    return escape(text) if len(text) <= limit else escape(text[:limit]) + f"... ({len(text):,} characters)"


def _quote(value, limit=60) -> str:
    """A user value (a column, cell or file name) quoted in a message the page shows as Markdown
    (st.error): clipped and escaped here, where the message is built, so that the message's own
    Markdown (code spans) still works and the user's text is only text."""
    return f"'{_clip(value, limit, markdown_escape)}'"


def _quotes(values) -> str:
    return ", ".join(_quote(v) for v in values)


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


def parse_csv(data: bytes, name: str = "the file", *, max_rows: int = MAX_ROWS, min_columns: int = 2) -> pd.DataFrame:
    """Parse uploaded bytes into a DataFrame with a header row and at least one data row, and
    ``min_columns`` columns (a response and an input; 1 for new inputs to predict).

    Columns keep whatever type pandas infers; :func:`select_columns` checks the ones the user
    picks, so a text column the user does not use is no error.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("internal: parse_csv expects bytes.")
    # A .tsv or .txt table is the same text with tabs (the separator is sniffed below).
    if not name.lower().endswith((".csv", ".tsv", ".txt")):
        raise InputError(f"{name} is not a .csv file. Upload a CSV (comma-separated values) file; .tsv and .txt "
                         "tables are read too.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"{name} is larger than the {MAX_UPLOAD_MB} MB limit: upload a smaller sample.")
    name = _clip(name, 200, markdown_escape)
    text = _decode(bytes(data), name)
    # Old Mac files end lines with a bare \r: the header reader below splits on \n only and the
    # csv module would refuse the whole file as one line.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"{name} is empty. Upload a CSV with a header row and numeric data rows.")
    # Count rows before parsing: a 10^6-row file is refused without building a DataFrame.
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if n_lines - 1 > max_rows:
        raise InputError(
            f"{name} has about {n_lines - 1:,} data rows; the app accepts at most {max_rows:,}. "
            "Upload a random subsample (or use the command line `python -m moecore` for big data)."
        )
    text, n_comments = _strip_comments(text)
    if not text.strip():
        raise InputError(f"{name} holds only comment lines (starting with #). Upload a CSV with a header row and "
                         "numeric data rows.")
    # Excel writes its separator on a first line of its own ("sep=;"): the separator, not the header.
    first_line = text.lstrip("\n").split("\n", 1)
    hint = re.fullmatch(r"sep=(.)", first_line[0].strip())
    if hint and len(first_line) > 1:
        text = first_line[1]
    sep = hint.group(1) if hint else sniff_separator(text)
    # pandas would silently rename a repeated name to "x.1": check the header ourselves.
    try:
        first = text.lstrip("\n").split("\n", 1)[0]
        header = [h.strip() for h in next(csv.reader(io.StringIO(first), delimiter=sep), [])]
    except csv.Error as exc:
        raise InputError(f"{name}: its header row cannot be read as CSV ({_clip(exc)}).") from None
    ragged = f"{name} has rows with a different number of fields than the header"
    fix = "Every row needs one value per column: fix or delete the ragged rows."
    # A first data row longer than the header would become pandas' row index (every value shifted
    # one column), or with index_col=False lose its last values with only a warning: its length is
    # checked here, the other rows' by pandas (on_bad_lines="error").
    try:
        rows = csv.reader(io.StringIO(text.lstrip("\n")), delimiter=sep)
        next(rows, None)
        first_row = next((r for r in rows if r), [])
    except csv.Error:
        first_row = []  # pandas reports what it cannot read
    if len(first_row) > len(header):
        raise InputError(f"{ragged} (the first data row has {len(first_row)}, the header {len(header)}). {fix}")
    if header_looks_like_data(header):
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        raise InputError(f"{name}: its first row ({_clip(shown, 120)}) holds numbers, not column names. Add a header "
                         "row naming the columns (e.g. y,x1,x2) as the file's first line.")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{name} has duplicated column names {_quotes(dup)}: give every column a "
                         "distinct name.")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, on_bad_lines="error", engine="c", index_col=False)
    except pd.errors.ParserError as exc:
        raise InputError(f"{ragged} ({_clip(exc, 200)}). {fix}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} has no columns. Upload a CSV with a header row.") from None
    except (ValueError, UnicodeError, csv.Error, OverflowError) as exc:
        raise InputError(f"{name} could not be read as CSV: {_clip(exc, 200)}") from None
    if df.shape[0] == 0:
        raise InputError(f"{name} has a header but no data rows. Add data rows below the header.")
    if sep != ",":
        df = _decimal_commas(df)
    if n_comments:
        df.attrs[COMMENT_LINES_ATTR] = n_comments
    if df.shape[1] < min_columns:
        raise InputError(
            f"{name} has {df.shape[1]} column(s) (separator detected: {sep!r}); it needs a response "
            "column and at least one input column, separated by commas, semicolons or tabs."
        )
    if df.shape[1] > MAX_COLUMNS:
        raise InputError(f"{name} has {df.shape[1]} columns; the app accepts at most {MAX_COLUMNS}.")
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise InputError(f"{name} has duplicated column names: give every column a distinct name.")
    long = [c for c in df.columns if len(c) > MAX_NAME_CHARS]
    if long:
        raise InputError(f"{name} has a column name of {len(long[0]):,} characters ({_quote(long[0])}); "
                         f"shorten every column name to at most {MAX_NAME_CHARS}.")
    return df


COMMENT_LINES_ATTR = "comment_lines"


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _strip_comments(text: str) -> tuple[str, int]:
    """``text`` without its comment lines (first character ``#``, as R's read.table and NumPy's loadtxt
    skip them), and how many there were.  A file a lab's logger or ``numpy.savetxt(header=...)`` wrote
    begins with notes, or names its columns on a comment line ("# y,x"): pandas read the first note as
    a one-column header and refused every data row as ragged (the audit of 2026-12-06).  Where the first
    line left is all numbers, the last leading comment line with as many fields is the header."""
    lines = text.split("\n")
    kept = [ln for ln in lines if not ln.lstrip().startswith("#")]
    n = len(lines) - len(kept)
    if not n:
        return text, 0
    lead = []
    for ln in lines:
        if ln.lstrip().startswith("#"):
            lead.append(ln.lstrip().lstrip("#").strip())
        elif ln.strip():
            break
    body = [ln for ln in kept if ln.strip()]
    if lead and body and lead[-1]:
        sep = sniff_separator("\n".join(body[:20]))
        first = [f.strip() for f in body[0].split(sep)]
        named = [f.strip() for f in lead[-1].split(sep)]
        if all(map(_is_number, first)) and len(named) == len(first) and not all(map(_is_number, named)):
            kept.insert(0, lead[-1])
    return "\n".join(kept), n


# A decimal comma and nothing else: "5,88", "-0,5", "12" (no thousands separator, which would be ambiguous).
_DECIMAL_COMMA = r"[+-]?\d*,?\d+(?:[eE][+-]?\d+)?"
DECIMAL_COMMA_ATTR = "decimal_comma_columns"


def _decimal_commas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text columns of decimal-comma numbers ("5,88") read as numbers; their names in
    ``df.attrs[DECIMAL_COMMA_ATTR]``.  Europe's spreadsheets export semicolons between fields and commas in
    numbers: the app said so and asked for another file (the audit of 2026-12-06).  Only where the
    separator is not the comma, and only columns whose every filled cell reads that way."""
    done = []
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            continue
        cells = df[c].dropna().astype(str).str.strip()
        if len(cells) and cells.str.fullmatch(_DECIMAL_COMMA).all() and cells.str.contains(",").any():
            df[c] = pd.to_numeric(cells.str.replace(",", ".", regex=False)).reindex(df.index)  # empty cells NaN
            done.append(c)
    if done:
        df.attrs[DECIMAL_COMMA_ATTR] = done
    return df


def _numeric(df: pd.DataFrame, col: str, empty_fix: str = "leave it out") -> np.ndarray:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"column {_quote(col)} is not numeric: row {i + 2} of the file holds {_quote(s.iloc[i])} "
                f"({int(bad.sum())} non-numeric value(s) in all). Pick numeric columns, or fix those cells."
            )
        s = conv
    a = s.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = ~np.isfinite(a)
    if missing.all() and np.isnan(a).all():
        raise InputError(f"column {_quote(col)} is empty (no value in any of its {a.size:,} rows): {empty_fix}.")
    if missing.any():
        rows = (np.flatnonzero(missing)[:5] + 2).tolist()
        raise InputError(
            f"column {_quote(col)} has {int(missing.sum())} missing or infinite value(s) (file rows "
            f"{rows}{'...' if missing.sum() > 5 else ''}). Remove those rows or fill them in."
        )
    return a


def select_columns(df: pd.DataFrame, y_col: str, x_cols) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, d), y (n,)) from the chosen response and input columns, all checked."""
    x_cols = list(x_cols)
    if y_col not in df.columns:
        raise InputError(f"response column {_quote(y_col)} is not in the file; pick one of {_quotes(df.columns)}.")
    if not x_cols:
        raise InputError("pick at least one input column (x).")
    if y_col in x_cols:
        raise InputError(f"{_quote(y_col)} is the response: remove it from the input columns.")
    unknown = [c for c in x_cols if c not in df.columns]
    if unknown:
        raise InputError(f"input column(s) {_quotes(unknown)} are not in the file.")
    if pd.api.types.is_bool_dtype(df[y_col]):  # as moecore refuses it; an input of True/False reads as 0/1
        raise InputError(f"the response {_quote(y_col)} holds True/False: the experts are Gaussian regressions of a "
                         "continuous response, no model of a 0/1 outcome. Pick a numeric response.")
    y = _numeric(df, y_col, "pick another response column (a file of new inputs alone is predicted by a saved "
                 "model: Apply a saved model, on the Distributed fit page)")
    X = np.column_stack([_numeric(df, c) for c in x_cols])
    # Too few rows first: one row is "constant" in every column, which is not what to change.
    need = min_samples(2, X.shape[1])
    if len(y) < need:
        raise InputError(f"the file has {len(y)} data row(s); a mixture of two experts on {X.shape[1]} input(s) needs "
                         f"at least {need} ({min_samples_rule(2, X.shape[1])}), and each machine as many. Upload more "
                         "rows.")
    const = [c for c, col in zip(x_cols, X.T, strict=True) if not np.ptp(col) > 0]
    if const:
        raise InputError(
            f"input column(s) {_quotes(const)} are constant: remove them (the intercept already models a constant)."
        )
    if not np.ptp(y) > 0:
        raise InputError(f"the response {_quote(y_col)} is constant: there is nothing to regress.")
    return X, y


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: a leading formula character gets a ' before it."""
    text = str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _shortest_text(v: float) -> str:
    """The shortest text that reads back as the float64 ``v``: the fewest significant digits,
    positional ('.5', no '0' before the '.'), scientific ('1.5e-7') or with a whole mantissa
    ('15e-8'), no '+' nor leading zeros in the exponent.

    From 1e18 only the forms with an exponent (pandas reads positional text there as uint64 or
    as text); for such a value a whole mantissa is never longer than positional text.
    """
    sci = np.format_float_scientific(v, unique=True, trim="-", exp_digits=1).replace("e+", "e")
    mantissa, _, exp = sci.partition("e")
    digits = mantissa.replace(".", "")
    whole = f"{digits}e{int(exp) - (len(digits.lstrip('-')) - 1)}"
    if abs(v) >= 1e18:
        return min(sci, whole, key=len)
    pos = np.format_float_positional(v, unique=True, trim="-")
    pos = pos.replace("0.", ".", 1) if pos.lstrip("-").startswith("0.") else pos
    return min(pos, sci, whole, key=len)


def _column_for_csv(a: np.ndarray):
    """A float column (n,) as pandas writes it in :func:`_numbers_csv`.

    pandas writes a float as Python's repr (shortest digits), which :func:`_numbers_csv` then
    trims ('5.0' -> '5', '0.5' -> '.5').  repr stays positional up to 1e16, where scientific
    can be shorter (1e15 is '1000000000000000.0', 18 characters for 4): only such values, rare in
    real data, go through :func:`_shortest_text`, once per distinct value.
    """
    mag = np.abs(a)
    odd = (mag >= 1e16) | ((mag > 0) & (mag < 1e-3)) | ((mag >= 1000) & (np.fmod(a, 1000) == 0))
    if not odd.any():
        # A column of whole numbers (counts, codes, one-digit scores) as integers: written
        # without '.0' and 2.5 times faster.  Exact: every such value is below 1e16 here.
        return a.astype(np.int64) if np.all(np.fmod(a, 1) == 0) else a
    out = a.astype(object)
    values, inverse = np.unique(a[odd], return_inverse=True)
    texts = np.array([_shortest_text(v) for v in values], dtype=object)
    out[odd] = texts[inverse]
    return out


# In the body of a CSV written by pandas: a float's needless '.0' and the '0' before its '.'.
_TRAILING_ZERO = re.compile(r"\.0(?=[,\n])")
_LEADING_ZERO = re.compile(r"(?<=[,\n-])0\.")


def _numbers_csv(cols: dict) -> str:
    """CSV text of ``cols`` (name -> numeric array (n,)), each number in its shortest exact form.

    A number is written no longer than any text that reads back as it (the size rule of
    :data:`MAX_SESSION_MB`): a CSV of one-digit integers read as floats would otherwise come
    back as 'd.0', twice its size.  Every value reads back as the same float64 (negative zero
    as zero).
    """
    df = pd.DataFrame({c: (_column_for_csv(np.asarray(a, dtype=np.float64)) if np.asarray(a).dtype.kind == "f"
                           else a) for c, a in cols.items()})
    text = df.to_csv(index=False, lineterminator="\n")
    head, _, body = text.partition("\n")
    body = _LEADING_ZERO.sub(".", _TRAILING_ZERO.sub("", "\n" + body))
    return head + body


def data_to_csv(X, y, labels=None, x_names=None, y_name="y", *, safe_names=True) -> bytes:
    """The data as UTF-8 CSV bytes: inputs, response and (for simulated data) the true expert.

    Numbers are written in their shortest exact form (parsing the file gives the same arrays).
    ``safe_names``: the column names, the only text cells, are made spreadsheet-safe
    (:func:`spreadsheet_safe`), for a file a spreadsheet may open; a session file keeps them exact.
    """
    X = np.asarray(X)
    x_names = feature_names(X.shape[1], x_names)
    name = spreadsheet_safe if safe_names else str
    cols = {name(c): X[:, j] for j, c in enumerate(x_names)}
    cols[name(y_name)] = np.asarray(y)
    if labels is not None:
        cols["true_expert"] = np.asarray(labels) + 1
    return _numbers_csv(cols).encode("utf-8")


def table_to_csv(df: pd.DataFrame) -> bytes:
    """A numeric table (predictions) as UTF-8 CSV bytes, its column names spreadsheet-safe."""
    return df.rename(columns=spreadsheet_safe).to_csv(index=False, lineterminator="\n").encode("utf-8")


_KNOWN_EXTENSIONS = (".csv.gz", ".csv", ".json", ".txt", ".tsv", ".gz")


def stem(name: str) -> str:
    """A download name's stem from a data or file name: the folder and a known extension dropped,
    spaces as underscores ("mine.csv" -> "mine", so a download is not named "mine.csv.csv")."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _KNOWN_EXTENSIONS:
        if base.lower().endswith(ext) and len(base) > len(ext):
            base = base[: -len(ext)]
            break
        # A name the app extended ("mine.csv without 1 outlying row"): the file's extension inside it too.
        inside = base.lower().find(ext + " ")
        if inside > 0:
            base = base[:inside] + base[inside + len(ext):]
            break
    return base.strip().replace(" ", "_") or "data"


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
        "meta": {
            "type": "object",
            "properties": {
                "x_names": {"description": "the input columns, in the model's order", "type": "array",
                            "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
                "y_name": {"description": "the response column", "type": "string", "minLength": 1},
            },
        },
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


def model_from_json(data, name: str = "the model file", *,
                    fix: str = "Upload a model JSON downloaded from this app.") -> tuple[MoEParams, dict]:
    """Validate JSON text or bytes against :data:`MODEL_SCHEMA`; return (params, meta).  ``fix``: what
    a message on the document's shape tells the user to do."""
    name = _clip(name, 200, markdown_escape)
    import jsonschema

    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_MODEL_BYTES:
            raise InputError(f"{name} is larger than {MAX_MODEL_MB} MB; a model file is much smaller.")
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{name} is not UTF-8 text: upload the .json file the app produced.") from None
    elif isinstance(data, str):
        data = data.removeprefix("\ufeff")  # a byte-order mark, as the bytes' utf-8-sig decoding drops it
    doc = _loads(data, name)
    try:
        jsonschema.validate(doc, MODEL_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise InputError(
            f"{name} does not follow the model schema at {_clip(where)}: {_clip(exc.message, 200)}. {fix}"
        ) from None
    except RecursionError:
        raise InputError(f"{name} is nested too deeply to be a model file.") from None
    p = doc["params"]
    rows = {len(r) for r in p["gates"]} | {len(r) for r in p["experts"]}
    if len(rows) != 1:
        raise InputError(f"{name}: every row of gates and experts must have K entries (ragged matrix).")
    try:
        params = MoEParams.from_dict(p, name)
    except (TypeError, ValueError) as exc:
        raise InputError(_clip(exc, 200)) from None
    meta = doc.get("meta", {})
    x_names, y_name = meta.get("x_names"), meta.get("y_name")
    if x_names is not None and len(x_names) != params.n_features:
        raise InputError(f"{name} names {len(x_names)} input column(s) (x_names) for a model of d = "
                         f"{params.n_features} inputs. {fix}")
    if x_names is not None and y_name in x_names:
        raise InputError(f"{name} names {_quote(y_name)} both as the response (y_name) and as an input (x_names). "
                         + fix)
    if params.n_experts > MAX_MODEL_EXPERTS or params.n_features > MAX_MODEL_FEATURES:
        raise InputError(
            f"{name} has K = {params.n_experts:,} experts and d = {params.n_features:,} inputs; the app works "
            f"with at most K = {MAX_MODEL_EXPERTS} and d = {MAX_MODEL_FEATURES} (as the Data page's knobs). "
            "Use the library for larger models.")
    return params, meta


def params_to_text(params: MoEParams, digits: int | None = 4) -> str:
    """The three parameter arrays as short JSON, one array per line, for a text box; ``digits=None``: every
    digit (the text reads back as the same floats)."""
    r = lambda a: json.dumps((np.asarray(a, dtype=float) if digits is None  # noqa: E731
                              else np.round(np.asarray(a, dtype=float), digits)).tolist())
    return (f'{{\n  "gates": {r(params.gates)},\n  "experts": {r(params.experts)},\n'
            f'  "variances": {r(params.variances)}\n}}')


def _parse_int(text):
    # Python refuses to convert integers of more than 4300 digits (ValueError), and NumPy one
    # beyond float64's range (OverflowError, 10^400): read such a number as the float it is
    # (inf beyond 1.8e308), which the parameter checks then refuse as not finite.
    return int(text) if len(text) < 300 else float(text)


def _loads(text, name, limit=MAX_MODEL_BYTES):
    """json.loads that only ever raises InputError (deep nesting and huge integers included)."""
    if len(text) > limit:
        raise InputError(f"{name} is larger than {MAX_MODEL_MB} MB; a model file is much smaller.")
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise InputError(f"{name} is nested too deeply: a model is arrays of numbers, two levels deep.") from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"{name} holds a number that cannot be read ({_clip(exc)}).") from None


def params_from_text(text: str, name: str = "the typed text") -> MoEParams:
    """Parameters typed as JSON {"gates", "experts", "variances"}, checked like a model file."""
    params = _loads(text, name)
    doc = {"format": MODEL_FORMAT, "version": 1, "params": params}
    # What to change is the text, not a file to upload.
    return model_from_json(json.dumps(doc), name, fix='Keep the three arrays "gates", "experts" and "variances", '
                           "as prefilled from the knobs.")[0]


# ------------------------------------------------------------------------------ sweep values
MAX_SWEEP_VALUES = 20
SWEEP_LIMITS = {"n_machines": (1, MAX_APP_MACHINES), "n": (50, MAX_APP_N)}
SWEEP_NAMES = {"n_machines": "M", "n": "n", "support_fraction": "support fractions",
               "refine_rounds": "refinement rounds", "alpha": "alpha", "n_experts": "K"}


def parse_sweep_values(text: str, parameter: str, n_machines: int, max_rounds: int = 10) -> list:
    """The values of an Experiments sweep typed as "2, 4, 8", checked against their ranges, each once.

    Support fractions multiply floor(n / 4M): above 4 M the support would exceed n.
    """
    vals = _sweep_values(text, parameter, n_machines, max_rounds)
    repeated = sorted({v for v in vals if vals.count(v) > 1})
    if repeated:
        # Each value runs with the same seeds: "2, 2, 4" pooled two copies of the same fits at 2 as if
        # they were four repeats (narrower bars than the runs support).
        raise InputError(f"{', '.join(f'{v:g}' for v in repeated)} is given more than once: each value runs once "
                         "per repeat; remove the copy.")
    return vals


def _sweep_values(text, parameter, n_machines, max_rounds):
    name = SWEEP_NAMES.get(parameter, parameter)
    parts = [v.strip() for v in str(text).replace(";", ",").split(",") if v.strip()]
    if not parts:
        raise InputError("give at least one value to sweep over.")
    if len(parts) > MAX_SWEEP_VALUES:
        raise InputError(f"give at most {MAX_SWEEP_VALUES} values to sweep over, got {len(parts)}.")
    vals = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise InputError(f"values must be numbers separated by commas; {_clip(p)!r} is not a number.") from None
        if not np.isfinite(v):
            raise InputError(f"{name} must be finite numbers, got {_clip(p)!r}.")
        vals.append(v)
    if parameter == "refine_rounds":
        if any(v != int(v) or v < 0 for v in vals):
            raise InputError("refinement rounds must be whole numbers from 0.")
        if max(vals) > max_rounds:
            raise InputError(f"at most {max_rounds} refinement rounds here.")
        return [int(v) for v in vals]
    if parameter == "n_experts":  # the Fit page's K rule: the library's, narrowed to what the app offers
        if any(v != int(v) for v in vals):
            raise InputError(f"K must be whole numbers; got {next(v for v in vals if v != int(v)):g}.")
        try:
            return [SETTINGS["K"].param.check(int(v)) for v in vals]
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if parameter in SWEEP_LIMITS:
        lo, hi = SWEEP_LIMITS[parameter]
        bad = [v for v in vals if v != int(v) or v < lo]
        if bad:
            raise InputError(f"{name} must be positive whole numbers (at least {lo:,}); got {bad[0]:g}.")
        if max(vals) > hi:
            raise InputError(f"{name} is limited to {hi:,} in the app"
                             + ("; use the command line for larger runs." if parameter == "n" else "."))
        return [int(v) for v in vals]
    if parameter == "alpha":
        if min(vals) < 0 or max(vals) > 1:
            raise InputError("alpha must lie between 0 (separated machines) and 1 (random split).")
        return vals
    hi = 4 * int(n_machines)
    bad = [v for v in vals if not 0 < v <= hi]
    if bad:
        raise InputError(
            f"support fractions must be > 0 and at most 4 M = {hi} (beyond, the supporting sample would "
            f"exceed n); got {_clip(bad[0])}.")
    return vals


# A number written with thousands separators or a decimal comma: "-1,381.3", "1.234,5", "1,5", "12 000".
_SEPARATED_NUMBER = r"^[+-]?\d{1,3}([,. \u00a0']\d{3})*([.,]\d+)?$|^[+-]?\d+,\d+$"


def text_number_columns(df: pd.DataFrame, y_col: str) -> list:
    """[(column, an example cell)] of the text columns (not the response) whose every filled cell reads as a
    number written with separators: left out of the default inputs, they would vanish without a word."""
    found = []
    for c in df.columns:
        if c in (y_col, "true_expert") or pd.api.types.is_numeric_dtype(df[c]):
            continue
        cells = df[c].dropna().astype(str).str.strip()
        cells = cells[cells != ""]
        if len(cells) and cells.str.fullmatch(_SEPARATED_NUMBER).all():
            # An example that shows the separator ("1,381.3", not the "821.8" the column also holds).
            marked = cells[cells.str.contains(r"\d[,\s'\u00a0]\d")]
            found.append((c, (marked if len(marked) else cells).iloc[0]))
    return found


def other_text_columns(df: pd.DataFrame, y_col: str) -> list:
    """[(column, an example cell, clipped)] of the text columns (not the response, not :func:`text_number_columns`'):
    names, numbers with units ("52.1 kg"), dates.  They were left out of the inputs without a word, and a unit
    is one edit away from being data (the audit of 2026-12-06)."""
    separated = {c for c, _ in text_number_columns(df, y_col)}
    found = []
    for c in df.columns:
        if c in (y_col, "true_expert") or c in separated or pd.api.types.is_numeric_dtype(df[c]):
            continue
        cells = df[c].dropna().astype(str).str.strip()
        cells = cells[cells != ""]
        if len(cells):
            found.append((c, _clip(cells.iloc[0], 30)))
    return found


def text_cell_advice(df: pd.DataFrame, y_col: str) -> str:
    """Why no column besides ``y_col`` reads as numbers, from its first cell that is not one: a decimal comma or
    a thousands separator, a percent sign, or that cell as it is ("" when some column does read as numbers).
    The page blamed decimal commas for cells of "5.1%" or "-" (the audit of 2026-12-06)."""
    for c in df.columns:
        if c == y_col or pd.api.types.is_numeric_dtype(df[c]):
            continue
        cells = df[c].dropna().astype(str).str.strip()
        bad = cells[pd.to_numeric(cells, errors="coerce").isna()]
        if not len(bad):
            continue
        cell = bad.iloc[0]
        if re.fullmatch(_SEPARATED_NUMBER, cell):
            why = ("numbers written with a decimal comma (1,5) or with thousands separators (1,234.5) read as text: "
                   "save the file with decimal points and no separators")
        elif re.fullmatch(r"[+-]?[\d.,]+\s*%", cell):
            why = "percent signs make numbers text: save the values without them (5.1, not 5.1%)"
        else:
            why = "fix or empty those cells, or pick the input columns to see which cells are not numbers"
        return f"No column besides the response reads as numbers (column {_quote(c)} holds {_quote(cell)}): {why}."
    return ""


# The names a table's row numbers go by: pandas writes its index as "Unnamed: 0" (R's write.csv its row
# names under an empty header, which pandas reads the same), or under the index's own name.
_ROW_NUMBER_NAME = re.compile(r"(?i)unnamed: \d+|index|idx|id|row|rows|rownames|row_?names|#")


CONSTANT = "constant"  # left_out_inputs' word for a column a fit would refuse


def left_out_inputs(df: pd.DataFrame, y_col: str) -> list:
    """(column, why) of the numeric columns not offered as inputs by default: row numbers (a column
    named as an index, holding 0..n-1 or 1..n in order: what pandas writes unless told not to, which
    a fit would take as an input), empty columns (every cell missing) and constant ones (a fit
    refuses them: every expert's intercept already holds a constant).  A column of other name
    holding 1..n is data (a time index, a trend) and stays."""
    out = []
    n = len(df)
    for c in df.columns:
        if c in (y_col, "true_expert") or not pd.api.types.is_numeric_dtype(df[c]):
            continue
        v = df[c].to_numpy()
        if df[c].isna().all():
            out.append((c, "empty"))
        elif n > 1 and df[c].nunique(dropna=True) == 1:
            out.append((c, f"{CONSTANT}: every value is {df[c].dropna().iloc[0]:g}"))
        elif (_ROW_NUMBER_NAME.fullmatch(str(c).strip()) and n > 1 and v.dtype.kind in "iu" and v[0] in (0, 1)
              and np.array_equal(v, np.arange(v[0], v[0] + n))):
            out.append((c, f"row numbers {v[0]}..{v[0] + n - 1}"))
    return out


def numeric_inputs(df: pd.DataFrame, y_col: str) -> list:
    """The columns offered as inputs by default: the numeric ones but the response, the labels and
    those :func:`left_out_inputs` names."""
    left = {c for c, _ in left_out_inputs(df, y_col)}
    return [c for c in df.columns if c not in (y_col, "true_expert") and c not in left
            and pd.api.types.is_numeric_dtype(df[c])]


def true_labels(df: pd.DataFrame, x_cols=()):
    """The 0-based true expert of each row from a "true_expert" column (1-based, as
    :func:`data_to_csv` writes it), or None when there is none or it is not used as an input."""
    if "true_expert" not in df.columns or "true_expert" in x_cols:
        return None
    lab = pd.to_numeric(df["true_expert"], errors="coerce")
    if lab.notna().all() and (lab >= 1).all() and (lab % 1 == 0).all():
        return lab.to_numpy(dtype=int) - 1
    return None


# ---------------------------------------------------------------------------------- session file
SESSION_FORMAT = "dmoe-explorer/session"
# Settings a session file never carries nor sets: where a fit runs is the server's choice (a
# scheduler address is typed on the Distributed fit page; a link cannot carry one either).
SESSION_EXCLUDED = frozenset({"backend", "scheduler"})


def session_to_json(data, settings: dict) -> bytes:
    """The session's data (as CSV text, the format uploads use) and its settings, as JSON.

    For what cannot travel in a link: uploaded data.  ``data`` is an explorer.data.Dataset.
    Column names are kept exact (the CSV inside is read by :func:`session_from_json`, never by a
    spreadsheet); the file obeys the size rule of :data:`MAX_SESSION_MB`.
    """
    csv_text = data_to_csv(data.X, data.y, data.labels, data.x_names, data.y_name,
                           safe_names=False).decode("utf-8")
    kept = {k: v for k, v in dict(settings).items() if k not in SESSION_EXCLUDED}
    doc = {"format": SESSION_FORMAT, "version": 1, "settings": kept,
           "data": {"name": data.name, "x_names": list(data.x_names), "y_name": data.y_name, "csv": csv_text}}
    return json.dumps(doc, default=_json_default, ensure_ascii=False).encode("utf-8")


def session_from_json(raw: bytes, name: str = "the session file"):
    """Read a session file back: (X, y, labels or None, x_names, y_name, data name, settings dict).

    The data go through the same checks as a CSV upload; the settings are returned as found, for
    the caller to check each against its declaration.
    """
    file_name, name = name, _clip(name, 200, markdown_escape)
    if len(raw) > MAX_SESSION_MB * 1024 * 1024:
        raise InputError(f"{name} is larger than {MAX_SESSION_MB} MB: a session file of this app is smaller.")
    try:
        text = bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text: upload the .json session file the app produced.") from None
    doc = _loads(text, name, limit=len(text) + 1)
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT or not isinstance(doc.get("data"), dict):
        raise InputError(f"{name} is not a DMoE Explorer session file (format {SESSION_FORMAT!r}).")
    d = doc["data"]
    if not isinstance(d.get("csv"), str) or not isinstance(d.get("x_names"), list):
        raise InputError(f"{name} holds no data table.")
    # The table is read as an upload would be (same checks and limits); the name only labels messages.
    df = parse_csv(d["csv"].encode("utf-8"), f"the data table of {file_name}.csv")
    if d["x_names"] and not any(str(c) in df.columns for c in d["x_names"]):
        # Files written before names were kept exact carry spreadsheet-safe names in the table.
        df.columns = [c[1:] if c.startswith("'") and c[1:].startswith(_FORMULA_START) else c for c in df.columns]
    y_name = str(d.get("y_name", "y"))
    x_names = [str(c) for c in d["x_names"]]
    X, y = select_columns(df, y_name, x_names)
    labels = true_labels(df, x_names)
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    settings = {k: v for k, v in settings.items() if k not in SESSION_EXCLUDED}
    return X, y, labels, x_names, y_name, _clip(str(d.get("name", "session")), 80), settings
