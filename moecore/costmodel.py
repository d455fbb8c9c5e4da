"""When does distribution pay?  A cost model of the global EM and of the distributed learning time.

The times are fitted to measurements of this library on this machine (:func:`calibrate`), with
forms that follow the operation counts of each step (n rows, d inputs, p = d + 1, K experts,
M machines, S support points):

* one EM fit on n rows, per restart:      ``t_em  = a0 + a1 n K p + a2 n K p^2``
  (E-step n K p, expert M-step n K p^2 through the Gram products, gate Newton step n K p^2;
  the iteration count is folded into the coefficients: it is what the shipped designs need);
* the server (screening + reduction):     ``t_srv = b0 + b1 S M K + b2 S M K^2 + b3 S K p^2``
  per MM restart (screening scores M K experts on S points; each MM iteration compares the
  M K local experts with the K reduced ones at S points; the reduced gate is a softmax
  regression on S points);
* one refinement round, per machine:      ``t_rnd = r0 + r1 n_m K p^2``;
* the global EM on small data (n <= 1 000 rows, where a default fit runs
  ``R = portfolio_repeats(n)`` = min(4, 2000 // n) whole portfolios and continues every short
  run, :class:`~moecore.em.MixtureOfExperts`): ``t_small = R (s0 + s1 n K p + s2 n K p^2)``, a
  regime of its own (5-90x the large-data formula at the same n, measured) that a machine's local
  fit never enters;
* the global EM up to ``MID_DATA_ROWS`` = 100 000 rows, whose portfolios repeat until one confirms
  the best maximum (at most min(4, 200 000 // n)): two portfolios, ``2 t_em``, where the data have one
  maximum (every synthetic design); up to four on real data with many.

Coefficients are non-negative (:func:`scipy.optimize.nnls`, relative errors), so every predicted
time grows with every size: the model is monotone by construction.  The *learning time* is the
paper's figure (machines truly in parallel): ``t_em(n / M) + t_srv + rounds t_rnd``; the *wall
clock* on ``cores`` cores runs the M local fits ``cores`` at a time.

The calibration measures CPU seconds of one thread (BLAS limited to one thread), so a machine
shared with other work gives the figures of a dedicated core.  ``benchmarks/bench_costmodel.py``
runs it and stores the coefficients in ``costmodel.json`` next to this module; :func:`load`
reads them.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from ._validation import check_int
from .em import SMALL_DATA_ROWS, portfolio_repeats
from .params import default_support_size

__all__ = ["CALIBRATION_FILE", "CostModel", "Prediction", "calibrate", "fit_model", "load", "min_rows", "save"]

CALIBRATION_FILE = Path(__file__).with_name("costmodel.json")

# (design, n, M): the calibration fits.  Local fits see n / M rows (250 to 16 000), the global
# EM n rows (8 000 to 64 000); d from 1 to 10, K from 3 to 5, M from 2 to 64.
CALIBRATION_GRID = (
    ("teaching-1d", 8_000, 2), ("teaching-1d", 32_000, 8), ("teaching-1d", 64_000, 32),
    ("separated-2d", 8_000, 4), ("separated-2d", 32_000, 16), ("separated-2d", 64_000, 64),
    ("overlapping-5d", 16_000, 4), ("overlapping-5d", 64_000, 16),
    ("separated-10d", 16_000, 8), ("separated-10d", 32_000, 2),
)
# Portfolios a default global fit past small data runs where the second confirms the first's maximum.
_CONFIRMING = 2
# (design, n): global EM fits on small data, the regime of portfolio_repeats(n) > 1; two seeds each.
CALIBRATION_SMALL = (
    ("teaching-1d", 200), ("teaching-1d", 500), ("teaching-1d", 1_000),
    ("separated-2d", 200), ("separated-2d", 500), ("separated-2d", 1_000),
    ("overlapping-5d", 300), ("overlapping-5d", 700), ("separated-10d", 500), ("separated-10d", 1_000),
)


def _em_features(n, d, K):
    """(..., 3) regressors of one EM fit on n rows."""
    n, p, K = np.asarray(n, float), np.asarray(d, float) + 1, np.asarray(K, float)
    return np.stack(np.broadcast_arrays(np.ones_like(n * p * K), n * K * p, n * K * p * p), axis=-1)


def _server_features(M, K, S, d):
    """(..., 4) regressors of the server's work (screening + one MM restart of the reduction)."""
    M, K, S, p = (np.asarray(v, float) for v in (M, K, S, np.asarray(d) + 1))
    return np.stack(np.broadcast_arrays(np.ones_like(M * K * S * p), S * M * K, S * M * K * K, S * K * p * p),
                    axis=-1)


