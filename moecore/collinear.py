"""Inputs tied by a linear relation on every row, checked before a fit.

A duplicated column, a column that is a combination of others, a full one-hot coding next to the intercept
(its levels sum to 1): the fits run and predict (their least-squares steps carry a small ridge), but no fit
can tell those coefficients apart, so the ones reported are one choice among many, and every model counts
parameters the data cannot fix (a distributed fit's screening floors, 4 q nats, rise with q: on
separated-2d fitted with K = 3, one fewer than its experts, a duplicated column let through a poor local fit
that the same data without it flagged; with its K = 4 the fits were the same with and without it).
:class:`~moecore.MixtureOfExperts` and :class:`~moecore.DistributedMoE` issue a :class:`CollinearWarning`
naming the columns when ``fit`` starts; the app says it on the pages that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import column_moments
from ._warn import warn

__all__ = ["COLLINEAR_EIGENVALUE", "CollinearWarning", "ColumnScatter", "collinear_columns", "warn_collinear"]


class CollinearWarning(UserWarning):
    """Input columns tied by a linear relation on every row: no fit can tell their coefficients apart."""


# Smallest eigenvalue of the inputs' correlation matrix below which columns are tied: rounding leaves
# about 1e-16 for an exact duplicate and 1e-18 for x * (1 + 1e-9); columns correlated at 0.999999 give 2e-6.
COLLINEAR_EIGENVALUE = 1e-10
_GRAM_ROWS = 65536  # rows per block of the centred Gram matrix: (n, d) standardised at once would copy X


def collinear_columns(X, mean=None, scale=None):
    """Groups of columns of X (n, d) that a linear relation ties on every row: sorted lists of column
    indices, one per set of eigenvectors of the columns' correlation matrix with eigenvalue below
    :data:`COLLINEAR_EIGENVALUE` (groups sharing a column merged); [] when d < 2.  ``mean``, ``scale``
    (d,): the columns' moments when known (the estimators' input checks compute them); constant columns,
    which the estimators refuse, are left out here.

    A full one-hot coding next to the intercept is such a group (its columns sum to 1), as are a
    duplicated column and a column that is a combination of others."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got {X.ndim} dimension(s).")
    if mean is None or scale is None:
        mean, scale, _ = column_moments(X)
    keep = np.flatnonzero(np.isfinite(scale) & (scale > 0))
    if keep.size < X.shape[1]:
        return [sorted(int(keep[j]) for j in g) for g in collinear_columns(X[:, keep], mean[keep], scale[keep])]
    n, d = X.shape
    if d < 2:
        return []
    return _tied_groups(_centred_gram(X, mean, scale) / n)


def _centred_gram(X, mean, scale=None):
    """sum_i z_i z_i^T (d, d) of the rows z = (x - mean) / scale of X (n, d) (scale None: 1), centred in
    blocks of rows so that no (n, d) copy is made and an offset cannot cancel."""
    d = X.shape[1]
    G = np.zeros((d, d))
    for start in range(0, X.shape[0], _GRAM_ROWS):
        Z = X[start:start + _GRAM_ROWS] - mean
        if scale is not None:
            Z = Z / scale
        G += Z.T @ Z
    return G


def _tied_groups(R):
    """The groups of :func:`collinear_columns` from the correlation matrix R (d, d) of columns none of
    which is constant."""
    w, V = np.linalg.eigh(R)
    groups = []
    for k in np.flatnonzero(w < COLLINEAR_EIGENVALUE):
        v = np.abs(V[:, k])
        group = set(np.flatnonzero(v > 0.05 * v.max()).tolist())
        for other in [g for g in groups if g & group]:
            groups.remove(other)
            group |= other
        groups.append(group)
    return [sorted(g) for g in groups]


@dataclass(frozen=True)
class ColumnScatter:
    """What a machine sends for the check on inputs it alone holds (:meth:`DistributedMoE.fit_shards`):
    its row count ``n``, the columns' mean (d,) and their centred scatter (d, d), d^2 + d + 1 numbers.
    Centred on the machine's own mean, so a column offset by 1e9 loses nothing to cancellation."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, X):
        """The summary of X (n, d), centred in blocks of rows (no (n, d) copy)."""
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        # An input of 1e308 (warned as an outlying row) overflows its column's square: that column is then
        # left out of the check (collinear_columns), without NumPy's warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            mean = X.mean(axis=0) if n else np.zeros(d)
            return cls(n, mean, _centred_gram(X, mean))

    @classmethod
    def pooled(cls, parts):
        """The summary of the rows of every part together: the parts' scatters plus that of their means
        about the pooled mean (the parallel form of Chan, Golub & LeVeque)."""
        parts = [p for p in parts if p.n > 0]
        n = sum(p.n for p in parts)
        with np.errstate(over="ignore", invalid="ignore"):  # as in :meth:`of`
            mean = sum(p.n * p.mean for p in parts) / n
            C = sum(p.scatter + p.n * np.outer(p.mean - mean, p.mean - mean) for p in parts)
        return cls(n, mean, C)

    def collinear_columns(self):
        """:func:`collinear_columns` of the rows summarised (constant columns left out)."""
        with np.errstate(invalid="ignore"):
            sd = np.sqrt(np.maximum(np.diag(self.scatter), 0.0) / max(self.n, 1))
        keep = np.flatnonzero(np.isfinite(sd) & (sd > 0))
        if keep.size < 2:
            return []
        R = self.scatter[np.ix_(keep, keep)] / self.n / np.outer(sd[keep], sd[keep])
        return [sorted(int(keep[j]) for j in g) for g in _tied_groups(R)]


def warn_collinear(X, mean, scale, *, X_in=None):
    """:func:`collinear_columns` as a :class:`CollinearWarning` naming the columns (a DataFrame's names)."""
    columns = getattr(X_in, "columns", None)
    warn_tied(collinear_columns(X, mean, scale), None if columns is None else list(columns))


def warn_tied(groups, names=None, *, where="X"):
    """The :class:`CollinearWarning` for ``groups`` (lists of column indices); ``names``: the columns'
    names (None: "column j"); ``where``: what holds the inputs."""
    if not groups:
        return
    d = 1 + max(j for g in groups for j in g)
    names = [f"column {j}" for j in range(d)] if names is None else [repr(c) for c in names]
    tied = "; ".join(", ".join(names[j] for j in g) for g in groups)
    drop = sum(len(g) - 1 for g in groups)
    warn(
        f"{where} has inputs tied by a linear relation on every row ({tied}): no fit can tell their coefficients "
        "apart, so the fit runs and predicts, but its coefficients for them are one choice among many and each "
        f"model counts parameters the data cannot fix. Drop {drop} of them (a full one-hot coding next to the "
        "intercept is such a group: drop one level).",
        CollinearWarning,
    )
