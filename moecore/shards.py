"""Fitting from data that already lives on the machines: one CSV or Parquet file per machine.

:meth:`DistributedMoE.fit_shards <moecore.distributed.DistributedMoE.fit_shards>` calls
:func:`fit_shards` with a :class:`ShardJob`: what the estimator's settings ask of the machines.
It is the array path of :meth:`DistributedMoE.fit` with the data movement turned around:
instead of the server cutting (X, y) into shards and shipping them, every worker reads its own
file, validates it, fits its local MoE and draws its share of the supporting sample.  Only the
local models and the support points travel back; the full data never passes through one process.

Two rounds:

1. *Inspect* every file (its columns and number of rows).  Parquet answers from its metadata;
   a CSV is scanned for one column only.  With dask the file is loaded on the worker once and
   stays there for round 2 (no second read).
2. *Fit*: machine m reads its rows, fits with its child seed of ``random_state`` (the same
   per-machine seeds as the array path), and draws ``S_m`` support rows without replacement with
   a per-machine seed, ``S_m`` the largest-remainder share of S proportional to ``n_m``.

Then, exactly as in the array path: weights ``n_m / n``, the reduction by
:func:`~moecore.reduction.reduce_mixtures`.  So ``fit_shards`` on files holding the rows of
``fit(X, y, machine=labels)`` gives the same local models; the reduced model differs only through
its supporting sample (stratified per machine here, drawn from the pooled rows there; both are
uniform samples of the pooled data on average).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import lzma
import os
import re
import time
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from joblib import delayed

from . import local
from ._validation import BOOL_RESPONSE, distinct_names
from .collinear import ColumnScatter, warn_tied
from .dispatch import MachineData, Runner, gather_dask, pinned_worker_gone
from .outliers import Outliers, find_outliers, warn_file_outliers
from .params import min_samples, min_samples_rule
from .shard_check import warn_small_shards

__all__ = ["PinnedShards", "ShardError", "ShardInfo", "ShardJob", "ShardsFitted", "allocate_support", "file_columns",
           "fit_shards", "inspect_shard", "read_shard", "rows_digest"]

_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt", ".tsv")
_PARQUET = (".parquet", ".pq", ".parq")


class ShardError(ValueError):
    """A shard file is missing, unreadable or malformed; the message names the file."""


@dataclass
class ShardInfo:
    """Round 1 of one file: its row count and the feature columns it will contribute."""

    index: int
    path: str
    n_samples: int
    features: list


@dataclass
class ShardFitResult:
    """Round 2 of one machine: the local fit, the support rows it drew, its read time, the
    digest of the rows it fitted (:func:`rows_digest`; "" when it fitted none), their outlying rows and the
    summary of its inputs for the check on tied columns."""

    index: int
    result: local.LocalFitResult
    X_support: np.ndarray
    y_support: np.ndarray
    read_time: float
    digest: str = ""
    outliers: Outliers | None = None  # its file's outlying rows (moecore.outliers), found where it was read
    scatter: ColumnScatter | None = None  # its inputs' mean and centred scatter (moecore.collinear)


def rows_digest(X, y):
    """A content digest of a machine's rows, X (n, d) and y (n,): what pins a shard for a fit."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _format(path):
    low = str(path).lower()
    if low.endswith(_PARQUET):
        return "parquet"
    if low.endswith(_CSV):
        return "csv"
    raise ShardError(
        f"shard {path!r}: unknown file type; use CSV ({', '.join(_CSV)}) or Parquet "
        f"({', '.join(_PARQUET)})."
    )


def _check_exists(path):
    if os.path.isdir(path):
        raise ShardError(f"shard {path!r} is a directory, not a file (on host {os.uname().nodename}).")
    if not os.path.isfile(path):
        raise ShardError(f"shard file {path!r} does not exist (on host {os.uname().nodename}).")