def _round_features(n_m, d, K):
    """(..., 2) regressors of one refinement round on one machine (E-step and sums of n_m rows)."""
    n_m, p, K = np.asarray(n_m, float), np.asarray(d, float) + 1, np.asarray(K, float)
    return np.stack(np.broadcast_arrays(np.ones_like(n_m * p * K), n_m * K * p * p), axis=-1)


def _fit(A, t):
    """Non-negative coefficients minimising the relative error sum ((A c - t) / t)^2."""
    A, t = np.asarray(A, float), np.asarray(t, float)
    w = 1.0 / np.maximum(t, 1e-6)
    coef, _ = nnls(A * w[:, None], t * w)
    return coef


@dataclass(frozen=True)
class Prediction:
    """Predicted seconds of one configuration (dedicated cores, the calibrated machine).

    global_time: the global EM on all n rows; local: one local fit on n / M rows; server:
    screening + reduction; rounds: all refinement rounds (machines in parallel);
    learning_time = local + server + rounds (the paper's figure); wall: the same with the M local
    fits and round steps run ``cores`` at a time; speedup = global_time / learning_time;
    wall_speedup = global_time / wall.
    """

    global_time: float
    local: float
    server: float
    rounds: float
    learning_time: float
    wall: float
    speedup: float
    wall_speedup: float
    support: int


