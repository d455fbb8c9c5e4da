"""EM for the softmax-gated mixture of Gaussian linear experts (the local and the global fit).

Each iteration: an E-step in the log domain, the experts' exact M-step (weighted least squares
and weighted residual variance), and one Newton step with step halving for the gates (a
generalised EM step).  The log-likelihood therefore never decreases; ``loglik_history_`` lets
a user (and the tests) check it.  Work happens on standardised x and y; the parameters are
mapped back to the original units exactly (:class:`moecore.model.Standardizer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from . import _em_kernels as _kern
from . import model as _m
from ._kmeans import assign_labels, kmeans
from ._threads import one_blas_thread
from ._validation import (
    check_2d,
    check_column_names,
    check_feature_names,
    check_nonconstant_columns,
    check_random_state_seed,
    check_width,
    check_Xy,
    robust_std,
)
from ._warn import warn
from .collinear import warn_collinear
from .gating import (
    em_newton_step,
    fit_softmax_gate,
    gate_state,
    gram_chunk,
    hessian_pairs,
    pair_products,
    sym_from_pairs,
    use_pair_products,
    weighted_gram,
)
from .outliers import warn_outliers
from .params import EM_PARAMETERS, check_parameters, min_samples, min_samples_rule, n_free_parameters

__all__ = [
    "SMALL_DATA_ROWS",
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "ExpertStats",
    "MixtureOfExperts",
    "MoEPredictorMixin",
    "NotFittedError",
    "VarianceFloorWarning",
    "degenerate_message",
    "expert_statistics",
    "experts_from_statistics",
    "min_samples",
    "portfolio_repeats",
    "uses_portfolio",
    "warn_degenerate",
]

# Relative ridge on the weighted least-squares normal equations: far below the 1e-9 relative
# tolerance of the monotonicity checks, large enough to keep a near-singular system solvable.
_WLS_RIDGE = 1e-12
# Data that cannot support K experts (a machine holding one region of x, where one or two experts
# live) starves an expert at every iteration. It is re-seeded once; if it starves again it is
# retired: its gate logit drops by _RETIRE_LOGIT (mass e^-50 relative, nothing for the reduction
# to transport) and EM goes on with the others. Three re-seeds, each a restart, cost up to three
# fits and ended with the starving expert collapsed to the variance floor anyway.
_MAX_RESEEDS = 1
_RETIRE_LOGIT = 50.0
# k-means seeds EM from a subsample of max(_KMEANS_MIN_SAMPLES, _KMEANS_PER_PARAM K (d+1))
# points (every point is then labelled by its nearest centre), best of _KMEANS_RESTARTS
# k-means++ restarts. One k-means run sometimes merges two experts' clusters and EM then crawls
# for 40-105 iterations before it separates them; with data over many machines the slowest local
# fit sets the learning time. benchmarks/bench_init.py, against one run on up to 20 000 points:
# slowest of 128 shards of separated-2d 13-17 ms instead of 19-40 ms with the same median fit
# (the small subsample pays for the restarts); poor optima of global fits on separated-10d 0/32
# instead of 2/32.
_KMEANS_MIN_SAMPLES = 2000
_KMEANS_PER_PARAM = 100
_KMEANS_RESTARTS = 3
_INIT_GATE_STEPS = 5  # Newton steps fitting the starting gates to the k-means partition
# init="portfolio" ("small EM", Biernacki, Celeux & Govaert 2003): short EM runs from diverse
# starts, on a subsample of _kmeans_sample_size points, and the best non-degenerate one continued
# on all the data. k-means on (x, y) sees clusters of points, not lines: on mcycle (K = 2) every
# k-means start lands in one basin 29 nats below the maximum, and on d = 20 shards a quarter of
# them merge two experts. Starts that respect the regression structure ("lines": K lines through
# random small subsets, then k-planes) and random partitions reach the other basins
# (benchmarks/bench_portfolio.py measures each kind on the real data sets and the high-d designs).
# Kinds and how many of each, in the order they run, in two waves. On data of more than 1 000
# rows the second wave draws only the exploring kinds (lines, random) whose first-wave run did not
# reach the best basin found (_settled_kinds), and none when both did: on the high-d designs
# nearly every start reached one basin, and the short runs took 80 % of a d = 30 local fit. On
# small data the portfolio is whole: 13 starts. What lost a basin (benchmarks/bench_portfolio.py
# waves, benchmarks/README.md section 18): k-means and lines agreeing (mcycle, K = 2: 29 nats below
# the maximum that random starts reach); skipping on small data (faithful, K = 3: 2.2 nats).
_PORTFOLIO_WAVES = ((("kmeans", 1), ("lines", 4), ("random", 2)), (("lines", 4), ("random", 2)))
_SHORT_ITER = 10  # EM iterations of each short run
_SHORT_MIN_SAMPLES = 500
# Twenty-five points per expert coefficient. Ten halved a d = 20 local fit's time on 7 800-row shards
# (every high-d shard still in the right basin), but on separated-10d's 1 562-row shards (M = 64)
# short runs on 550 points led several local fits into a collapsed variance and the reduction's
# variance MSE to 5 600x the global EM's (benchmarks/bench_blocks_default.py); 25 keeps it at 3.7x.
_SHORT_PER_PARAM = 25
_MID_ITER = 50  # further EM iterations of the best short run of each kind
# Short runs whose log-likelihoods differ by less than this, in nats per point of the subsample,
# sit in one basin (0.5 nats on 500 points), and only the better goes on.
_SAME_BASIN = 1e-3
_RUNOFF = 10  # the runoff between basins sees this many times the short runs' points,
_RUNOFF_ITER = 50  # for at most this many EM iterations,
_RUNOFF_MIN_FACTOR = 100  # on data of at least this many times the short runs' points
# On such large data a few hundred points can also hold a basin the data do not: on diamonds (53 940
# rows, log price ~ log carat, K = 2) every start on one 500-point subsample reached a basin 934 nats
# below the maximum, and basins 0.0017 nats per row apart (93 nats) swap places on one 5 000-point
# runoff sample while still climbing after its 50 iterations. So the short runs use _LARGE_SUBSAMPLES
# independent subsamples, and the runoff runs that a paired test on the runoff's points cannot tell
# from its best (a lead under _UNDECIDED_Z standard errors of the per-point differences), up to
# _FINALISTS, converge on _RUNOFF times the runoff's points, which decide (benchmarks/README.md
# section 33: diamonds 15 of 30 default fits at the maximum before, 22 now; a third subsample, 27,
# cost up to 2x on separated-10d's global fit at n = 2·10^5; continuing the finalists on all the data
# doubled the flights' global fit for 4-10 nats of 262 000 rows).
_LARGE_SUBSAMPLES = 2
_UNDECIDED_Z = 2.0
_FINALISTS = 2
# On small data a whole portfolio is cheap and basins are many and shallow: on faithful (272 rows,
# K = 3) one portfolio reached the maximum for 1 seed of 5, four for 4 of 5; on Boston (506 rows,
# K = 4) one portfolio for 2 seeds of 5, three for 4. So the portfolio repeats, from independent
# seeds, up to _SMALL_PORTFOLIOS times while the repeats see at most _SMALL_DATA_BUDGET rows in all:
# a default fit on n <= 2000 rows then costs about what one on 2000 rows does. Not a machine's
# local fit in a distributed fit: the reduction pools many of them, the screening refits a poor
# one, and the slowest machine sets the learning time (the Learn page's example, 500-row shards,
# took 1.09 s instead of 0.36 s to compute with the repeats).
_SPLIT_ROUNDS = 3  # rounds of split-and-merge moves (split_moves=True, _split_moves)
_SPLIT_MIN_VAR = 1e-3  # a new line's starting variance at least this (standardised y): EM moves it
_SMALL_DATA_BUDGET = 2000
_SMALL_PORTFOLIOS = 4
SMALL_DATA_ROWS = _SMALL_DATA_BUDGET // 2  # the largest n on which every basin goes on (_small_em's every_run)
# Past small data, a fit of all the rows still repeats the portfolio, each its best continued, while the
# repeats see at most _MID_DATA_BUDGET rows in all, and stops once a repeat ends at the best maximum found
# (within _CONFIRMED nats, or _CONFIRMED_PER_ROW nats per row: the relative tol stops runs of one basin
# that far apart on tens of thousands of rows). Real data of thousands to tens of thousands of rows have
# many maxima that one portfolio's subsample of 500 points cannot tell apart: on seven R data sets of 2 287
# to 30 351 rows (K = 2-4, 10 seeds) one portfolio came within 1 nat of the best-known maximum in 101 of
# 210 fits and more than 50 nats below it in 23 (up to 564); these repeats 135 and 10, at 2.9x the time
# (median; docs/method.md section 8, item 11). The synthetic designs gain nothing (one portfolio already
# finds their maximum): there the second repeat confirms it and the fit stops, at twice the cost. Shards
# of a distributed fit never repeat (see above), so no learning time changes.
_MID_DATA_BUDGET = 200_000
MID_DATA_ROWS = _MID_DATA_BUDGET // 2  # the largest n on which portfolio_repeats(n) > 1
_CONFIRMED = 1.0
_CONFIRMED_PER_ROW = 1e-4
_KPLANES_ITER = 3  # k-planes (assign to the nearest line, refit) iterations of a "lines" start
_KPLANES_RIDGE = 1e-10  # relative ridge of its lines' normal equations (a subset can be singular)
# The likelihood is unbounded as an expert's variance goes to 0 (an expert on p points, or on
# tied responses such as a censored y). A fit with a variance below this, relative to var(y), on
# such rows is degenerate (a spike, spike_experts): the portfolio continues a non-degenerate short
# run whenever one exists, and the benchmarks compare maxima above this floor only.
DEGENERATE_VAR = 1e-4
# Below that floor an expert is a spike, not a sharp expert, unless the rows its line passes within 3 of its
# sd hold at least this many distinct responses per parameter and lie this many times denser than the rows
# 3 to 10 sd from it. A line through p points holds p distinct ones, one along a tied response one; 10 per
# parameter ranked a sharp expert of 4.6 % of the rows a spike on the 500 points of the short runs (7 of 20
# default fits 1.8 nats per row short, the audit's second round);
# a line through the cloud that EM narrowed onto the rows it happens to cross holds many, no denser than
# their neighbours (a correlated design, 20 000 rows: 159 within 3 sd, 326 within 3-10 sd, a density
# ratio of 1.1); a sharp expert of the data holds its rows 100-1000 times denser than beside it. By the
# floor alone, the fit of two lines with noise sd 0.02 (y's sd 1.7) ranked below a basin of variances 0.8
# and ended 4 nats per row short of the maximum (the audit of 2026-12-06).
_SPIKE_DISTINCT_PER_PARAM = 2
# ... and at least this many whatever p: an expert of 5 rows of 88 at variance 2e-5 var(y) (nodata, K = 4)
# is a spike by the benchmarks' floor and flexmix's, 2.3 nats "above" the maximum they compare.
_SPIKE_MIN_DISTINCT = 10
_SHARP_DENSITY_RATIO = 4.0
# SQUAREM (Varadhan & Roland 2008, with the R package's adaptive bound): the step length's upper
# bound starts at 1 (plain EM), is multiplied by this factor whenever a step reaches it, divided by
# it whenever an extrapolated point loses likelihood. The R package's factor 4 overshot on
# separated-2d (the first extrapolations rejected, no iteration saved, 4 % slower than plain EM);
# with 2, over the five designs at n = 7812 and 5e4 (4 seeds), 576 E-steps against 608 with 4 and
# 715 for plain EM, and separated-2d too needs fewer (17.3 against 19.3 iterations).
_SQUAREM_STEP_FACTOR = 2.0
_SQUAREM_STEP_MAX0 = 1.0


def uses_portfolio(init):
    """Whether ``init`` (a MixtureOfExperts ``init``: a name or a MoEParams warm start) is the portfolio."""
    return isinstance(init, str) and init == "portfolio"


def _kmeans_sample_size(K, p):
    """Points k-means (and the starting gates) see: max(2000, 100 K (d+1))."""
    return max(_KMEANS_MIN_SAMPLES, _KMEANS_PER_PARAM * K * p)


def portfolio_repeats(n):
    """Whole portfolios a default fit of all ``n`` rows runs at most: min(4, 2000 // n) on small data
    (n <= SMALL_DATA_ROWS, all of them), else min(4, 200 000 // n) (fewer once one confirms the best,
    :meth:`MixtureOfExperts._best_run`); at least 1."""
    budget = _SMALL_DATA_BUDGET if n <= SMALL_DATA_ROWS else _MID_DATA_BUDGET
    return max(1, min(_SMALL_PORTFOLIOS, budget // n))


def _short_sample_size(K, p):
    """Points the portfolio's short runs see: max(500, 25 K (d+1)), enough to tell basins apart."""
    return max(_SHORT_MIN_SAMPLES, _SHORT_PER_PARAM * K * p)


def _timed_data_checks(X, y, X_in, y_in, x_moments):
    """Warn of outlying rows (moecore.outliers) and tied inputs (``warn_collinear``) for the caller of
    ``fit``; returns the seconds it took.  ``x_moments``: the columns' (mean, scale).

    A check of the data, not EM's work: fit_time_ leaves it out, as a distributed fit's learning time
    leaves out the server's (speed-ups divide the one by the other).
    """
    t = time.perf_counter()
    warn_outliers(X, y, X_in=X_in, y_in=y_in)
    warn_collinear(X, *x_moments, X_in=X_in)
    return time.perf_counter() - t


def spike_experts(XtT, y, experts, variances, var_y=1.0, mass=None):
    """The experts that are spikes: a variance below DEGENERATE_VAR ``var_y``, and within 3 sd of
    their line fewer than max(_SPIKE_DISTINCT_PER_PARAM p, _SPIKE_MIN_DISTINCT) distinct responses, or
    rows less than _SHARP_DENSITY_RATIO times as dense as those 3 to 10 sd from it.

    XtT (p, n) the design's columns with the intercept first, y (n,); experts (p, K), variances (K,).
    ``mass`` (K,): each expert's gate mass on these rows, when they are a sample of the rows fitted (a
    distributed fit's support): an expert expected on fewer than twice that many of them is
    not judged by its distinct responses, which a sharp expert of 4.6 % of the rows has too few of among
    150 support points (35 false alarms in 36 fits, the audit of 2026-12-06).
    Or a variance below the rounding's, unit^2 / 12, where y is recorded in steps of ``unit``
    (:func:`recording_unit`): its rows lie on its line more exactly than y's recording allows noise to, a
    line through points of the grid (nlschools, lang ~ IQ, K = 4: 147 of 2 287 rows on lang = 4 IQ - 8,
    18 distinct responses 100 times denser than beside the line, at var_floor).
    Returns their indices (m,), lowest variance first.
    """
    out = []
    few = max(_SPIKE_DISTINCT_PER_PARAM * XtT.shape[0], _SPIKE_MIN_DISTINCT)
    unit = None
    for k in np.argsort(variances):
        if not variances[k] < DEGENERATE_VAR * var_y:
            break
        dist = np.abs(y - experts[:, k] @ XtT) / np.sqrt(variances[k])
        close = dist <= 3.0
        beside = np.count_nonzero((dist > 3.0) & (dist <= 10.0))
        judged = mass is None or mass[k] >= 2 * few
        if ((judged and np.unique(y[close]).size < few)
                or np.count_nonzero(close) / 3.0 < _SHARP_DENSITY_RATIO * beside / 7.0):
            out.append(int(k))
            continue
        # Only here, and once: sorting y costs more than the rest on a million rows.
        unit = recording_unit(y) if unit is None else unit
        if variances[k] < unit ** 2 / 12.0:
            out.append(int(k))
    return np.array(out, dtype=int)


def recording_unit(y):
    """The step in which y is recorded: the smallest gap between its distinct values (0 when it has
    fewer than two). 1 for counts and integer scores, 0.1 for one decimal; for a continuous y a gap
    far below any variance EM keeps."""
    values = np.unique(y)
    return float(np.diff(values).min()) if values.size > 1 else 0.0


def degenerate_message(params, X, y, *, rows_name="rows"):
    """What is wrong when an expert of the fitted ``params`` is a spike (:func:`spike_experts`, against
    var(y)), naming the rows it sits on; when none is, what is wrong with a y of two values; else "".
    X (n, d), y (n,): the rows it was fitted on, or a sample of them (``rows_name`` says which: a distributed
    fit's server knows its support points).

    The portfolio continues a non-degenerate run whenever one exists; on a response with tied values
    (a binary or count y, a mass of zeros) every run may be degenerate, and the fit said nothing of
    it: a binary y gave two experts of variance 1e-6 var(y) and a log-likelihood of +6.2 nats per row.
    """
    var_y = robust_std(y) ** 2
    low = np.flatnonzero(params.variances < DEGENERATE_VAR * var_y)
    if not low.size:
        return _binary_message(y, rows_name)
    # Against the bulk's spread too: one row of 1e5 among y ~ N(0, 1) makes var(y) 2e7, and the expert
    # holding the other 499 rows read as "degenerate" (the outlier is moecore.outliers' to name).
    q1, q3 = np.percentile(y, [25, 75])
    bulk = ((q3 - q1) / 1.349) ** 2
    if bulk > 0:
        low = low[params.variances[low] < DEGENERATE_VAR * bulk]
    # A sharp expert on rows of distinct responses is the data's, not a spike.
    sample = None if rows_name == "rows" else _m.gate_proba(X, params).sum(axis=0)  # a sample of the rows fitted
    low = np.intersect1d(low, spike_experts(_m.add_intercept(X).T, y, params.experts, params.variances, var_y,
                                            mass=sample))
    if not low.size:
        return _binary_message(y, rows_name)
    k = int(low[np.argmin(params.variances[low])])
    rows = np.flatnonzero(_m.posterior_proba(X, y, params).argmax(axis=1) == k)
    values, counts = np.unique(y[rows], return_counts=True)
    tied = counts.size and counts.max() > 1 and counts.max() >= 0.5 * rows.size
    unit = recording_unit(y)
    on = (f"{counts.max():,} of its {rows.size:,} {rows_name} share y = {values[np.argmax(counts)]:.6g}" if tied
          else f"it holds {rows.size} of the {rows_name}, which lie on its line closer than y's recording step "
               f"({unit:g}) allows (a line through points of a rounded grid)" if params.variances[k] < unit ** 2 / 12
          else f"it holds {rows.size} of the {rows_name}")
    return (f"Expert {k} (numbered from 0) has a variance of {params.variances[k] / var_y:.1e} var(y)"
            f"{f' ({low.size - 1} more below {DEGENERATE_VAR:g})' if low.size > 1 else ''}: {on}, a spike the "
            "likelihood rewards without bound, so that expert and the log-likelihood describe those rows only. "
            "To fix: fewer experts, or the repeated responses (a binary, count or censored y) left out or "
            "modelled apart.")


def _binary_message(y, rows_name):
    """What a fit of a y of two values must say when no expert is a spike ("" otherwise).

    Where every run is degenerate the spike message names the tied values; but on large data the portfolio
    can also end at a non-degenerate run, near copies of one line through both levels (60 000 rows, K = 2:
    variances 0.17), which said nothing. A distributed fit's server sees its support points only, and says
    so: its sample can miss a rare third value."""
    lo, hi = np.min(y), np.max(y)
    if not np.all((y == lo) | (y == hi)):
        return ""
    where = "" if rows_name == "rows" else f" on the {rows_name}"
    return (f"y takes only two values{where} ({lo:g} and {hi:g}): the experts are Gaussian lines through a binary "
            "response, so their variances and the log-likelihood describe no such data. To fix: model a binary y "
            "with a classifier (e.g. logistic regression), or give a continuous response.")


def warn_degenerate(params, X, y, *, rows_name="rows"):
    """:func:`degenerate_message` as a :class:`DegenerateFitWarning`, when there is one; returns it ("" when none)."""
    message = degenerate_message(params, X, y, rows_name=rows_name)
    if message:
        warn(message, DegenerateFitWarning)
    return message


class DegenerateFitWarning(UserWarning):
    """EM had to repair a degenerate state (an expert that lost its points was re-seeded)."""


class VarianceFloorWarning(UserWarning):
    """An expert's rows lie closer to its line than ``var_floor`` lets its variance go: the variance
    (and the log-likelihood) are those of the floor, not of the data (a near-noiseless response)."""


# A variance at most this factor above var_floor is the floor's: EM's update and SQUAREM's step set it exactly.
_AT_FLOOR = 1 + 1e-9


def floor_message(subject, var_floor):
    """The warning for experts whose variances sit at ``var_floor``; ``subject`` names them ("expert(s) [0] of
    the fit")."""
    return (f"{subject} sit at the variance floor (var_floor={var_floor:g} of var(y)): their rows lie closer to "
            "their lines than the floor allows, so those variances are overestimated and the log-likelihood "
            "understated (the lines themselves are fitted). For a near-noiseless response, lower var_floor (e.g. "
            "1e-12); if the rows are few or tied, fewer experts.")


@dataclass(eq=False)
class ExpertStats:
    """The experts' sufficient statistics: tau-weighted sums over samples.

    In the units of the design and response they were summed over (EM's are standardised: every
    machine of a distributed round must use the same standardisation for the sums to add).

    Attributes
    ----------
    Nk : ndarray (K,)       sum_i tau_ik
    G : ndarray (K, p, p)   sum_i tau_ik x~_i x~_i^T
    h : ndarray (K, p)      sum_i tau_ik x~_i y_i
    yy : ndarray (K,)       sum_i tau_ik y_i^2

    Sums over disjoint sets of samples add: ``a + b`` is the statistics of the union (what
    machines send a server in a distributed EM round).
    """

    Nk: np.ndarray
    G: np.ndarray
    h: np.ndarray
    yy: np.ndarray

    def __add__(self, other):
        if not isinstance(other, ExpertStats):
            return NotImplemented
        return ExpertStats(self.Nk + other.Nk, self.G + other.G, self.h + other.h, self.yy + other.yy)

    def __radd__(self, other):
        # sum(list_of_stats) starts from 0.
        return self if isinstance(other, int) and other == 0 else self.__add__(other)

    def __repr__(self):
        K, p = self.h.shape
        return f"ExpertStats(K={K}, p={p}, Nk={np.array2string(self.Nk, precision=4)})"


def _wls_design(XtT, y):
    """Per-sample statistics whose tau-weighted sums give the experts' normal equations, or None.

    Rows: the pair products x_a x_b (a <= b), then x_a y, then y^2; shape (p(p+1)/2 + p + 1, n).
    They are fixed for the whole fit, so each M-step is a single (K, n) x (n, q) product. Row 0,
    x_0 x_0, is all ones (x_0 is the intercept), so that product also yields the weights N_k.
    They cost p(p+1)/2 + p + 1 numbers per sample: where :func:`moecore.gating.use_pair_products`
    says the BLAS path is faster or their memory too large, None (the statistics then come from
    :func:`expert_statistics`'s BLAS products, O(n p) memory).
    """
    p, n = XtT.shape
    if not use_pair_products(p, n):
        return None
    npp = p * (p + 1) // 2
    F = np.empty((npp + p + 1, n))
    F[:npp] = pair_products(XtT)
    np.multiply(XtT, y, out=F[npp:npp + p])
    np.multiply(y, y, out=F[-1])
    return F


def _stats_from_design(F, tauT, p):
    """:class:`ExpertStats` from the pair-product rows F of :func:`_wls_design`: one product."""
    npp = p * (p + 1) // 2
    stats = tauT @ F.T  # (K, q)
    return ExpertStats(stats[:, 0], sym_from_pairs(stats[:, :npp], p), stats[:, npp:npp + p], stats[:, -1])


def expert_statistics(XtT, y, tauT, *, design=None):
    """The experts' sufficient statistics of the samples in ``XtT`` for responsibilities ``tauT``.

    Parameters
    ----------
    XtT : ndarray (p, n)
        Transposed design, row 0 all ones (the intercept).
    y : ndarray (n,)
    tauT : ndarray (K, n)
        Non-negative weights (EM responsibilities).
    design : ndarray or None
        :func:`_wls_design` of (XtT, y) when the caller keeps it across calls (EM does); None
        computes the Gram matrices by BLAS: per block of columns and expert, ``Z Z^T`` with
        ``Z = X sqrt(tau_k)`` (a symmetric rank-k update), O(n p) memory at any p.

    Returns
    -------
    ExpertStats
    """
    p = XtT.shape[0]
    if design is not None:
        return _stats_from_design(design, tauT, p)
    G = weighted_gram(XtT, np.sqrt(tauT), sqrt_weights=True)
    h = (tauT * y) @ XtT.T
    return ExpertStats(tauT.sum(axis=1), G, h, tauT @ (y * y))


def experts_from_statistics(stats, var_floor):
    """Exact expert M-step from sufficient statistics (weighted least squares and variance).

    Parameters
    ----------
    stats : ExpertStats
    var_floor : float
        Lower bound on the variances (in the units of y the statistics were summed in).

    Returns
    -------
    experts : ndarray (p, K) ; variances : ndarray (K,)
    """
    G, h, yy, Nk = stats.G, stats.h, stats.yy, stats.Nk
    K, p = h.shape
    # Small (K, p, p) algebra: plain products, since einsum's call overhead outweighs it here.
    diag = np.arange(p)
    ridge = _WLS_RIDGE * np.maximum(G[:, diag, diag].sum(axis=1) / p, 1e-300)
    G_r = G.copy()
    G_r[:, diag, diag] += ridge[:, None]
    try:
        B = np.linalg.solve(G_r, h[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        B = np.stack([np.linalg.lstsq(G_r[k], h[k], rcond=None)[0] for k in range(K)])
    # sum_i tau_ik (y_i - b x_i)^2 from the sufficient statistics: no second pass over the data.
    rss = yy - 2.0 * (B * h).sum(axis=1) + ((G @ B[:, :, None])[:, :, 0] * B).sum(axis=1)
    variances = np.maximum(rss / np.maximum(Nk, 1e-300), var_floor)
    return B.T.copy(), variances


def _wls_experts(XtT, y, tauT, var_floor, design=None):
    """Exact expert M-step: :func:`experts_from_statistics` of :func:`expert_statistics`.

    Returns
    -------
    experts : ndarray (p, K) ; variances : ndarray (K,) ; Nk : ndarray (K,) the weights sum_i tau_ik
    """
    if design is not None:
        # The hot path of EM: one product for the statistics, the K small solves compiled.
        p = XtT.shape[0]
        sums = tauT @ design.T  # (K, q)
        experts = np.empty((p, tauT.shape[0]))
        variances = np.empty(tauT.shape[0])
        if _kern.experts_solve(sums, p, _WLS_RIDGE, var_floor, experts, variances):
            return experts, variances, sums[:, 0].copy()
    stats = expert_statistics(XtT, y, tauT, design=design)
    experts, variances = experts_from_statistics(stats, var_floor)
    return experts, variances, stats.Nk


def _estep(XtT, y, logpT, experts, variances, lognorm=0.0):
    """E-step in the log domain.

    ``logpT`` (K, n): the gates' log-probabilities, or a :func:`~moecore.gating.gate_state`'s
    etaT with its ``lognorm``.

    Returns
    -------
    ll : float, total log-likelihood
    tauT : ndarray (K, n), responsibilities
    """
    # The hottest loop of the package: the means by BLAS, the rest in one compiled pass over
    # that (K, n) buffer.
    a = experts.T @ XtT
    ll = _kern.estep_inplace(a, y, logpT, np.asarray(variances, dtype=np.float64))
    return float(ll - lognorm), a


def _point_loglik(XtT, y, gates, experts, variances):
    """Each point's log-likelihood (n,) (the E-step sums them without forming it)."""
    return _m._logsumexp_T(_m._log_gate_T(XtT, gates) + _m._log_expert_T(XtT, y, experts, variances))


def _squarem_point(points, history, step_max, var_floor):
    """One SQUAREM extrapolation (Varadhan & Roland's SqS3) from a cycle's ``points`` theta0,
    theta1 = EM(theta0), theta2 = EM(theta1), each (gates, experts, variances).

    Returns (gates, experts, variances) or None when plain EM's theta2 is kept, and the largest
    step length allowed from now on.
    """
    if len(history) < 3 or history[-1] - history[-2] >= history[-2] - history[-3]:
        # EM is still speeding up (early iterations, experts changing partners): its path
        # is not the straight line SQUAREM extrapolates along, and on separated-2d every
        # such extrapolation was rejected, each a wasted E-step.
        return None, step_max
    # Step length |r| / |v| (Varadhan & Roland's SqS3), within [1, step_max]: 1 is the
    # plain EM point theta2; a step that reaches step_max lets the next one grow. Compiled: packing
    # the three points into vectors cost more than an E-step on a short run's 500 points.
    (g0, e0, v0), (g1, e1, v1), (g2, e2, v2) = points
    alpha, gates, experts, variances = _kern.squarem_step(g0, e0, v0, g1, e1, v1, g2, e2, v2, step_max, var_floor)
    if alpha == step_max:
        step_max *= _SQUAREM_STEP_FACTOR
    if not alpha > 1.0:
        return None, step_max
    return (gates, experts, variances), step_max


def _params(run):
    """(gates, experts, variances) of an EM run, to start another run from."""
    return run["gates"], run["experts"], run["variances"]


def _rank(run):
    """Order of EM runs: non-degenerate (no spike, :func:`spike_experts`; runs work on standardised y)
    before degenerate, then by log-likelihood."""
    return (not run["spike"], run["ll"])


def _subsample(XtT, y, F, size, rng):
    """(XtT, y, F) on ``size`` points drawn without replacement, in their order (all of them when
    there are no more): contiguous copies, since every EM iteration reads them again."""
    n = y.shape[0]
    if n <= size:
        return XtT, y, F
    idx = np.sort(rng.choice(n, size, replace=False))
    return (np.ascontiguousarray(XtT[:, idx]), y[idx], None if F is None else np.ascontiguousarray(F[:, idx]))


def _split_starts(XtT, y, run, rng, min_var):
    """The starts of :meth:`MixtureOfExperts._split_moves` from the fitted ``run`` (standardised data: XtT
    (p, n) with the intercept first, y (n,)): for every expert k, freed, (a) a line through the
    max(3 p, n / 10) rows of lowest log-likelihood, gated as the expert that holds most of them, and (b)
    for every other expert j, j's rows (by posterior) split into two lines by clusterwise regression, one
    for j and one for k. A new expert shares its gate with the expert it came from, half each, and starts
    with a variance of at least ``min_var``. Yields (gates, experts, variances), gates referenced to the
    last expert's."""
    gates, experts, variances = _params(run)
    p, n = XtT.shape
    K = variances.size
    joint = _m._log_gate_T(XtT, gates) + _m._log_expert_T(XtT, y, experts, variances)
    labels = joint.argmax(axis=0)
    worst = np.argsort(_m._logsumexp_T(joint))[:max(3 * p, n // 10)]
    owner = int(np.bincount(labels[worst], minlength=K).argmax())

    def start(k, groups, src):
        # Each new line is the expert M-step on its rows alone (a 0/1 partition), its variance floored at min_var.
        tauT = np.zeros((len(groups), n))
        for i, rows in enumerate(groups.values()):
            tauT[i, rows] = 1.0
        lines, line_vars, _ = _wls_experts(XtT, y, tauT, min_var)
        G, E, V = gates.copy(), experts.copy(), variances.copy()
        slots = list(groups)
        E[:, slots], V[slots] = lines, line_vars
        G[:, k] = G[:, src]
        G[0, [k, src]] -= np.log(2.0)
        return G - G[:, -1:], E, V

    for k in range(K):
        yield start(k, {k: worst}, owner if owner != k else (k + 1) % K)
        for j in range(K):
            rows = np.flatnonzero(labels == j)
            if j == k or rows.size < 2 * (p + 1):
                continue
            seeds = np.stack([rng.choice(rows.size, p + 1, replace=False) for _ in range(2)])
            halves = _kern.kplanes(XtT[:, rows], y[rows], seeds, _KPLANES_ITER, _KPLANES_RIDGE)
            if min(np.bincount(halves, minlength=2)) <= p:
                continue
            yield start(k, {j: rows[halves == 0], k: rows[halves == 1]}, j)


def _distinct_basins(runs, n_points):
    """``runs`` less those within _SAME_BASIN nats per point (of the ``n_points`` they were fitted
    on) of an earlier one: one basin reached from two starts."""
    kept = []
    for run in runs:
        if all(abs(run["ll"] - other["ll"]) > _SAME_BASIN * n_points for other in kept):
            kept.append(run)
    return kept


def _best_of_each_kind(continued):
    """{kind: its best stage-2 run} of the portfolio's ``continued`` runs, keyed by kind or by (kind, wave, i)."""
    best = {}
    for key, (_, run) in continued.items():
        kind = key[0] if isinstance(key, tuple) else key
        if kind not in best or _rank(run) > _rank(best[kind]):
            best[kind] = run
    return best


def _settled_kinds(runs, n_points):
    """The exploring kinds, "lines" and "random", whose best run after stage 2 reached the best
    basin found (within _SAME_BASIN nats per point of the ``n_points`` subsample points; none
    when that best run is degenerate). ``runs`` maps each kind to that run.

    More starts of a settled kind are not drawn (_PORTFOLIO_WAVES): when both are settled the
    second wave is skipped. A k-means run below them is no reason to look further: k-means on
    (x, y) alone often settles in a poor basin the other kinds leave (a d = 20 shard's k-means run
    still climbing 0.6 nats per point below the lines and random runs)."""
    best = max(runs.values(), key=_rank)
    if not _rank(best)[0]:
        return set()
    return {kind for kind in ("lines", "random") if abs(runs[kind]["ll"] - best["ll"]) <= _SAME_BASIN * n_points}


def _kplanes_labels(XtT, y, K, rng):
    """A start that respects the regression structure: K lines through random small subsets.

    Each of K random subsets of p + 1 points gives a least-squares line (a small subset is more
    likely to hold one expert's points than a large one); every point goes to the line nearest in
    y, then _KPLANES_ITER rounds of clusterwise regression (refit each line to its points,
    reassign) sharpen the partition (compiled: 96 lstsq calls a portfolio took 5 ms of a 4 000-row
    local fit). Returns labels (n,).
    """
    p, n = XtT.shape
    seeds = np.stack([rng.choice(n, p + 1, replace=False) for _ in range(K)])
    return _kern.kplanes(XtT, y, seeds, _KPLANES_ITER, _KPLANES_RIDGE)


def _n_rows(X):
    """The rows of an X that :meth:`MoEPredictorMixin.score` has accepted."""
    return np.shape(X)[0] if hasattr(X, "shape") else len(X)


class MoEPredictorMixin:
    """Inference shared by every estimator whose fitted model is ``self.params_`` (a MoEParams)."""

    def _check_is_fitted(self, X=None):
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call 'fit' first."
            )
        if X is not None:
            # A DataFrame whose columns differ from fit's (names or order) is refused, as in
            # scikit-learn: (b, a) where the model learnt (a, b) would predict silently wrong.
            check_2d(X)
            check_width(X, self.n_features_in_, type(self).__name__)
            check_feature_names(self, X, reset=False)

    def predict(self, X):
        """Conditional mean E[y | x], shape (n,)."""
        self._check_is_fitted(X)
        return _m.predict_mean(X, self.params_)

    def predict_proba(self, X):
        """Gate probabilities pi_k(x), shape (n, K)."""
        self._check_is_fitted(X)
        return _m.gate_proba(X, self.params_)

    def predict_expert(self, X):
        """Expert means beta_k . x~, shape (n, K)."""
        self._check_is_fitted(X)
        return _m.expert_means(X, self.params_)

    def posterior_proba(self, X, y):
        """Posterior expert memberships P(z = k | x, y), shape (n, K)."""
        self._check_is_fitted(X)
        return _m.posterior_proba(X, y, self.params_)

    def predict_labels(self, X, y):
        """MAP expert labels argmax_k P(z = k | x, y), shape (n,)."""
        return self.posterior_proba(X, y).argmax(axis=1)

    def score_samples(self, X, y=None):
        """Per-sample log-likelihood log f(y | x), shape (n,).

        y is required: the model is a conditional density f(y | x) and says nothing of x alone
        (scikit-learn's ``score_samples(X)`` scores a density of X).  Without y this is a
        TypeError naming y, rather than a number that is not what scikit-learn means by it.
        """
        if y is None:
            raise TypeError(f"{type(self).__name__}.score_samples needs y: the model is the conditional "
                            "density f(y | x), so score_samples(X, y) returns log f(y_i | x_i); it has no "
                            "density of X alone.")
        self._check_is_fitted(X)
        return _m.loglik_per_sample(X, y, self.params_)

    def score(self, X, y):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X, y).mean())

    def n_parameters(self):
        """Free parameters: (K-1)(d+1) gates, K(d+1) experts, K variances."""
        self._check_is_fitted()
        return n_free_parameters(self.params_.n_experts, self.params_.n_features)

    def bic(self, X, y):
        """Bayesian information criterion -2 log L + k log n (lower is better).  X is checked as by
        :meth:`predict` (a table's column names and order included)."""
        return -2.0 * self.score(X, y) * _n_rows(X) + self.n_parameters() * np.log(_n_rows(X))

    def aic(self, X, y):
        """Akaike information criterion -2 log L + 2 k (lower is better); X checked as by :meth:`bic`."""
        return -2.0 * self.score(X, y) * _n_rows(X) + 2 * self.n_parameters()


    def __sklearn_tags__(self):
        # A regressor (predict gives E[y | x]) whose score is the mean log-likelihood, not R^2;
        # dense, finite input only.
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.target_tags.required = True
        tags.regressor_tags = RegressorTags(poor_score=True)
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class MixtureOfExperts(MoEPredictorMixin, BaseEstimator):
    """Softmax-gated mixture of Gaussian linear experts fitted by (generalised) EM.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K (>= 1).
    init : {"portfolio", "kmeans", "random", "lines"} or MoEParams, default="portfolio"
        "portfolio" ("small EM"): short EM runs (10 iterations, on at most max(500, 25 K (d+1))
        points) from 1 k-means, 8 "lines" and 4 random-partition starts, in two waves (on more
        than 1 000 rows the second, 4 lines and 2 random, draws only the kinds whose first-wave
        run did not reach the best basin found); the best run of each kind goes on for up to 50
        iterations, and the best non-degenerate one (no spike: no variance below ``DEGENERATE_VAR``
        var(y) on a few distinct responses) is continued on all the data. On fewer than 1 000 rows the portfolio runs
        min(4, 2000 // n) times (at least ``n_init``) from independent seeds:
        small data have many shallow basins and a portfolio on them is cheap (not in the local
        fits of a :class:`~moecore.distributed.DistributedMoE`, which run ``n_init``). The other choices are one
        start each: k-means on the standardised (x, y) pairs (the best of 3 k-means++ restarts on
        at most max(2000, 100 K (d+1)) of them, every point then labelled by its nearest centre),
        uniformly random labels, or "lines" (K lines through random subsets of d + 2 points, each
        point to the nearest line, a few rounds of clusterwise regression).  A MoEParams with K
        experts and d features warm-starts EM from those parameters (one run: ``n_init`` is then
        ignored; the fit ends at least as high as they score, their variances floored at ``var_floor``).
    n_init : int, default=1
        Number of initialisations (with "portfolio", whole portfolios: at least min(4, 2000 // n) of
        them on n <= 1 000 rows; on up to 100 000 rows, more up to min(4, 200 000 // n) until one ends at
        the best maximum found before it; ``n_inits_`` says how many ran); the run with the highest
        log-likelihood is kept (with "portfolio", non-degenerate runs first). A machine's local fit in a
        distributed fit runs ``n_init`` portfolios.
    max_iter : int, default=300
        Maximum EM iterations per initialisation.
    tol : float, default=1e-6
        Stop when the relative change of the log-likelihood is below ``tol``.
    var_floor : float, default=1e-6
        Lower bound on expert variances, relative to var(y): guards against collapse.
    gate_steps : int, default=1
        Newton steps for the gates per EM iteration.
    acceleration : {"squarem", "none"}, default="squarem"
        "squarem": every two EM steps, extrapolate along them (SQUAREM, Varadhan & Roland 2008,
        step length |r| / |v|, bounded adaptively) and keep the extrapolated point only if its
        log-likelihood is not below the last one, else EM's own point: fewer iterations, and the
        log-likelihood still never decreases. "none": plain (generalised) EM.
    split_moves : bool, default=False
        After the starts, move the kept run as split-and-merge EM does (Ueda et al. 2000): free an expert and
        use it to split another's rows into two lines or to cover the rows fitted worst, run EM from each of
        the K^2 moves, keep the highest, repeat (at most 3 rounds). It reaches training maxima no start leads to
        (mcycle at K = 3: -577.6 against -580.5 for every seed), mostly through sharper experts: on simulated
        designs with 10-60 rows per parameter the held-out log-likelihood got worse in 77 of 115 fits that
        moved, better in 25 (docs/method.md, section 8, item 10). Costs about 3 K^2 EM runs from a fitted model
        (1.1-11x the fit's time on up to 1 000 rows). A warm start and a machine's local fit never move.
    random_state : int, numpy SeedSequence or None
        Seed of the initialisations.

    Attributes
    ----------
    gates_ : ndarray (d+1, K)
        Gate coefficients (row 0 intercepts, last column zero), original units.
    experts_ : ndarray (d+1, K)
        Expert coefficients (row 0 intercepts), original units.
    variances_ : ndarray (K,)
    loglik_history_ : ndarray (n_iter_,)
        Log-likelihood of the training data at each EM iteration of the kept run.
    loglik_ : float
        Final training log-likelihood (the last entry of ``loglik_history_``).
    n_iter_ : int
    converged_ : bool
    n_reseeded_ : int
        Number of times an expert that lost its points was re-seeded.
    retired_experts_ : ndarray of int
        Experts that lost their points again after a re-seed and were retired (gate mass ~ 0):
        the data supported fewer than ``n_experts`` experts.
    floored_experts_ : ndarray of int
        Experts whose variance sits at ``var_floor`` (not spikes, not retired): their rows lie closer to
        their lines than the floor allows (a :class:`VarianceFloorWarning`).
    n_inits_ : int
        Initialisations run, as ``n_init`` counts them (a whole portfolio of starts each with
        ``init="portfolio"``): at least ``n_init``; on small data ``portfolio_repeats(n)``; up to 100 000
        rows as many until one ends at the best maximum found before it, at most ``portfolio_repeats(n)``;
        1 for a warm start; 0 for a model built by :meth:`from_params`.
    fit_time_ : float
        Seconds spent in ``fit``.
    """

    def __init__(
        self,
        n_experts=2,
        *,
        init="portfolio",
        n_init=1,
        max_iter=300,
        tol=1e-6,
        var_floor=1e-6,
        gate_steps=1,
        acceleration="squarem",
        split_moves=False,
        random_state=None,
    ):
        self.n_experts = n_experts
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.gate_steps = gate_steps
        self.acceleration = acceleration
        self.split_moves = split_moves
        self.random_state = random_state

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, params=None, *, gates=None, experts=None, variances=None, feature_names=None):
        """Build a fitted model from given parameters (e.g. the true model of a simulation, or one
        saved with :meth:`MoEParams.to_dict <moecore.model.MoEParams.to_dict>`).

        Pass a :class:`~moecore.model.MoEParams` or the three arrays ``gates`` (d+1, K),
        ``experts`` (d+1, K) and ``variances`` (K,).  ``feature_names`` (d,): the input columns'
        names in the model's order (a fitted model's ``feature_names_in_``), so that a table given to
        :meth:`predict` is checked as after ``fit`` (names and order); the parameters carry none.
        """
        if params is None:
            params = _m.MoEParams(gates, experts, variances)
        elif not isinstance(params, _m.MoEParams):
            raise TypeError(f"params must be a MoEParams, got {type(params).__name__}.")
        est = cls(n_experts=params.n_experts)
        est._set_params(params)
        if feature_names is not None:
            names = np.asarray(list(feature_names), dtype=object)
            if names.shape != (params.n_features,) or not all(isinstance(c, str) for c in names):
                raise ValueError(f"feature_names must be {params.n_features} column name(s) (str), one per input "
                                 f"of the model; got {list(names)}.")
            if len(set(names)) < names.size:
                raise ValueError(f"feature_names must be distinct; got {list(names)}.")
            est.feature_names_in_ = names
        est.loglik_history_ = np.array([])
        est.loglik_ = np.nan
        est.n_iter_ = 0
        est.converged_ = True
        est.n_reseeded_ = 0
        est.retired_experts_ = np.array([], dtype=int)
        est.n_inits_ = 0
        est.fit_time_ = 0.0
        return est

    def _set_params(self, params):
        self.params_ = params
        self.gates_ = params.gates
        self.experts_ = params.experts
        self.variances_ = params.variances
        self.n_features_in_ = params.n_features

    # ------------------------------------------------------------------ validation
    def _check_parameters(self):
        spec = EM_PARAMETERS
        if isinstance(self.init, _m.MoEParams):
            spec = {k: p for k, p in spec.items() if k != "init"}
            if self.init.n_experts != self.n_experts:
                raise ValueError(f"init has {self.init.n_experts} experts; n_experts={self.n_experts}.")
        check_parameters(spec, self)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Fit by EM.

        Parameters
        ----------
        X : array-like (n, d)
        y : array-like (n,)
        """
        return self._fit(X, y)

    def _fit(self, X, y, *, quiet=False, local_fit=False, pilot=None):
        """:meth:`fit`; ``quiet`` leaves out the warnings on degenerate or unconverged fits, for a
        caller that reports them itself (a distributed fit, per machine).  ``local_fit``: a machine's
        local fit, whose portfolio is lighter (the slowest machine sets the learning time, and the
        screening refits a poor fit): one portfolio (n_init) however few the rows (see
        _SMALL_DATA_BUDGET), and only each kind's best short run goes on (:meth:`_small_em`).
        ``pilot``: a MoEParams (K experts, d features) that every portfolio also starts from, as one
        more kind ranked with the others (DistributedMoE(pilot=True))."""
        t0 = time.perf_counter()
        self._check_parameters()
        K = self.n_experts
        X_in, y_in = X, y
        check_2d(X)
        X, y = check_Xy(X, y)
        check_column_names(X_in)
        n, d = X.shape
        min_n = min_samples(K, d)
        if n < min_n:
            raise ValueError(
                f"X has {n} samples: with n_experts={K} and {d} feature(s), at least "
                f"{min_samples_rule(K, d)} are needed. Use more data or fewer experts."
            )
        x_moments = check_nonconstant_columns(X)
        if not robust_std(y) > 0:  # np.std squares: y of 1e-200 would read as constant
            raise ValueError("y is constant: there is nothing for the experts to regress.")
        if not quiet:
            t0 += _timed_data_checks(X, y, X_in, y_in, x_moments)
        scaler = _m.Standardizer.fit(X, y, x_moments=x_moments)
        XtT = scaler.design_T(X)
        ys = scaler.transform_y(y)
        n_starts, confirm = self.n_init, False
        if not local_fit and uses_portfolio(self.init):
            n_starts = max(n_starts, portfolio_repeats(n))
            # Repeats past small data stop once one confirms the best maximum; n_init restarts all run.
            confirm = n > SMALL_DATA_ROWS and self.n_init < n_starts
        seeds = check_random_state_seed(self.random_state).spawn(n_starts)
        warm = None  # a warm start's (gates, experts, variances) on the standardised data
        extra = None if pilot is None else self._pilot_start(pilot, scaler, d)
        if isinstance(self.init, _m.MoEParams):
            if self.init.n_features != d:
                raise ValueError(f"init has {self.init.n_features} features; X has {d}.")
            gates, experts, variances = scaler.params_to_standard(self.init)
            warm = gates, experts, np.maximum(variances, self.var_floor)
            seeds = seeds[:1]  # a warm start is deterministic: restarts would repeat it

        with one_blas_thread():
            best, self.n_inits_ = self._best_run(XtT, ys, _wls_design(XtT, ys), seeds, warm, extra,
                                                 every_run=not local_fit and n <= SMALL_DATA_ROWS,
                                                 every_short=not local_fit, confirm=confirm)
        # Log-likelihood in original y units: the density picks up the Jacobian 1 / y_scale.
        shift = n * np.log(scaler.y_scale)
        self._set_params(scaler.params_to_original(best["gates"], best["experts"], best["variances"]))
        self.loglik_history_ = np.asarray(best["history"]) - shift
        self.loglik_ = float(self.loglik_history_[-1])
        self.n_iter_ = len(best["history"])
        self.converged_ = best["converged"]
        self.n_reseeded_ = best["reseeded"]
        self.retired_experts_ = np.flatnonzero(best["retired"])
        self.floored_experts_ = self._floored(best, XtT, ys)
        # An argument, not warnings.catch_warnings around the fit: that is process-wide state, not
        # thread-safe, and fits run in threads.
        if not quiet:
            self._warn_about_fit(best["reseeded"], X, y)
        check_feature_names(self, X_in, reset=True)  # after success: a failed fit changes nothing
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _warn_about_fit(self, reseeded, X, y):
        """The fitted model's warnings, pointed at the caller of ``fit``: experts retired or re-seeded,
        a degenerate variance (:func:`warn_degenerate`) or a binary y, EM not converged."""
        K = self.n_experts
        if self.retired_experts_.size:
            warn(
                f"expert(s) {self.retired_experts_.tolist()} lost their points again after a re-seed and "
                f"were retired (gate mass ~ 0): the data supports fewer than n_experts={K} experts.",
                DegenerateFitWarning,
            )
        elif reseeded:
            warn(
                f"EM re-seeded an expert that had lost its points {reseeded} time(s); "
                f"the data may support fewer experts than n_experts={K}.",
                DegenerateFitWarning,
            )
        warn_degenerate(self.params_, X, y)
        if self.floored_experts_.size:
            warn(floor_message(f"expert(s) {self.floored_experts_.tolist()} of the fit", self.var_floor),
                 VarianceFloorWarning)
        if not self.converged_:
            warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or tol.",
                ConvergenceWarning,
            )

    def _floored(self, best, XtT, ys):
        """The kept run's experts whose variance sits at var_floor, other than retired experts and spikes
        (whose floor :func:`warn_degenerate` and the retirement already explain): (m,) ints.  Two exact
        lines fitted at 1e-6 var(y), 110 times their noise variance, and the log-likelihood 1.85 nats per row
        short, without a word (the audit of 2026-12-06)."""
        low = np.flatnonzero((best["variances"] <= self.var_floor * _AT_FLOOR) & ~np.asarray(best["retired"], bool))
        if low.size:
            low = np.setdiff1d(low, spike_experts(XtT, ys, best["experts"], best["variances"]))
        return low

    def _pilot_start(self, pilot, scaler, d):
        """The pilot model as (gates, experts, variances) on the standardised data, after checks."""
        if not uses_portfolio(self.init):
            raise ValueError(f"a pilot start is one more start of the portfolio: it needs init='portfolio', "
                             f"not {self.init!r}.")
        if not isinstance(pilot, _m.MoEParams) or pilot.n_experts != self.n_experts or pilot.n_features != d:
            raise ValueError(f"the pilot must be a MoEParams with n_experts={self.n_experts} and {d} feature(s).")
        gates, experts, variances = scaler.params_to_standard(pilot)
        return gates, experts, np.maximum(variances, self.var_floor)

    def _best_run(self, XtT, y, F, seeds, warm=None, extra=None, every_run=False, every_short=False,
                  confirm=False):
        """The kept EM run over the initialisations ``seeds``, or from the parameters ``warm``
        (gates, experts, variances on the standardised data) of a warm start; ``F`` is the
        weighted-least-squares design every run shares; ``extra``, ``every_run``, ``every_short``: see
        :meth:`_small_em`. Portfolios rank non-degenerate runs first (:func:`_rank`); single starts keep
        the highest log-likelihood, the rule they have always had. ``confirm``: the portfolios stop once one
        ends non-degenerate at the best maximum found before it (see _MID_DATA_BUDGET). Returns the run
        (dict) and the number of initialisations run.

        A warm start is EM's first point, so the fit ends at least as high as it starts. Until 2026-12-06
        it started from the responsibilities of those parameters, smoothed and refitted as a partition
        is: refitting a fitted diamonds model (log price ~ log carat + depth, K = 2) began 922 nats below
        it and ended 58 below (a peer audit)."""
        portfolio = self.init == "portfolio" and warm is None
        best, runs = None, 0
        for seed in seeds:
            rng = np.random.default_rng(seed)
            runs += 1
            if portfolio:
                run = self._small_em(XtT, y, F, rng, extra, every_run, every_short)
                confirmed = (confirm and best is not None and _rank(run)[0] and _rank(best)[0]
                             and abs(run["ll"] - best["ll"]) <= max(_CONFIRMED, _CONFIRMED_PER_ROW * y.shape[0]))
                if best is None or _rank(run) > _rank(best):
                    best = run
                if confirmed:
                    break
                continue
            run = self._run_em(XtT, y, F, rng, start=warm)
            if best is None or run["ll"] > best["ll"]:
                best = run
        if self.split_moves and warm is None and self.n_experts > 1:
            best = self._split_moves(XtT, y, F, best, np.random.default_rng(seeds[0].spawn(1)[0]))
        return best, runs

    def _split_moves(self, XtT, y, F, best, rng):
        """``split_moves``: split-and-merge moves from the kept run, after Ueda et al. (2000)'s SMEM. Each move
        frees one expert (its gate mass goes to the others) and uses it to split another expert's rows into two
        lines, or to cover the rows the model fits worst (:func:`_split_starts`); EM runs to convergence from
        each, and a move that ends non-degenerate from a degenerate run, or higher by more than _SAME_BASIN nats
        per point and as degenerate or not as it (:func:`_rank`), is kept and the moves start again from it, up
        to _SPLIT_ROUNDS times.

        A move whose run re-seeds or retires an expert is dropped: the freed expert found no rows of its own,
        and its warning would describe the move, not the data.

        Why: on small data a maximum can lie where no start's basin leads (mcycle at K = 3 ended 2.9 nats
        below the best-known maximum for every seed, even with 10 portfolios of 13 starts; the moves reach it
        from every seed's fit). Not the default: the maxima they add are mostly sharper experts that fit
        held-out data worse (docs/method.md, section 8, item 10)."""
        n = y.shape[0]
        for _ in range(_SPLIT_ROUNDS):
            improved = False
            for start in _split_starts(XtT, y, best, rng, max(_SPLIT_MIN_VAR, self.var_floor)):
                run = self._run_em(XtT, y, F, rng, start=start)
                if run["reseeded"] or np.any(run["retired"]):
                    continue
                # A spike's likelihood is unbounded: a move out of a degenerate run counts whatever its own.
                sound, was_sound = _rank(run)[0], _rank(best)[0]
                if sound > was_sound or (sound == was_sound and run["ll"] > best["ll"] + _SAME_BASIN * n):
                    best, improved = run, True
            if not improved:
                break
        return best

    def _small_em(self, XtT, y, F, rng, extra=None, every_run=False, every_short=False):
        """One portfolio initialisation: the short runs of _PORTFOLIO_WAVES, the best one continued.

        Short runs see a random subsample of _kmeans_sample_size(K, p) points (all of them when
        there are fewer): they only have to pick a basin, and on 128 shards of 7 800 points
        the whole portfolio then costs about one full EM run. The run kept is the best by
        :func:`_rank` (non-degenerate first, then log-likelihood on the subsample).

        ``extra``: the pilot start, one more kind. ``every_short`` (a fit of all the data, not a
        machine's local fit): every short run goes on to stage 2, not only each kind's leader after 10
        iterations, which can be a start that put one expert on a few points (docs/method.md 8, item
        8). ``every_run`` (small data, where the portfolio repeats; implies every_short): besides,
        every distinct basin goes on to convergence (item 7).
        """
        K = self.n_experts
        p, n = XtT.shape
        if K == 1:
            return self._run_em(XtT, y, F, rng)
        size = _short_sample_size(K, p)
        large = n >= _RUNOFF_MIN_FACTOR * size
        kept = []
        for _ in range(_LARGE_SUBSAMPLES if large else 1):
            Xs, ys, Fs = _subsample(XtT, y, F, size, rng)
            runs = self._short_stages(Xs, ys, Fs, rng, n, every_short)
            kept += _distinct_basins(sorted(runs, key=_rank, reverse=True), Xs.shape[1]) if large else runs
        if extra is not None:
            # The pilot start, a kind of one, last: the other kinds' draws are those of a fit
            # without it (a start from parameters draws nothing).
            run = self._run_em(Xs, ys, Fs, rng, start=extra, max_iter=min(_SHORT_ITER, self.max_iter))
            if not run["converged"]:
                run = self._run_em(Xs, ys, Fs, rng, start=_params(run), max_iter=min(_MID_ITER, self.max_iter))
            kept.append(run)
        if large:
            runs = self._runoff(XtT, y, F, rng, kept, Xs.shape[1])
        else:
            runs = _distinct_basins(sorted(kept, key=_rank, reverse=True), Xs.shape[1])
        # Stage 4: the best run continued on all the data. A continuation can still collapse onto
        # tied responses (Boston's censored medv = 50) and end degenerate: the next kind's run is
        # then continued instead, and the best by _rank kept. With every_run, every basin is.
        final = None
        for run in runs:
            full = self._run_em(XtT, y, F, rng, start=_params(run))
            if final is None or _rank(full) > _rank(final):
                final = full
            if (_rank(final)[0] or not _rank(run)[0]) and not every_run:
                break
        return final

    def _short_stages(self, Xs, ys, Fs, rng, n, every_short):
        """Stages 1 and 2 of :meth:`_small_em` on one subsample (Xs, ys, Fs) of data of ``n`` rows:
        the short runs of _PORTFOLIO_WAVES and each kind's best (every_short: every run) continued
        for _MID_ITER iterations. Returns those continued runs (list)."""
        # Each kind's best short run (every_short: every run, keyed (kind, wave, i)); {key: (it, its stage-2 run)}.
        short, continued = {}, {}
        settled = set()
        for w, wave in enumerate(_PORTFOLIO_WAVES):
            todo = [(kind, count) for kind, count in wave if kind not in settled]
            if not todo:
                break
            # Stage 1: short runs; each kind's best (every_short: every run) goes on to stage 2.
            for kind, count in todo:
                for i in range(count):
                    tauT = self._initial_responsibilities(Xs, ys, rng, kind=kind)
                    run = self._run_em(Xs, ys, Fs, rng, tauT=tauT, max_iter=min(_SHORT_ITER, self.max_iter))
                    key = (kind, w, i) if every_short else kind
                    if key not in short or _rank(run) > _rank(short[key]):
                        short[key] = run
            # Stage 2: runs from a poor start climb slowly before they overtake a poor basin that
            # converged fast (mcycle, K = 2: a random partition is 40 nats below k-means' basin
            # after 10 iterations, 29 nats above it at convergence), so each kind's best runs on
            # before the kinds are compared; a kind whose best did not change keeps its run.
            for key, run in short.items():
                if key not in continued or continued[key][0] is not run:
                    more = run if run["converged"] else self._run_em(
                        Xs, ys, Fs, rng, start=_params(run), max_iter=min(_MID_ITER, self.max_iter))
                    continued[key] = (run, more)
            # Never on small data, where every basin goes on: basins there are many and shallow,
            # and faithful's K = 3 maximum, reached by 15 % of random starts, was lost once when
            # the first wave's lines and random runs agreed on the basin below it.
            if n > SMALL_DATA_ROWS:
                settled = _settled_kinds(_best_of_each_kind(continued), Xs.shape[1])
        return [more for _, more in continued.values()]

    def _runoff(self, XtT, y, F, rng, kept, n_short):
        """Stage 3 of :meth:`_small_em`, on large data: the ``kept`` runs of _LARGE_SUBSAMPLES subsamples of
        ``n_short`` points each, their distinct basins run on a sample _RUNOFF times larger; the
        finalists, those the runoff cannot tell from its best, converge on a sample _RUNOFF times larger
        still, which decides. Returns the runs to continue on all the data (list), best first by
        :func:`_rank` (the others in case its continuation ends degenerate).

        A few hundred points can rank basins wrongly (K = 5, d = 1, an 8 % expert: k-means' basin led
        on the subsample and ended 9 600 nats below the lines' basin on 10^5 points, still behind after
        30 iterations on all of them), so distinct basins run on _RUNOFF times more points. Only on
        large data: there it costs under an EM iteration on all of them, while on a shard of a few
        thousand rows the kinds disagree often (unconverged runs of one basin) and the runoff tripled
        the slowest machine's work; shards have screening as their safety net."""
        Xm, ym, Fm = _subsample(XtT, y, F, _RUNOFF * n_short, rng)
        # Runs of different subsamples compare on the runoff sample, not on their own.
        scored = sorted(({**run, "ll": float(_point_loglik(Xm, ym, *_params(run)).sum())} for run in kept),
                        key=_rank, reverse=True)
        runs = _distinct_basins(scored, Xm.shape[1])
        if len(runs) == 1:
            return runs
        runs = sorted((self._run_em(Xm, ym, Fm, rng, start=_params(run), max_iter=_RUNOFF_ITER) for run in runs),
                      key=_rank, reverse=True)
        best = _point_loglik(Xm, ym, *_params(runs[0]))
        finalists, rest = [runs[0]], []
        for run in runs[1:]:
            # A paired test on the runoff's points: a lead under _UNDECIDED_Z standard errors of the
            # per-point differences is noise. Runs that converged to one basin are one.
            gap = best - _point_loglik(Xm, ym, *_params(run))
            undecided = (gap.sum() <= _UNDECIDED_Z * gap.std() * np.sqrt(gap.size)
                         and not (run["converged"] and runs[0]["converged"] and gap.sum() <= _SAME_BASIN * gap.size))
            if undecided and _rank(run)[0] == _rank(runs[0])[0] and len(finalists) < _FINALISTS:
                finalists.append(run)
            else:
                rest.append(run)
        if len(finalists) > 1:
            Xf, yf, Ff = _subsample(XtT, y, F, _RUNOFF * Xm.shape[1], rng)
            finalists = sorted((self._run_em(Xf, yf, Ff, rng, start=_params(run)) for run in finalists),
                               key=_rank, reverse=True)
        return finalists + rest

    def _initial_responsibilities(self, XtT, y, rng, kind=None):
        K = self.n_experts
        n = y.shape[0]
        kind = self.init if kind is None else kind
        if K == 1:
            return np.ones((1, n))
        if kind == "lines":
            labels = _kplanes_labels(XtT, y, K, rng)
        elif kind == "random":
            labels = rng.integers(K, size=n)
        else:
            n_sub = _kmeans_sample_size(K, XtT.shape[0])
            if n <= n_sub:
                centres, labels, _ = kmeans(np.vstack([XtT[1:], y]), K, rng, n_init=_KMEANS_RESTARTS)
            else:
                idx = rng.choice(n, n_sub, replace=False)
                centres, _, _ = kmeans(np.vstack([XtT[1:, idx], y[idx]]), K, rng, n_init=_KMEANS_RESTARTS)
                # Every point's nearest centre, by blocks: the (x, y) pairs of all n points as one
                # array would be another copy of the data (0.8 GB at n = 1e6, d = 100).
                labels = np.empty(n, dtype=np.intp)
                step = gram_chunk(XtT.shape[0]) * 16
                for s in range(0, n, step):
                    labels[s:s + step] = assign_labels(np.vstack([XtT[1:, s:s + step], y[s:s + step]]), centres)
        tauT = np.zeros((K, n))
        tauT[labels, np.arange(n)] = 1.0
        return tauT

    def _run_em(self, XtT, y, F, rng, *, tauT=None, start=None, max_iter=None):
        """One EM run from a partition (``tauT`` (K, n), by default this fit's ``init``) or from
        parameters ``start`` = (gates, experts, variances), for at most ``max_iter`` iterations."""
        K = self.n_experts
        p = XtT.shape[0]
        max_iter = self.max_iter if max_iter is None else max_iter
        XX = None if F is None else F[: p * (p + 1) // 2]  # the gate Hessian's pair products
        gates, experts, variances = start if start is not None else self._start_from(XtT, y, F, XX, rng, tauT)
        XX = hessian_pairs(XX, XtT.shape[1], K, p)
        gstate = gate_state(gates, XtT)  # (etaT, probT, lognorm)
        history, converged, reseeded, retired, n_retired = [], False, 0, np.zeros(K, dtype=bool), 0
        # An expert with fewer effective points than coefficients has an undetermined fit.
        min_mass = float(p)
        accelerate = self.acceleration == "squarem" and K > 1
        # SQUAREM state: the points theta0, theta1 = EM(theta0) (and theta2) of the current cycle,
        # the largest step length allowed now, and after an extrapolation the plain EM point
        # theta2 to fall back on.
        cycle = []
        step_max = _SQUAREM_STEP_MAX0
        fallback = None
        while True:
            ll, tauT = _estep(XtT, y, gstate[0], experts, variances, gstate[2])
            if fallback is not None:
                if not ll >= history[-1]:
                    # The extrapolated point lost likelihood: EM's own point instead, and shorter
                    # steps from now on. This is what keeps the history non-decreasing.
                    gates, experts, variances, gstate = fallback
                    step_max = max(1.0, step_max / _SQUAREM_STEP_FACTOR)
                    ll, tauT = _estep(XtT, y, gstate[0], experts, variances, gstate[2])
                fallback = None
            if history and abs(ll - history[-1]) <= self.tol * abs(history[-1]):
                history.append(ll)
                converged = True
                break
            history.append(ll)
            if len(history) >= max_iter:
                # No M-step after the last E-step: the history ends with the returned parameters.
                break
            new_experts, new_variances, Nk = _wls_experts(XtT, y, tauT, self.var_floor, F)
            starving = (Nk < min_mass) & ~retired if K > 1 and Nk.min() < min_mass else None  # min(): cheaper
            if starving is not None and starving.any() and starving.sum() < K - retired.sum():
                if reseeded < _MAX_RESEEDS:
                    ll_i = _point_loglik(XtT, y, gates, experts, variances)
                    gates, experts, variances = self._reseed(XtT, y, ll_i, tauT, gates, experts, variances, rng)
                    reseeded += 1
                else:
                    gates = self._retire(gates, starving)
                    retired |= starving
                    n_retired = int(retired.sum())
                gstate = gate_state(gates, XtT)
                # A re-seed is a restart from a new point: monotonicity is only owed after it.
                history, cycle = [], []
                continue
            if n_retired:
                # A retired expert keeps its last fit: its near-zero responsibilities determine nothing.
                new_experts[:, retired] = experts[:, retired]
                new_variances[retired] = variances[retired]
            if accelerate and not cycle:
                cycle.append((gates, experts, variances))  # M-steps make new arrays: no copies needed
            experts, variances = new_experts, new_variances
            for _ in range(self.gate_steps):
                gates, gstate = em_newton_step(XtT, XX, tauT, gates, gstate)
            if n_retired:
                gates = self._retire(gates, retired)
                gstate = gate_state(gates, XtT)
            if not accelerate:
                continue
            cycle.append((gates, experts, variances))
            if len(cycle) < 3:
                continue
            points, cycle = cycle, []
            theta, step_max = _squarem_point(points, history, step_max, self.var_floor)
            if theta is None:
                continue
            fallback = (gates, experts, variances, gstate)
            gates, experts, variances = theta
            gstate = gate_state(gates, XtT)
        return dict(gates=gates, experts=experts, variances=variances, history=history,
                    ll=history[-1] if history else -np.inf, converged=converged, reseeded=reseeded, retired=retired,
                    spike=bool(spike_experts(XtT, y, experts, variances).size))

    def _start_from(self, XtT, y, F, XX, rng, tauT=None):
        """(gates (p, K), experts (p, K), variances (K,)) fitted to the partition ``tauT`` (K, n),
        by default this fit's ``init``."""
        K = self.n_experts
        p, n = XtT.shape
        if tauT is None:
            tauT = self._initial_responsibilities(XtT, y, rng)
        # Smooth the hard partition a little so no gate starts from a separable problem.
        tauT = 0.9 * tauT + 0.1 / K
        experts, variances, _ = _wls_experts(XtT, y, tauT, self.var_floor, F)
        # Starting gates from a strided subsample of the size k-means used: they only seed EM,
        # whose first Newton steps refine them on all the data (on 1e6 points fitting them on
        # every point took 15 % of the whole fit, with the same iteration counts afterwards).
        sub = slice(None, None, max(1, n // _kmeans_sample_size(K, p)))
        gates, _ = fit_softmax_gate(np.ascontiguousarray(XtT[:, sub]), np.ascontiguousarray(tauT[:, sub]),
                                    max_iter=_INIT_GATE_STEPS,
                                    XX=None if XX is None else np.ascontiguousarray(XX[:, sub]))
        return gates, experts, variances

    def _reseed(self, XtT, y, ll_i, tauT, gates, experts, variances, rng):
        """Give each starving expert the worst-fitted points and a fresh least-squares fit."""
        K = tauT.shape[0]
        p, n = XtT.shape
        Nk = tauT.sum(axis=1)
        n_take = max(2 * p, n // (4 * K))
        order = np.argsort(ll_i)
        gates = gates.copy()
        experts = experts.copy()
        variances = variances.copy()
        for k in np.flatnonzero(Nk < p):
            if order.size < p:
                # Rows ran out (few rows, several starving experts): the others stay starving, and are
                # re-seeded again or retired by the caller. A fit on no rows had NaN for a variance.
                break
            idx = order[:n_take]
            order = order[n_take:]
            coef, *_ = np.linalg.lstsq(XtT[:, idx].T, y[idx], rcond=None)
            experts[:, k] = coef
            variances[k] = max(np.var(y[idx] - XtT[:, idx].T @ coef), self.var_floor, 1e-3)
            gates[0, k] = gates[0].mean() if k < K - 1 else gates[0, k]
            gates[1:, k] = 0.0 if k < K - 1 else gates[1:, k]
        return gates - gates[:, -1:], experts, variances

    @staticmethod
    def _retire(gates, which):
        """Gates (p, K) whose experts ``which`` (K,) sit _RETIRE_LOGIT below the mean of the others' logits
        everywhere, so at most e^-50 of the mass anywhere. Applied after every gate step too: Newton's step
        for an expert of mass e^-50 divides one tiny number by another, and it had brought a retired expert
        back onto 2 of stackloss's 21 rows (K = 4) with the line and variance it had when it was retired. The
        rule is affine in the gates, so SQUAREM's extrapolations keep it."""
        gates = gates.copy()
        gates[:, which] = gates[:, ~which].mean(axis=1, keepdims=True)
        gates[0, which] -= _RETIRE_LOGIT
        return gates - gates[:, -1:]