def sniff_separator(text):
    """The field separator of CSV ``text`` (its first lines): comma, semicolon or tab, as
    :class:`csv.Sniffer` reads it; a comma when it cannot tell (a single column)."""
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def header_looks_like_data(names):
    """Whether a header row is a data row: every name a finite number and some not whole, as when
    a file was saved without its header (names such as 0, 1, 2 or years are whole and pass)."""
    try:
        values = [float(str(n).strip()) for n in names]
    except ValueError:
        return False
    return bool(values) and all(map(np.isfinite, values)) and not all(v.is_integer() for v in values)


def _head(path, size=4096):
    """The first ``size`` characters of a text file, decompressed as pandas would read it."""
    low = str(path).lower()
    if low.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            raw = zf.open(names[0]).read(4 * size) if names else b""
        return raw.decode("utf-8", errors="replace")[:size]
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(os.path.splitext(low)[1], open)
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.read(size)


@lru_cache(maxsize=256)
def _sep_of(path, mtime_ns, size):
    return sniff_separator(_head(path))


def _sep(path):
    """The field separator of a text shard: tab for .tsv, else what its first lines show (comma,
    semicolon or tab; the command line's --data files are read here too)."""
    if str(path).lower().endswith((".tsv", ".tsv.gz")):
        return "\t"
    st = os.stat(path)
    return _sep_of(os.fspath(path), st.st_mtime_ns, st.st_size)