@dataclass(frozen=True)
class CostModel:
    """Fitted coefficients (see the module docstring for the formulas) and how they were measured."""

    em: tuple
    server: tuple
    round: tuple
    small: tuple = ()  # the small-data global EM's (s0, s1, s2); () in a calibration made before it
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ the parts
    def em_time(self, n, d, K, restarts=1):
        """Seconds of an EM fit on n rows with ``restarts`` starts."""
        return restarts * float(_em_features(n, d, K) @ np.asarray(self.em))

    def global_time(self, n, d, K, restarts=1, confirm=True):
        """Seconds of a default global EM fit on n rows with ``restarts`` (``n_init``) starts: on
        small data, max(restarts, portfolio_repeats(n)) portfolios that continue every short run; up to
        MID_DATA_ROWS, max(restarts, 2) (a second portfolio confirms the maximum where there is one).
        ``confirm`` False: ``restarts`` past small data, the global EM's work without that safety."""
        repeats = portfolio_repeats(int(n))
        if n > SMALL_DATA_ROWS:
            return self.em_time(n, d, K, max(restarts, min(repeats, _CONFIRMING)) if confirm else restarts)
        if not self.small:  # a calibration stored before the small-data term
            return self.em_time(n, d, K, restarts)
        return max(restarts, repeats) * float(_em_features(n, d, K) @ np.asarray(self.small))

    def server_time(self, M, K, S, d, mm_restarts=3):
        """Seconds of the server's screening and reduction (``mm_restarts`` MM starts)."""
        c = np.asarray(self.server)
        f = _server_features(M, K, S, d)
        # Screening (S M K) and the gate fit (S K p^2) run once; the MM iterations once per start.
        return float(f[0] * c[0] + f[1] * c[1] + mm_restarts * f[2] * c[2] + f[3] * c[3])

    def round_time(self, n_m, d, K):
        """Seconds of one refinement round on one machine of n_m rows."""
        return float(_round_features(n_m, d, K) @ np.asarray(self.round))

    # ------------------------------------------------------------------ the whole
    def predict(self, n, d, K, M, S=None, rounds=0, restarts=1, mm_restarts=3, cores=None, confirm=True) -> Prediction:
        """Predicted global EM time, learning time and wall clock of a distributed fit.

        ``S`` None: the default floor(n / 4M); ``cores`` None: as many as machines; ``confirm``: see
        :meth:`global_time`.
        """
        _check_sizes(n=n, d=d, K=K, M=M, restarts=restarts, mm_restarts=mm_restarts)
        check_int(rounds, "rounds", low=0)
        check_int(S, "S", low=1, allow_none=True)
        check_int(cores, "cores", low=1, allow_none=True)
        S = default_support_size(n, M) if S is None else int(S)
        n_m = math.ceil(n / M)
        g = self.global_time(n, d, K, restarts, confirm)
        loc = self.em_time(n_m, d, K, restarts)  # local fits never repeat the portfolio
        srv = self.server_time(M, K, S, d, mm_restarts)
        rnd = rounds * self.round_time(n_m, d, K)
        learning = loc + srv + rnd
        waves = math.ceil(M / (cores or M))  # the local fits (and each round's steps) run `cores` at a time
        wall = waves * loc + srv + waves * rnd
        return Prediction(g, loc, srv, rnd, learning, wall, g / learning, g / wall, S)

    def breakeven_n(self, d, K, M, S=None, rounds=0, restarts=1, mm_restarts=3, n_max=10**9):
        """The smallest n (>= 4 M, and beyond small data) whose predicted speed-up reaches 1, or
        None below ``n_max``.

        With S = floor(n / 4M) the server's work grows with n like the global EM's, so the
        speed-up levels off as n grows: it may never reach 1 for some (d, K, M). On small data
        (portfolio_repeats(n) > 1) the global EM's repeated portfolios, which no local fit runs, make the
        speed-up fall as n grows past them: the search starts after them. Past small data the global EM is
        counted with one portfolio, without the second that confirms its maximum up to MID_DATA_ROWS: the
        crossing is where the work split alone pays.
        """
        def gain(n):
            return self.predict(int(n), d, K, M, S, rounds, restarts, mm_restarts, confirm=False).speedup

        lo = max(4 * M, SMALL_DATA_ROWS + 1)
        if gain(lo) >= 1:
            return lo
        hi = lo
        while gain(hi) < 1:
            if hi >= n_max:
                return None
            hi = min(hi * 4, n_max)
        while hi - lo > max(1, lo // 100):  # 1 % of n is far below the model's own accuracy
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if gain(mid) < 1 else (lo, mid)
        return int(hi)

    def best_machines(self, n, d, K, S=None, rounds=0, restarts=1, mm_restarts=3, M_max=256):
        """The M (a power of two up to ``M_max``, shards of at least :func:`min_rows` rows) of
        highest predicted speed-up, and that speed-up."""
        grid = [2**j for j in range(int(math.log2(M_max)) + 1) if n // 2**j >= min_rows(d, K)] or [1]
        sp = {M: self.predict(n, d, K, M, S, rounds, restarts, mm_restarts).speedup for M in grid}
        M = max(sp, key=sp.get)
        return M, sp[M]

    def explain(self, n, d, K, M, S=None, rounds=0, restarts=1, mm_restarts=3, cores=None) -> str:
        """Three sentences: the predicted speed-up of this configuration and its parts, where it
        crosses 1, and what would raise it."""
        p = self.predict(n, d, K, M, S, rounds, restarts, mm_restarts, cores)
        parts = [f"On one dedicated core per machine, the cost model of this server predicts a speed-up of "
                 f"{p.speedup:.1f}x: global EM {_s(p.global_time)} against a local fit of {_s(p.local)} plus "
                 f"{_s(p.server)} of reduction" + (f" plus {_s(p.rounds)} of rounds" if rounds else "") + "."]
        repeats = portfolio_repeats(n)
        if repeats > 1 and n <= SMALL_DATA_ROWS:
            parts.append(f"On {n:,} rows the global EM runs {max(restarts, repeats)} whole portfolios of starts and "
                         "continues every one (small data have many shallow maxima), which no machine's local fit "
                         "does: a speed-up here is that safety skipped, not the work split.")
        elif repeats > 1 and restarts < _CONFIRMING:
            one = self.predict(n, d, K, M, S, rounds, restarts, mm_restarts, cores, confirm=False).speedup
            parts.append(f"On {n:,} rows the global EM runs a second whole portfolio of starts to confirm its maximum "
                         f"(up to {repeats} where they disagree: real data of this size often have several), which no "
                         f"machine's local fit does: against one portfolio, the work split alone, it is {one:.1f}x.")
        n_even = self.breakeven_n(d, K, M, S, rounds, restarts, mm_restarts)
        past = (f"Past {SMALL_DATA_ROWS:,} rows, where the global EM runs one portfolio, "
                if repeats > 1 and n <= SMALL_DATA_ROWS else "")
        if n_even is None:
            parts.append((past + "it" if past else "It") + f" stays below 1 at any n with K = {K}, d = {d} and "
                         f"M = {M}: the reduction costs more than the global EM saves.")
        elif past and n_even <= SMALL_DATA_ROWS + 1:
            parts.append(past + "it is above 1 from the start.")
        elif past:
            parts.append(past + f"it falls below 1 and passes it again at about n = {_round_n(n_even):,} rows.")
        else:
            verb = "crosses" if n_even <= n else "would cross"
            against = " against one portfolio" if repeats > 1 else ""
            parts.append(f"It {verb} 1{against} at about n = {_round_n(n_even):,} rows (K = {K}, d = {d}, M = {M}).")
        M_best, sp_best = self.best_machines(n, d, K, S, rounds, restarts, mm_restarts)
        raise_it = []
        if p.server > p.local:
            raise_it.append(f"a smaller supporting sample (S = {p.support:,}; the reduction's time grows with S)")
        if M_best != M and sp_best > 1.1 * p.speedup:
            raise_it.append(f"M = {M_best} machines (predicted {sp_best:.1f}x)")
        fixed = restarts * self.em[0]  # the part of an EM fit that does not shrink with its rows
        if fixed > 0.5 * p.local:
            raise_it.append(f"larger shards: {_s(fixed)} of each local fit is a fixed cost (its starts) that does "
                            "not shrink with n / M")
        if p.local >= p.server and (repeats == 1 or n > SMALL_DATA_ROWS):  # on small data more rows end the repeats
            raise_it.append("more rows: the global EM grows with n, the local fits only with n / M")
        if raise_it:
            parts.append("What would raise it: " + "; ".join(raise_it) + ".")
        return " ".join(parts)

    # ------------------------------------------------------------------ storage
    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """The model stored by :meth:`to_dict`; a dict that is not one raises ValueError naming the key."""
        if not isinstance(d, dict):
            raise ValueError(f"a cost model must be a dict of coefficients, got {type(d).__name__}")
        parts = {key: _coefficients(d, key, size, optional=key == "small") for key, size in _COEFFICIENTS}
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"the cost model's 'meta' must be a dict, got {type(meta).__name__}")
        return cls(parts["em"], parts["server"], parts["round"], parts["small"], dict(meta))


# The stored coefficients: one per regressor of _em_features, _server_features, _round_features, and
# the small-data global EM's (the em regressors again).
_COEFFICIENTS = (("em", 3), ("server", 4), ("round", 2), ("small", 3))


def _coefficients(d, key, size, optional=False):
    """``d[key]`` as a tuple of ``size`` finite non-negative floats (``()`` where optional and absent)."""
    if key not in d:
        if optional:
            return ()
        raise ValueError(f"the cost model has no {key!r} coefficients (keys: {', '.join(map(repr, d)) or 'none'}); "
                         "rerun benchmarks/bench_costmodel.py to write a complete calibration")
    try:
        values = np.asarray(d[key], dtype=float)
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape != (size,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"the cost model's {key!r} must be {size} finite non-negative numbers, got {d[key]!r}")
    return tuple(map(float, values))


def min_rows(d, K):
    """Rows a machine needs for a sensible local fit: 50 per parameter of its K-expert model
    ((K - 1) p gate, K p expert and K variance parameters, p = d + 1).  The model's times hold
    for smaller shards too; their local fits would not."""
    p = d + 1
    return 50 * ((K - 1) * p + K * p + K)


def _check_sizes(**sizes):
    for name, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if sizes["n"] < sizes["M"]:
        raise ValueError(f"n must be at least M = {sizes['M']} (one row per machine), got {sizes['n']}.")


def _s(t):
    return f"{1000 * t:.0f} ms" if t < 1 else f"{t:.2f} s"


def _round_n(n):
    """n to two significant digits: the model is not more accurate than that."""
    e = max(0, math.floor(math.log10(max(n, 1))) - 1)
    return int(round(n / 10**e) * 10**e)


def calibrate(grid=CALIBRATION_GRID, *, small=CALIBRATION_SMALL, rounds=1, progress=None) -> tuple[CostModel, list]:
    """Measure the fits of ``grid`` (and the small-data global fits of ``small``) on this machine
    and fit the cost model.

    Returns the model and the measurements (one dict per fit step: kind, sizes, seconds).
    CPU seconds of one thread with BLAS on one thread: the figures of one dedicated core.
    """
    from threadpoolctl import threadpool_limits

    from .distributed import DistributedMoE
    from .em import MixtureOfExperts
    from .simulation import DESIGNS, simulate_design

    rows = []
    # Fits run quiet (a warning per unconverged machine says nothing about time), by their own
    # argument rather than a process-wide warning filter.
    with threadpool_limits(1):
        # Not measured: loads the compiled kernels and fills the caches a server has warm.
        warm = simulate_design(grid[0][0], 2000, random_state=0)
        DistributedMoE(DESIGNS[grid[0][0]].n_experts, 2, backend="sequential", refine_rounds=rounds,
                       random_state=0)._fit(warm.X, warm.y, quiet=True)
        for i, (design, n, M) in enumerate(grid):
            sim = simulate_design(design, n, random_state=i)
            K, d = DESIGNS[design].n_experts, DESIGNS[design].n_features
            c0 = time.thread_time()
            g = MixtureOfExperts(K, random_state=0)._fit(sim.X, sim.y, quiet=True)
            # Per portfolio, as the local fits' rows: up to MID_DATA_ROWS a second one confirms the maximum.
            rows.append(dict(kind="em", n=n, d=d, K=K, M=1, S=0, seconds=(time.thread_time() - c0) / g.n_inits_))
            dm = DistributedMoE(K, M, backend="sequential", n_jobs=1, refine_rounds=rounds,
                                random_state=0)._fit(sim.X, sim.y, quiet=True)
            c = dm.costs_
            for m, sec in zip(dm.machines_, c.local_cpu, strict=False):
                rows.append(dict(kind="em", n=len(dm.shards_[m]), d=d, K=K, M=M, S=0, seconds=float(sec)))
            S = len(dm.support_indices_)
            rows.append(dict(kind="server", n=n, d=d, K=K, M=M, S=S, mm_restarts=dm.mm_n_init,
                             seconds=float(c.screening + c.machine_weights + c.reduction_cpu)))
            for sec in c.rounds:  # the sequential backend runs the M machines' steps one after another
                rows.append(dict(kind="round", n=math.ceil(n / M), d=d, K=K, M=M, S=S, seconds=float(sec) / M))
            if progress is not None:
                progress(i + 1, len(grid) + len(small))
        for j, (design, n) in enumerate(small):
            K, d = DESIGNS[design].n_experts, DESIGNS[design].n_features
            for seed in (0, 1):
                sim = simulate_design(design, n, random_state=100 + seed)
                c0 = time.thread_time()
                MixtureOfExperts(K, random_state=seed)._fit(sim.X, sim.y, quiet=True)
                rows.append(dict(kind="em_small", n=n, d=d, K=K, M=1, S=0, repeats=portfolio_repeats(n),
                                 seconds=time.thread_time() - c0))
            if progress is not None:
                progress(len(grid) + j + 1, len(grid) + len(small))
    return fit_model(rows), rows


def fit_model(rows, meta=None) -> CostModel:
    """The cost model of measurements ``rows`` (see :func:`calibrate`)."""
    em = [r for r in rows if r["kind"] == "em"]
    srv = [r for r in rows if r["kind"] == "server"]
    rnd = [r for r in rows if r["kind"] == "round"]
    sml = [r for r in rows if r["kind"] == "em_small"]
    a = _fit([_em_features(r["n"], r["d"], r["K"]) for r in em], [r["seconds"] for r in em])
    F = np.array([_server_features(r["M"], r["K"], r["S"], r["d"]) for r in srv])
    F[:, 2] *= [r.get("mm_restarts", 3) for r in srv]
    b = _fit(F, [r["seconds"] for r in srv])
    c = _fit([_round_features(r["n"], r["d"], r["K"]) for r in rnd], [r["seconds"] for r in rnd]) if rnd else (0, 0)
    # Per portfolio: the repeats multiply every part of the fit.
    s = _fit([_em_features(r["n"], r["d"], r["K"]) for r in sml], [r["seconds"] / r["repeats"] for r in sml]) \
        if sml else ()
    meta = dict(meta or {}, machine=platform.machine(), processor=platform.processor() or platform.machine(),
                python=platform.python_version(), measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                fits=len(srv), unit="CPU seconds of one thread")
    return CostModel(tuple(map(float, a)), tuple(map(float, b)), tuple(map(float, c)), tuple(map(float, s)), meta)


def save(model: CostModel, path=CALIBRATION_FILE):
    Path(path).write_text(json.dumps(model.to_dict(), indent=1) + "\n")


def load(path=CALIBRATION_FILE) -> CostModel:
    """The stored calibration (``benchmarks/bench_costmodel.py`` writes it)."""
    return CostModel.from_dict(json.loads(Path(path).read_text()))