def _columns(path, fmt):
    import pandas as pd

    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = [str(c) for c in pf.schema_arrow.names]
        distinct_names(names, f"shard {path!r}: its header", error=ShardError)
        return names, pf.metadata.num_rows
    first = _head(path).lstrip("\n").split("\n", 1)[0]
    if first.lstrip().startswith("#"):
        # pandas would read the note as the header: a response named "# y" (numpy.savetxt's header), or
        # one column named after the note and every data row ragged.
        raise ShardError(f"shard {path!r} begins with a comment line ({first.strip()[:60]!r}); it is read as "
                         "plain CSV, whose first line names the columns (e.g. y,x1,x2): remove the comment lines "
                         "(grep -v '^#').")
    sep = _sep(path)
    names = [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]
    if header_looks_like_data(names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ShardError(f"shard {path!r}: its first row ({shown}) holds numbers, not column names; the file needs "
                         "a header row naming the columns (e.g. y,x1,x2).")
    # pandas renames a repeated name (a, a.1): the header as written, to refuse it rather than fit "a.1".
    written = pd.read_csv(path, nrows=1, header=None, sep=sep, dtype=str, keep_default_na=False).iloc[0]
    distinct_names([str(c) for c in written], f"shard {path!r}: its header", error=ShardError)
    return names, None


def file_columns(path):
    """The column names of a CSV, TSV or Parquet file, from its header (a ShardError naming the file if
    it is missing or unreadable)."""
    path = os.fspath(path)
    with _reading(path):
        fmt = _format(path)
        _check_exists(path)
        return _columns(path, fmt)[0]


def _select(path, columns, response, features):
    if response not in columns:
        raise ShardError(f"shard {path!r} has no response column {response!r}; its columns are {columns}.")
    if features is None:
        feats = [c for c in columns if c != response]
        unnamed = [c for c in feats if re.fullmatch(r"Unnamed: \d+", c)]
        if unnamed:
            # pandas' to_csv writes the row index under an empty name, which it reads back as "Unnamed: 0": fitted
            # as an input, and predict then asked for a row number (the audit of 2026-12-06).
            raise ShardError(f"shard {path!r} has a column without a name in its header (read as {unnamed[0]!r}): a "
                             "row index, as pandas' to_csv (index=True) or R's write.csv write it. Write the files "
                             "without it (to_csv(index=False)), or pass features=[...] naming the inputs.")
    else:
        feats = [str(f) for f in distinct_names(features, "features", verb="lists", error=ShardError)]
        missing = [f for f in feats if f not in columns]
        if missing:
            raise ShardError(
                f"shard {path!r} lacks the feature column(s) {missing}; its columns are {columns}."
            )
        if response in feats:
            raise ShardError(f"the response {response!r} is also listed among the features.")
    if not feats:
        raise ShardError(f"shard {path!r} has no feature column besides the response {response!r}.")
    return feats


@contextmanager
def _reading(path):
    """Turn any failure of a reader into a ShardError naming the file."""
    try:
        yield
    except ShardError:
        raise
    except Exception as exc:
        raise ShardError(f"shard {path!r} could not be read: {type(exc).__name__}: {exc}") from None


def _open(path, response, features):
    """Format, row count (None for CSV: unknown without parsing) and feature columns of a shard."""
    fmt = _format(path)
    _check_exists(path)
    columns, n = _columns(path, fmt)
    return fmt, n, _select(path, columns, response, features)


def inspect_shard(index, path, response="y", features=None):
    """Round 1: check the file exists and holds the columns; count its rows.

    Returns :class:`ShardInfo`.  Raises :class:`ShardError` naming the file.
    """
    import pandas as pd

    path = os.fspath(path)
    with _reading(path):
        _, n, feats = _open(path, response, features)
        if n is None:  # CSV: parse one column only to count the rows as pandas will read them
            n = len(pd.read_csv(path, usecols=[response], dtype=str, sep=_sep(path)))
    return ShardInfo(index, path, int(n), feats)


def read_shard(path, response="y", features=None):
    """Read and validate one shard file into ``(X (n, d), y (n,), feature names)``.

    Every column used must be numeric and finite (an input of True/False reads as 0/1, a response of it is
    refused); errors name the file, the column and a bad value.
    """
    import pandas as pd

    path = os.fspath(path)
    with _reading(path):
        fmt, _, feats = _open(path, response, features)
        use = [*feats, response]
        if fmt == "parquet":
            df = pd.read_parquet(path, columns=use)
        else:
            # pandas >= 3 parses floats exactly (round trip) by default: values read == values written.
            # Every column is parsed (no usecols): with usecols pandas silently drops the extra
            # fields of a row longer than the header, which then reads as its first fields.
            # A first row longer than the header would become a row index (pandas' implicit
            # index), shifting every value one column left, or with index_col=False lose its extra
            # field with only a warning.  Read as plain rows first, the header's width is the
            # row width, so an extra field is the same ParserError as in any later row.
            pd.read_csv(path, sep=_sep(path), header=None, nrows=2, dtype=str, on_bad_lines="error")
            df = pd.read_csv(path, sep=_sep(path), on_bad_lines="error", index_col=False)[use]
    if len(df) == 0:
        raise ShardError(f"shard {path!r} holds no rows.")
    for c in use:
        col = df[c]
        if col.dtype.kind == "b" and c == response:  # an input of True/False reads as 0/1, as in fit
            raise ShardError(f"shard {path!r}: " + BOOL_RESPONSE.format(name=f"response column {c!r}"))
        if col.dtype.kind not in "iufb":
            bad = pd.to_numeric(col, errors="coerce").isna() & col.notna()
            example = col[bad].iloc[0] if bad.any() else col.iloc[0]
            raise ShardError(
                f"shard {path!r}: column {c!r} is not numeric (dtype {col.dtype}); e.g. data row "
                f"{int(np.flatnonzero(bad.to_numpy())[0]) + 1 if bad.any() else 1} (counted from 1 below the "
                f"header) holds {str(example)!r}."
            )
        vals = col.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            raise ShardError(
                f"shard {path!r}: column {c!r} holds {int(bad.sum())} missing or infinite value(s) "
                f"(first at data row {int(np.flatnonzero(bad)[0]) + 1}, counted from 1 below the header); remove or "
                "impute them."
            )
    X = np.ascontiguousarray(df[feats].to_numpy(dtype=np.float64))
    y = np.ascontiguousarray(df[response].to_numpy(dtype=np.float64))
    return X, y, feats


@lru_cache(maxsize=256)
def _read_cached(path, mtime_ns, size, response, features):
    X, y, _ = read_shard(path, response, list(features))
    return X, y, rows_digest(X, y)


def read_shard_cached(path, response, features):
    """``(X, y, digest)`` of a shard file, read once per process while the file is unchanged.

    A machine keeps its data in memory between the exchanges of a fit (refits, refinement
    rounds); a joblib worker process does the same for the files it has been given.
    """
    st = os.stat(path)
    return _read_cached(os.fspath(path), st.st_mtime_ns, st.st_size, response, tuple(features))


@dataclass(frozen=True)
class PinnedShards:
    """Reads machine m's file for the exchanges after its local fit (refits, refinement rounds)
    and checks it holds the very rows the machine fitted: ``pins`` maps a path to (m, n_m,
    digest).  A joblib worker that re-reads a file must not fit other rows than those of the
    local stage (a file truncated or rewritten mid-fit), nor fail with a bare OSError.

    Called with a path, returns (X (n_m, d), y (n_m,)) or raises :class:`ShardError` naming the
    machine, the file, the host and what changed.
    """

    response: str
    features: tuple
    pins: dict

    def __call__(self, path):
        m, n, digest = self.pins[path]
        where = _machine_file(m, path)
        try:
            X, y, got = read_shard_cached(path, self.response, self.features)
        except FileNotFoundError:
            raise ShardError(f"{where} disappeared during the fit; its {n} rows were fitted, so the fit "
                             "cannot go on without them.") from None
        except OSError as exc:
            raise ShardError(f"{where} could not be read again during the fit: {exc}") from None
        except ShardError as exc:
            raise ShardError(f"{where} changed during the fit and cannot be read: {exc}") from None
        _same_rows(where, n, len(y), digest, got)
        return X, y


def _machine_file(index, path):
    """How a message names machine ``index``'s shard file ``path``."""
    return f"machine {index}: shard file {path!r} (on host {os.uname().nodename})"


def _same_rows(where, n, n_now, digest, digest_now, now="now", again=""):
    """Raise :class:`ShardError` (naming ``where``) when a machine's rows read again, ``n_now`` of digest
    ``digest_now``, are not the ``n`` of digest ``digest`` it fitted; ``now`` and ``again`` say when they were
    read again."""
    if n_now != n:
        raise ShardError(f"{where} held {n} rows when its machine fitted them and {n_now} {now}: it changed during "
                         "the fit.")
    if digest_now != digest:
        raise ShardError(f"{where} holds {n} rows as when its machine fitted them, but other values{again}: it "
                         "changed during the fit.")


def allocate_support(S, sizes):
    """Split S support points over machines proportionally to ``sizes`` (largest remainder).

    Deterministic, sums to ``min(S, sum(sizes))`` and never exceeds a machine's size.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    S = min(int(S), n)
    exact = S * sizes / n
    share = np.floor(exact).astype(np.int64)
    rest = S - int(share.sum())
    if rest > 0:
        # Largest fractional parts first; ties to the lower machine index (stable sort).
        order = np.argsort(-(exact - share), kind="stable")
        share[order[:rest]] += 1
    return np.minimum(share, sizes)


def _fit_and_sample(index, X, y, n_expected, path, n_experts, em_params, seed, S_m, support_seed,
                    read_time, local_experts, names):
    """``names``: (response, features), the columns' names for the outlying rows' description."""
    if len(y) != n_expected:
        raise ShardError(
            f"shard {path!r} held {n_expected} rows when inspected and {len(y)} when read: "
            "was it changed during the fit?"
        )
    rng = np.random.default_rng(support_seed)
    idx = np.sort(rng.choice(len(y), size=S_m, replace=False))
    res = local.fit_local(index, X, y, n_experts, em_params, seed, local_experts)
    outliers = find_outliers(X, y, feature_names=names[1], response_name=names[0])
    return ShardFitResult(index, res, X[idx], y[idx], read_time, rows_digest(X, y), outliers, ColumnScatter.of(X))


def _vanished(index, path, n_expected, d):
    """The failed local fit of a machine whose file disappeared after it was inspected: a lost
    machine, which ``on_error`` handles (raise naming it, or skip it)."""
    why = (f"its shard file {path!r} disappeared after it was inspected (on host {os.uname().nodename})")
    return ShardFitResult(index, local.LocalFitResult(index, n_expected, None, float("nan"), why),
                          np.empty((0, d)), np.empty(0), float("nan"))


def _fit_shard_file(index, path, response, features, n_expected, n_experts, em_params, seed, S_m,
                    support_seed, local_experts):
    """Round 2 on a joblib worker: read the file, fit, draw the support share."""
    t0 = time.perf_counter()
    try:
        X, y, _ = read_shard(path, response, features)
    except ShardError:
        if not os.path.exists(path):
            return _vanished(index, path, n_expected, len(features))
        raise
    return _fit_and_sample(index, X, y, n_expected, path, n_experts, em_params, seed, S_m,
                           support_seed, time.perf_counter() - t0, local_experts, (response, features))


def _load_timed(path, response, features):
    t0 = time.perf_counter()
    X, y, feats = read_shard(path, response, features)
    return X, y, feats, time.perf_counter() - t0


def _loaded_info(index, path, loaded):
    return ShardInfo(index, path, len(loaded[1]), loaded[2])


def _fit_loaded(index, path, loaded, n_expected, n_experts, em_params, seed, S_m, support_seed, local_experts,
                response):
    """Round 2 on a dask worker: the shard was loaded there in round 1."""
    X, y, features, read_time = loaded
    return _fit_and_sample(index, X, y, n_expected, path, n_experts, em_params, seed, S_m,
                           support_seed, read_time, local_experts, (response, features))


def _pinned_loaded(index, path, loaded, n, digest):
    """(X, y) of a shard loaded on a dask worker, checked against the digest of the rows its machine fitted
    ("" for a machine that fitted none); :class:`ShardError` naming the machine when they differ."""
    X, y = loaded[:2]
    if digest:
        _same_rows(_machine_file(index, path), n, len(y), digest, rows_digest(X, y),
                   now="when it was read again (its worker was lost)", again=" (read again after its worker was lost)")
    return X, y


def _check_workers_known(client, workers):
    """Refuse a ``workers`` entry that names no worker of the cluster (an address, a host or a worker's name,
    as dask reads them): its machine's tasks waited forever for it (the audit of 2026-12-06)."""
    info = client.scheduler_info().get("workers", {})
    names = set(info) | {str(w.get("name")) for w in info.values()} | {w.get("host") for w in info.values()}
    unknown = [w for w in workers if str(w) not in names]
    if unknown:
        listed = ", ".join(sorted(info)[:6]) + (" ..." if len(info) > 6 else "")
        raise ValueError(f"workers: {unknown[:3]} name no worker of the dask cluster ({len(unknown)} of the "
                         f"{len(workers)} entries); its workers are {listed or 'none'}. Give each machine's file the "
                         "address, host or name of a worker that holds it.")


def _check_paths(paths, M, workers):
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths must be a list of files, one per machine, not a single path.")
    paths = [os.fspath(p) for p in paths]
    if len(paths) != M:
        raise ValueError(
            f"fit_shards got {len(paths)} file(s) but n_machines={M}: give one file per machine"
            + (f" (or set n_machines={len(paths)})." if paths else ".")
        )
    # One file listed twice under different names (./x.csv, a symlink, a hard link) would be
    # fitted twice: compare the files themselves where this host sees them, else the real paths.
    seen = {}
    for p in paths:
        try:
            st = os.stat(p)
            ident = (st.st_dev, st.st_ino)
        except OSError:
            ident = os.path.realpath(p)
        if ident in seen:
            raise ValueError(f"the same shard file is listed more than once: {seen[ident]!r} and {p!r}.")
        seen[ident] = p
    for p in paths:
        _format(p)
    if workers is not None:
        workers = list(workers)
        if len(workers) != M:
            raise ValueError(f"workers must name one dask worker per file ({M}), got {len(workers)}.")
    return paths, workers


def _check_infos(infos):
    first = infos[0]
    for info in infos[1:]:
        if info.features != first.features:
            raise ShardError(
                f"shard {info.path!r} has feature columns {info.features}, but {first.path!r} has "
                f"{first.features}: every shard must hold the same features."
            )


@dataclass
class ShardJob:
    """What :func:`fit_shards` needs from the estimator; :meth:`DistributedMoE.fit_shards
    <moecore.distributed.DistributedMoE.fit_shards>` builds it from its settings.

    n_experts : int, K
    em_params : dict, the local fits' settings (see :func:`~moecore.local.fit_local`)
    machine_seeds : list (M,) of SeedSequence, machine m's local EM seed (those of the array path)
    support_seeds : list (M,) of SeedSequence, machine m's seed for drawing its support rows
    runner : :class:`~moecore.dispatch.Runner`, where the machines' tasks run
    support_size : callable(n, d) -> int, the size S of the supporting sample for n rows of d
        features; raises ValueError when the estimator's settings do not fit such data
    aggregate : callable(:class:`ShardsFitted`), everything after the local fits (screening,
        reduction, rounds), called while the machines still hold their data
    local_experts : str, "fixed" or "bic" (see :func:`~moecore.local.fit_local`)
    """

    n_experts: int
    em_params: dict
    machine_seeds: list
    support_seeds: list
    runner: Runner
    support_size: Callable[[int, int], int]
    aggregate: Callable[[ShardsFitted], None]
    local_experts: str = "fixed"

    @property
    def n_machines(self):
        return len(self.machine_seeds)


@dataclass
class ShardsFitted:
    """What the machines sent back from their files, handed to :attr:`ShardJob.aggregate`.

    paths : list (M,) of str ; sizes : ndarray (M,) rows n_m of each file ; features : list of str
    shares : ndarray (M,) support rows S_m each machine drew ; results : list (M,) of LocalFitResult
    X_support : (S, d), y_support : (S,) the supporting sample, machine by machine
    support_machine : ndarray (S,) the machine each support row came from
    read_times : ndarray (M,) seconds each machine spent reading its file
    machines : :class:`~moecore.dispatch.MachineData`, the data where they stay, for refits and rounds
    """

    paths: list
    sizes: np.ndarray
    features: list
    shares: np.ndarray
    results: list
    X_support: np.ndarray
    y_support: np.ndarray
    support_machine: np.ndarray
    read_times: np.ndarray
    machines: MachineData


def fit_shards(job, paths, *, response="y", features=None, workers=None, progress=None):
    """Fit the local models of a :class:`ShardJob` from one data file per machine, then hand them
    to ``job.aggregate`` (see :meth:`DistributedMoE.fit_shards
    <moecore.distributed.DistributedMoE.fit_shards>`, which sets what is listed under Returns).

    Parameters
    ----------
    job : ShardJob; its number of machines must equal ``len(paths)``
    paths : list of str, CSV (``.csv``, ``.csv.gz``, ...) or Parquet (``.parquet``, ``.pq``) files,
        one per machine, readable by the worker that fits it (with dask, on the worker's host)
    response : str, the column holding y
    features : list of str or None, the columns forming x (None: every other column)
    workers : list of dask worker addresses or None
        ``backend="dask"`` only: pin machine m's tasks to ``workers[m]``, the host holding its file.
    progress : callable(stage, done, total) or None, as in :meth:`DistributedMoE.fit`

    Returns
    -------
    None.  The estimator, fitted: besides the attributes of :meth:`DistributedMoE.fit`
    (``shards_`` and ``support_indices_`` aside, which index a pooled array that never exists
    here) it sets ``shard_paths_``, ``shard_sizes_`` (n_m), ``feature_names_in_``, ``support_X_`` /
    ``support_y_`` (the supporting sample, machine by machine), ``support_shares_`` (S_m), and
    ``timings_["read"]`` (seconds each machine spent reading its file).  A fit that raises
    leaves the estimator as it was.  A machine lost with its worker is run again; one lost every
    time fails like a local fit, and under ``on_error="skip"`` its share of the supporting sample
    is missing too; so does a machine whose file disappears between inspection and its fit.

    Each file is pinned for the whole fit: the exchanges after the local fits (refits, refinement
    rounds) re-read it (joblib) and check it holds the rows its machine fitted (their number and
    a content digest, :class:`PinnedShards`), or use the copy loaded on the worker (dask).  A file
    changed or gone by then is a :class:`ShardError` naming the machine, whatever ``on_error``:
    a round is an EM step over every machine's rows, which cannot drop some halfway.
    """
    paths, workers = _check_paths(paths, job.n_machines, workers)
    if workers is not None and job.runner.backend != "dask":
        raise ValueError('workers is only meaningful with backend="dask".')
    if not isinstance(response, str):
        raise TypeError(f"response must be a column name (str), got {type(response).__name__}.")
    if job.runner.backend == "dask":
        _fit_shards_dask(job, paths, response, features, workers, progress)
    else:
        _fit_shards_joblib(job, paths, response, features, progress)


def _shard_plan(job, infos):
    """(n_m (M,), S_m (M,)): each machine's rows and its share of the supporting sample, once every
    file is inspected; a shard too small for the model is a ValueError naming it, and shards or a
    support small for the reduction a :class:`~moecore.shard_check.SmallShardWarning`, as in
    :meth:`DistributedMoE.fit <moecore.distributed.DistributedMoE.fit>`."""
    _check_infos(infos)
    sizes = np.array([i.n_samples for i in infos])
    d = len(infos[0].features)
    need = min_samples(job.n_experts, d)
    small = [i for i in infos if i.n_samples < need]
    if small:
        raise ValueError(
            f"shard {small[0].path!r} holds {small[0].n_samples} rows; each shard needs at least "
            f"{min_samples_rule(job.n_experts, d)}."
        )
    S = job.support_size(int(sizes.sum()), d)
    warn_small_shards(int(sizes.sum()), d, job.n_experts, job.n_machines, S, smallest_shard=int(sizes.min()))
    return sizes, allocate_support(S, sizes)


def _lost_shard(infos, sizes):
    """The result to record, ``lost(m, why)``, for a machine whose fit failed every time."""
    def lost(m, why):
        d = len(infos[m].features)
        return ShardFitResult(m, local.LocalFitResult(m, int(sizes[m]), None, float("nan"), why),
                              np.empty((0, d)), np.empty(0), float("nan"))
    return lost


def _aggregate_shards(job, paths, infos, sizes, shares, out, machines):
    """Hand the machines' results ``out`` (M ShardFitResult) to ``job.aggregate``, after saying which
    files hold outlying rows and which inputs are tied on every row of every file (each machine sent
    its inputs' scatter: the rows never meet)."""
    warn_file_outliers([(os.path.basename(paths[o.index]), o.outliers) for o in out
                        if o.outliers is not None and not o.outliers.ok])
    scatters = [o.scatter for o in out if o.scatter is not None]
    if scatters:
        warn_tied(ColumnScatter.pooled(scatters).collinear_columns(), infos[0].features,
                  where=f"The data of the {len(scatters)} files")
    job.aggregate(ShardsFitted(
        paths=paths,
        sizes=sizes,
        features=infos[0].features,
        shares=shares,
        results=[o.result for o in out],
        X_support=np.concatenate([o.X_support for o in out]),
        y_support=np.concatenate([o.y_support for o in out]),
        support_machine=np.repeat(np.arange(job.n_machines), [len(o.y_support) for o in out]),
        read_times=np.array([o.read_time for o in out]),
        machines=machines,
    ))


def _fit_shards_dask(job, paths, response, features, workers, progress):
    """:func:`fit_shards` on dask: each file loaded once on its worker, fitted and kept there for
    the exchanges that follow."""
    M, K, em, runner = job.n_machines, job.n_experts, job.em_params, job.runner
    machine_seeds, support_seeds = job.machine_seeds, job.support_seeds
    with runner.dask_client() as client:
        if workers is not None:
            _check_workers_known(client, workers)
        where = (lambda m: {}) if workers is None else (
            lambda m: {"workers": [workers[m]], "allow_other_workers": False})
        stranded = pinned_worker_gone(client, where, M)
        loaded = [client.submit(_load_timed, p, response, features, pure=False, **where(m))
                  for m, p in enumerate(paths)]
        pinned = []
        try:
            info_f = [client.submit(_loaded_info, m, p, loaded[m], pure=False, **where(m))
                      for m, p in enumerate(paths)]
            infos = gather_dask(info_f, M, None, stranded=stranded)
            sizes, shares = _shard_plan(job, infos)

            def submit_fit(m):
                return client.submit(_fit_loaded, m, paths[m], loaded[m], int(sizes[m]), K, em,
                                     machine_seeds[m], int(shares[m]), support_seeds[m], job.local_experts,
                                     response, pure=False, **where(m))

            # A loaded shard is a task: dask recomputes it if its worker dies, so a lost fit is
            # submitted again; not when pinned to one worker (no other worker has the file).
            resubmit = None if workers is not None else submit_fit
            out = gather_dask([submit_fit(m) for m in range(M)], M, progress, resubmit, _lost_shard(infos, sizes),
                              stranded=stranded)
            # The exchanges that follow use each machine's rows as fitted: dask reloads a shard lost with its
            # worker from its file, which a rewrite mid-fit would have changed without a word (the joblib
            # path's PinnedShards checks the same digest).
            pinned = [client.submit(_pinned_loaded, m, paths[m], loaded[m], int(sizes[m]), out[m].digest, pure=False,
                                    **where(m)) for m in range(M)]
            _aggregate_shards(job, paths, infos, sizes, shares, out, MachineData(runner, "dask", pinned, client, where))
        finally:
            client.cancel(loaded + pinned)


def _fit_shards_joblib(job, paths, response, features, progress):
    """:func:`fit_shards` on joblib: each file read where its task runs, and pinned (re-read and
    checked) for the exchanges that follow."""
    M, K, em, runner = job.n_machines, job.n_experts, job.em_params, job.runner
    machine_seeds, support_seeds = job.machine_seeds, job.support_seeds
    infos = runner.run_joblib(
        (delayed(inspect_shard)(m, p, response, features) for m, p in enumerate(paths)), M, None
    )
    sizes, shares = _shard_plan(job, infos)
    tasks = (
        delayed(_fit_shard_file)(m, paths[m], response, infos[m].features, int(sizes[m]), K, em,
                                 machine_seeds[m], int(shares[m]), support_seeds[m], job.local_experts)
        for m in range(M)
    )
    out = runner.run_joblib(tasks, M, progress, _lost_shard(infos, sizes))
    # Later exchanges re-read the files: each must still hold the rows its machine fitted.
    read = PinnedShards(response, tuple(infos[0].features),
                        {paths[m]: (m, int(sizes[m]), out[m].digest) for m in range(M)})
    _aggregate_shards(job, paths, infos, sizes, shares, out, MachineData(runner, "files", (read, paths)))
