"""Screening the local fits before they are reduced: a fit stuck in a poor optimum stands out.

The server holds the supporting sample's (x, y) pairs and every local model.  With randomly split
data the shards are exchangeable, so every good local fit estimates the same model and scores
alike on the support: their mean log-likelihoods differ by the estimation noise of a K-expert
MoE fitted to n_m points.  A local EM that merged two experts (a poor local optimum) scores far
lower: a whole expert's worth of points is explained by a too-wide Gaussian.  One such model in
the large mixture is enough to make the reduction lose a true expert (docs/method.md, 7).

The rule (:func:`flag_poor_fits`) compares each score with the median of the machines' scores:

    flag m  if  median - score_m > max(z * 1.4826 * MAD, c * q / n_m)

* The robust spread ``1.4826 MAD`` estimates the standard deviation of the good machines'
  scores (MAD ignores up to half of the machines being outliers); ``z = 5`` flags only what good
  fits would reach with probability ~3e-7 under a normal spread, so with M = 1024 machines a
  false flag stays rare.
* With few machines or nearly identical fits the MAD can be tiny, so the gap must also exceed
  ``c q / n_m``, q the free parameters of a local model: a maximum-likelihood fit from n_m points
  is q / (2 n_m) nats per point from the truth on average (Wilks), with a standard deviation of
  sqrt(2 q) / (2 n_m), and in-sample support points add an optimism of the same order.  ``c = 4``
  puts the floor several such spreads above the good fits' scatter; a merged expert costs orders
  of magnitude more (measured in benchmarks/bench_screening.py).

The median is poor too when most machines share one poor optimum: K = 3 with an expert holding
0.5 % of the rows, 3 of 4 machines of 5 000 rows missed it, 0.38 nats per point below EM from the
truth, and nothing was flagged.  The best-scoring machine beats each of them point by point on the
same support, so a second rule (:func:`beaten_by_best`) tests the paired mean gap
g_m = mean_s (l_best(s) - l_m(s)) against the noise floor:

    flag m  if  g_m > c * q / n_m + z2 * SE(g_m),   applied when it holds for the median machine

SE the standard error of the paired mean, ``z2 = 3``: the one-sided test that m's loss exceeds a
fit's estimation noise.  A loss concentrated on a rare expert's few points makes the SE large (0.06-
0.08 there against gaps of 0.35-0.43), which is why the floor and the SE add rather than the larger
of the two deciding.  The condition on the median machine keeps the rule to the case the median
rule cannot see, where a false flag also costs least (a refit from the best model).  Only on random
splits, where every machine estimates one model: machines holding different x (a region split kept
with constant weights, files of unknown origin) differ by more than noise with no poor fit at all.

Both rules judge on the support, which holds S / M points of each machine's share: a lost expert of
0.5 % of the rows has one or two points there at M = 16 and S = 312, so neither can see it.  Each
machine can, on its own rows: its local EM maximised its shard's log-likelihood L_m, so no other model
scores higher there unless that EM stopped in a poor optimum.  So the best-scoring machine's model goes
down to every other machine the rules passed (:func:`second_look`), and one number comes back, the gain

    G_m = L_m(best model) - L_m(own model)    (nats on the n_m rows, in sample)

A machine is flagged, and refits from the best model, when G_m exceeds GAP_FLOOR q
(:func:`better_optimum`, the floor of the rules above in nats per shard).  A good fit cannot be flagged
(its G_m is at most its EM's stopping tolerance); a poor one is flagged when its loss on its own rows
exceeds 4 q nats, whatever S: on the rare-expert design its 6 lost rows cost it 200-580 nats, against
q = 13 (benchmarks/README.md, section 26).  The same exchange carries the refits of the machines the
rules flagged, so it costs one E-step per machine and the q numbers of the model, in the learning time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _em_kernels as _kern
from . import model as _m
from ._warn import warn
from .local import LocalFitError, LocalFitResult, MachineWarning, fit_local
from .params import LOCAL_CHECKS, n_free_parameters

__all__ = [
    "LOCAL_CHECKS",
    "SCORE_POINTS",
    "ScreeningOutcome",
    "ScreeningReport",
    "SecondLook",
    "beaten",
    "better_optimum",
    "flag_poor_fits",
    "machine_score",
    "n_free_parameters",
    "score_local_fits",
    "screen_local_fits",
    "second_look",
    "support_loglik",
    "support_scores",
]

# Robust z-score beyond which a machine is flagged (see the module docstring).
Z_THRESHOLD = 5.0
# Floor of the gap, in units of q / n_m (see the module docstring).
GAP_FLOOR = 4.0
# Standard errors beyond the floor of the second rule's paired test (see the module docstring).
MAJORITY_Z = 3.0
# Support points the screening scores every local model on (see support_scores): None, all of
# them. A poor fit's loss can sit in a narrow region of x (a lost 8 % expert with sharp gates), which
# an evenly strided 512 of 1 562 support points left nearly empty: on lost_expert_design (n = 10^5,
# M = 16, 5 seeds) two of eight poor local fits scored within 0.003 nats per point of the median
# there, 0.05-0.06 below it on every point, and went unflagged (benchmarks/README.md, section 16).
# Scoring every point costs the server what 512 did before the compiled pass (M = 128, d = 20:
# 12 ms against 9 ms).
SCORE_POINTS = None
# A flagged machine refits with this many times the restarts (at least REFIT_MIN_INIT).
REFIT_INIT_FACTOR = 4
REFIT_MIN_INIT = 4


def support_scores(local_params, X_support, y_support, *, max_points=None):
    """Mean log-likelihood of every local model on the supporting sample's (x, y) pairs.

    Parameters
    ----------
    local_params : list of MoEParams (M) ; X_support : (S, d) ; y_support : (S,)
    max_points : int or None
        Score on an evenly strided subset of at most this many support points (None: all, what
        the screening uses: SCORE_POINTS).  A merged expert costs tenths of a nat on every point,
        but a small lost expert costs as much only on the few points of its region, which a subset
        can miss.

    Returns
    -------
    ndarray (M,).  The shards are exchangeable, so good local fits score alike; a fit in a poor
    optimum (two experts merged) scores far below the others (see :func:`flag_poor_fits`).
    """
    return support_loglik(local_params, *_score_points(X_support, y_support, max_points)).mean(axis=1)


def _score_points(X, y, max_points=SCORE_POINTS):
    """The support points scored: all of them, or an evenly strided subset of at most ``max_points``."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if max_points is not None and len(y) > max_points:
        stride = -(-len(y) // max_points)
        X, y = X[::stride], y[::stride]
    return X, y


def beaten_by_best(ll, machines, sizes, n_params, *, z=MAJORITY_Z, floor=GAP_FLOOR):
    """Thresholds (M,) of the second rule (module docstring), NaN where it does not apply.

    ll : (M', S) per-point log-likelihoods of the models of ``machines`` (M',) on the support ;
    sizes : (M,) shard sizes n_m ; n_params : q.  The best-scoring model beats machine m when
    their paired mean gap exceeds the noise floor ``floor q / n_m`` by ``z`` standard errors:
    the one-sided test that m's loss is more than a fit's estimation noise.  The rule applies
    only when it beats the machine of median score, i.e. when at least half the machines share
    a poor optimum, where the median rule is blind; then each machine's threshold is the best
    score less its allowance ``floor q / n_m + z SE_m``.
    """
    out = np.full(len(sizes), np.nan)
    if len(machines) < 2 or ll.shape[1] < 2:
        return out
    score = ll.mean(axis=1)
    diff = ll[int(np.argmax(score))] - ll
    allowance = (floor * n_params / np.asarray(sizes, dtype=float)[machines]
                 + z * diff.std(axis=1, ddof=1) / np.sqrt(ll.shape[1]))
    median = int(np.argsort(score, kind="stable")[(len(score) - 1) // 2])
    if diff[median].mean() > allowance[median]:
        out[machines] = score.max() - allowance
    return out


def support_loglik(local_params, X, y):
    """(M, S) log-likelihood of every local model at every point (x_s, y_s)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    Ks = {prm.n_experts for prm in local_params}
    if len(Ks) != 1:
        return np.stack([_m.loglik_per_sample(X, y, prm) for prm in local_params])
    # All M models at once: two BLAS products on (M, K, S) arrays, then one compiled pass (a loop
    # over models cost more in per-call overhead than in arithmetic: M = 128, 15 ms against 1-2 ms).
    M, K, S = len(local_params), Ks.pop(), y.shape[0]
    XtT = np.ascontiguousarray(_m.add_intercept(X).T)  # (p, S)
    # One (M K, p) x (p, S) product each: 4.4 ms at M = 128, K = 4, p = 21, S = 1 953, against 6.6 ms
    # as M batched products on the transposed view.
    eta = (np.concatenate([prm.gates.T for prm in local_params]) @ XtT).reshape(M, K, S)
    means = (np.concatenate([prm.experts.T for prm in local_params]) @ XtT).reshape(M, K, S)
    out = np.empty((M, S))
    _kern.mixtures_loglik(eta, means, y, np.stack([prm.variances for prm in local_params]), out)
    return out


def beaten(own_ll, other_ll, n_params, n_samples):
    """Whether a model beats a machine's own model on that machine's support points by more than
    noise: the sign that the own fit is a poor optimum when machines hold different x (covariate
    weights), where scores cannot be compared across machines.

    own_ll, other_ll : (S_m,) per-point log-likelihoods of the two models on the machine's points.
    The own model was fitted to those points' distribution (in sample), so a good own fit is not
    beaten on average. The mean per-point gain must exceed both GAP_FLOOR q / n_m (the estimation
    noise of a fit, as in :func:`flag_poor_fits`) and Z_THRESHOLD standard errors of that mean.
    """
    diff = np.asarray(other_ll) - np.asarray(own_ll)
    if diff.size < 2:
        return False
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    return bool(diff.mean() > max(GAP_FLOOR * n_params / n_samples, Z_THRESHOLD * se))


def better_optimum(own_loglik, new_loglik, n_samples, n_params, own_params=None):
    """Whether a refit on a machine's shard reached a better optimum than its own fit.

    own_loglik, new_loglik : the two fits' log-likelihoods of the whole shard (n_samples points),
    both in sample, so the machine compares them without any other data.  Two EM runs that end in
    the same optimum differ by the stopping tolerance; the refit counts as a different, better
    optimum only when it gains more than GAP_FLOOR q / n_m nats per point, the screening's bound
    on a fit's estimation noise (module docstring).  When the own fit has fewer parameters
    (``local_experts="bic"``), the gain must also pay BIC's price for the extra ones,
    (q - q_own) log(n_m) / 2, so BIC's choice is kept unless the data overturns it.
    """
    gain = float(new_loglik) - float(own_loglik)
    need = GAP_FLOOR * n_params
    if own_params is not None and own_params < n_params:
        need = max(need, 0.5 * (n_params - own_params) * np.log(n_samples))
    return bool(np.isfinite(gain) and gain > need)


@dataclass
class ScreeningReport:
    """What the screening saw and did.

    Attributes
    ----------
    scores : ndarray (M,), mean support log-likelihood of each machine's first local fit
        (NaN for a machine whose fit failed)
    threshold : ndarray (M,), the score below which each machine is flagged
    flagged : list of int, machines flagged
    refit_scores : dict {machine: score of its refit}
    actions : dict {machine: "refit" (the refit passed and replaced the first fit), "dropped"
        (left out of the reduction, weights renormalised), or "kept" (local_check="off")}
    cross_gain : ndarray (M,) or None, the best-scoring model's log-likelihood gain per row over each
        machine's own model on that machine's rows (:func:`second_look`; NaN where not compared:
        flagged by the support rules, failed, or not run); None when no comparison ran
    cross_flagged : list of int, the machines flagged by that comparison (also in ``flagged``)
    warm_refits : dict {machine: shard log-likelihood gain per point} or None
        Covariate weights only: after the reduction every machine refits from the reduced model;
        the machines whose refit reached a better optimum (:func:`better_optimum`) and replaced
        their first fit in the final reduction (empty if none did, or if the second reduction
        was not kept).  None when this check did not run.
    warm_refit_support : (float, float) or None
        Mean support log-likelihood of the first reduction and of the reduction of the improved
        fits; the second is kept when it is not lower.  None when no second reduction ran.
    """

    scores: np.ndarray
    threshold: np.ndarray
    flagged: list
    refit_scores: dict = field(default_factory=dict)
    actions: dict = field(default_factory=dict)
    cross_gain: np.ndarray | None = None
    cross_flagged: list = field(default_factory=list)
    warm_refits: dict | None = None
    warm_refit_support: tuple | None = None


def flag_poor_fits(scores, n_samples, n_params, *, z=Z_THRESHOLD, floor=GAP_FLOOR):
    """Thresholds and flags of the rule in the module docstring.

    Parameters
    ----------
    scores : array (M,), support scores; NaN entries (failed fits) are ignored
    n_samples : array (M,), shard sizes n_m
    n_params : int, free parameters q of one local model

    Returns
    -------
    threshold : ndarray (M,) ; flagged : ndarray (M,) bool
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_samples = np.asarray(n_samples, dtype=np.float64)
    ok = np.isfinite(scores)
    if ok.sum() < 3:
        # The median of two scores cannot say which one is poor: nothing is flagged.
        return np.full(scores.shape, -np.inf), np.zeros(scores.shape, dtype=bool)
    med = np.median(scores[ok])
    spread = 1.4826 * np.median(np.abs(scores[ok] - med))
    threshold = med - np.maximum(z * spread, floor * n_params / n_samples)
    return threshold, ok & (scores < threshold)


@dataclass
class ScreeningOutcome:
    """What :func:`screen_local_fits` decided.

    report : ScreeningReport ; kept : dict {machine: LocalFitResult}, the fits to aggregate (a
    passing refit in place of its first fit) ; scores : ndarray (M,), the support scores (the
    report's array) ; dropped : dict {machine: why} ; refit_times : ndarray (refits,), seconds of
    each refit ; refit_up : ndarray (M,), numbers each refitted machine sent again ; refit_down :
    ndarray (M,), numbers sent to each machine that refits from another's model or compares it with
    its own ; seconds : the scoring at the server ; compare_times : ndarray (compared,), seconds of
    each machine's comparison (:func:`second_look`; a refit that followed is in ``refit_times``) ; compare_up :
    ndarray (M,), the one number each compared machine sent.
    """

    report: ScreeningReport
    kept: dict
    scores: np.ndarray
    dropped: dict
    refit_times: np.ndarray
    refit_up: np.ndarray
    seconds: float
    refit_down: np.ndarray
    compare_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    compare_up: np.ndarray | None = None


def machine_score(params, X_support, y_support, support_machine, machine, own):
    """The support score of one model of ``machine``: on the whole support, or (``own``: the
    machines hold different x) on the support points that machine contributed (NaN: none)."""
    if not own:
        return float(support_scores([params], X_support, y_support, max_points=SCORE_POINTS)[0])
    sel = support_machine == machine
    if not sel.any():
        return float("nan")
    return float(support_scores([params], X_support[sel], y_support[sel], max_points=SCORE_POINTS)[0])


def score_local_fits(models, machines, X_support, y_support, support_machine, sizes, own, exchangeable=False):
    """Support scores, thresholds, flags and warm starts of the local models.

    models : list (M',) of MixtureOfExperts ; machines : (M',) their machine indices ;
    support_machine : (S,) each support point's machine ; sizes : (M,) shard sizes n_m ;
    own : score each machine on its own support points (covariate weights: machines not
    exchangeable) ; exchangeable : the rows were shuffled over the machines (a random split), so
    every machine estimates one model and the second rule (:func:`beaten_by_best`) applies.
    Returns scores (M,), threshold (M,), flagged (M,) bool and {machine: MoEParams}
    of a better model of another machine to refit from.
    """
    M, d = len(sizes), X_support.shape[1]
    q = n_free_parameters(models[0].n_experts, d)
    scores, warm = np.full(M, np.nan), {}
    params = [mdl.params_ for mdl in models]
    if own:
        # Cross-scores: every model on every machine's own points. Where most machines stop in
        # a poor optimum (label skew: one expert dominates a shard and misleads k-means) the
        # median rule cannot see it, but a good fit from another machine beats the poor one on
        # the poor one's own data; the refit then starts from that better model.
        ll = support_loglik(params, X_support, y_support)  # (M', S): every model at every point, one pass
        for own_pos, m in enumerate(machines):
            sel = support_machine == m
            if not sel.any():
                continue
            cross = ll[:, sel].mean(axis=1)  # each model on machine m's own points
            scores[m] = cross[own_pos]
            cross[own_pos] = -np.inf
            best = int(np.argmax(cross))
            if best != own_pos and beaten(ll[own_pos, sel], ll[best, sel], q, sizes[m]):
                warm[int(m)] = params[best]
    else:
        ll = support_loglik(params, *_score_points(X_support, y_support))
        scores[machines] = ll.mean(axis=1)
    threshold, flagged = flag_poor_fits(scores, sizes, q)
    if exchangeable and not own:
        # Machines holding different x (a region split kept with constant weights) differ by more
        # than noise without any poor fit: the best region's model beat all the others, and refits
        # from it were dropped (teaching-1d, M = 8: RPE 0.42 -> 0.61).
        beat = beaten_by_best(ll, machines, sizes, q)
        threshold = np.fmax(threshold, beat)
        flagged |= scores < beat
    flagged[list(warm)] = True
    if not own and flagged.any():
        # Exchangeable machines all estimate one model, so the best-scoring one is a start in the
        # right basin for every flagged machine: one EM run from it, where restarts from scratch
        # (four portfolios) cost four local fits and can land in the same poor basin again.
        best = params[int(np.argmax(scores[machines]))]
        warm = {int(m): best for m in np.flatnonzero(flagged)}
    return scores, threshold, flagged, warm


def screen_local_fits(results, models, machines, X_support, y_support, support_machine, *, local_check,
                      own, exchange, quiet=False, exchangeable=False):
    """Score the local fits on the support pairs; refit or drop the poor ones (the module's rules).

    results : list (M,) of LocalFitResult ; models, machines : the aggregated local models and
    their machine indices ; support_machine : (S,) ; local_check : one of LOCAL_CHECKS ;
    own : the machines hold different x (covariate weights): each is scored on its own points
    and a flagged machine is refitted but never dropped (it may be the only one holding its x) ;
    exchange(flagged, warm, compared, compare_of) -> {machine: SecondLook}: one exchange in which the
    ``flagged`` machines refit on their shards, from ``warm[m]`` where given, and the ``compared``
    ones run :func:`second_look` with ``compare_of(m)`` ; quiet : no warning naming the dropped
    machines (they are in ``outcome.dropped``) ; exchangeable : a random split (see
    :func:`score_local_fits`).  Returns :class:`ScreeningOutcome`.
    """
    t0 = time.perf_counter()
    sizes = np.array([r.n_samples for r in results], dtype=float)
    scores, threshold, flagged, warm = score_local_fits(models, machines, X_support, y_support,
                                                        support_machine, sizes, own, exchangeable)
    report = ScreeningReport(scores, threshold, [int(m) for m in np.flatnonzero(flagged)])
    outcome = ScreeningOutcome(report, {r.index: r for r in results if r.error is None}, scores, {},
                               np.zeros(0), np.zeros(len(results)), time.perf_counter() - t0,
                               np.zeros(len(results)))
    if local_check == "off":
        report.actions = dict.fromkeys(report.flagged, "kept")
        return outcome
    q = n_free_parameters(models[0].n_experts, X_support.shape[1])
    forced = report.flagged if local_check == "refit" else []
    # Covariate weights compare every machine with the reduced model after the reduction instead
    # (moecore.refine.warm_refits): a model of another region is no start there.
    top = int(np.argmax(scores[machines]))
    pos = {} if own else {int(m): i for i, m in enumerate(machines) if not flagged[m] and i != top}
    best = models[top].params_
    def compare_of(m):  # the start, the machine's own log-likelihood and parameters, whether it may refit
        return best, models[pos[m]].train_loglik_, models[pos[m]].n_parameters(), local_check == "refit"
    looks = exchange(forced, warm, list(pos), compare_of) if forced or pos else {}
    looks = {m: look for m, look in looks.items() if look is not None}  # None: the machine was lost
    outcome.refit_down[[m for m in forced if m in warm]] = q
    for m in report.flagged:
        _act_on_flag(outcome, m, looks[m].refit if m in looks else None, threshold[m], q,
                     lambda p, m=m: machine_score(p, X_support, y_support, support_machine, m, own), own)
    if pos:
        _act_on_comparisons(outcome, {m: looks[m] for m in pos if m in looks}, sizes, q)
    # One exchange: each refit's seconds (a compared machine's include its comparison), in machine order.
    refitted = sorted(m for m in report.flagged if m in looks and looks[m].refit is not None)
    outcome.refit_times = np.array([looks[m].seconds for m in refitted])
    if not outcome.kept:
        raise LocalFitError("the screening dropped every machine; pass local_check='off'.")
    dropped = sorted(outcome.dropped)
    if dropped and not quiet:
        warn(
            f"the screening left out machine(s) {dropped}: their local fits scored far below "
            "the others on the supporting sample or on their own rows (a poor local optimum); the others are "
            "aggregated with renormalised weights.",
            MachineWarning,
        )
    return outcome


def _act_on_comparisons(outcome, looks, sizes, q):
    """Record the comparisons of :func:`second_look` ({machine: SecondLook}) and act on the machines
    whose own model the best one beat on their rows: keep the refit, or drop the machine."""
    report = outcome.report
    report.cross_gain = np.full(len(sizes), np.nan)
    outcome.compare_up = np.zeros(len(sizes))
    outcome.refit_down[list(looks)] = q
    outcome.compare_up[list(looks)] = 1
    outcome.compare_times = np.array([look.compare_seconds for look in looks.values()])
    for m, look in sorted(looks.items()):
        report.cross_gain[m] = look.gain / sizes[m]
        if not look.beaten:
            continue
        report.cross_flagged.append(m)
        res = look.refit
        if res is not None and res.error is None:
            outcome.kept[m] = res
            report.actions[m] = "refit"
            outcome.refit_up[m] += q + 1
        else:
            report.actions[m] = "dropped"
            del outcome.kept[m]
            outcome.dropped[m] = (f"the screening's comparison: the best-scoring machine's model explained its own "
                                  f"rows {look.gain:.4g} nats better than its local fit (a poor local optimum)"
                                  + (f"; its refit failed: {res.error}" if res is not None else ""))
    report.flagged = sorted(report.flagged + report.cross_flagged)


@dataclass
class SecondLook:
    """What one machine sends back from the exchange after the screening (:func:`second_look`).

    index : the machine ; gain : the start model's log-likelihood of the machine's rows less its own
    model's (nats in all; NaN: a flagged machine refits without the comparison) ; beaten : the gain
    passed :func:`better_optimum` ; refit : LocalFitResult or None, the refit from the start ;
    seconds : the machine's time for the comparison and the refit ; compare_seconds : the comparison's
    """

    index: int
    gain: float
    beaten: bool
    refit: LocalFitResult | None
    seconds: float
    compare_seconds: float = 0.0


def second_look(X, y, index, n_experts, em_params, seed, local_experts="fixed", compare=None):
    """One machine's part of the exchange after the screening, on its rows X (n_m, d), y (n_m,).

    compare None: a machine the screening flagged refits (``em_params`` holds its start, if any).
    Else ``compare = (start, own_loglik, own_params, refit)``: the machine scores the start model
    (MoEParams, the best-scoring machine's) on its rows against its own model's log-likelihood
    ``own_loglik`` (q_own = ``own_params`` free parameters) and, when the start is better by more than
    :func:`better_optimum` allows and ``refit``, fits again from it (module docstring).
    """
    t0 = time.perf_counter()
    if compare is None:
        res = fit_local(index, X, y, n_experts, em_params, seed, local_experts)
        return SecondLook(index, float("nan"), False, res, time.perf_counter() - t0)
    start, own_loglik, own_params, refit = compare
    gain = float(support_loglik([start], X, y).sum()) - float(own_loglik)  # the compiled pass: 0.5 ms on 7 812 rows
    beaten = better_optimum(own_loglik, own_loglik + gain, len(y),
                            n_free_parameters(start.n_experts, start.n_features), own_params)
    compared = time.perf_counter() - t0
    # A K-expert start (local_experts="fixed"): the comparison has already weighed BIC's choice.
    res = fit_local(index, X, y, start.n_experts, dict(em_params, init=start), seed) if beaten and refit else None
    return SecondLook(index, gain, beaten, res, time.perf_counter() - t0, compared)


def _act_on_flag(outcome, m, res, threshold, q, score_of, own):
    """Keep the refit of flagged machine ``m`` if it passes, else keep or drop its first fit."""
    report, scores = outcome.report, outcome.scores
    if res is not None and res.error is None:
        score = score_of(res.model.params_)
        report.refit_scores[m] = score
        outcome.refit_up[m] += q + 1
        if score >= threshold:
            outcome.kept[m] = res
            report.actions[m] = "refit"
            return
        if own:
            # A machine may be the only one holding its part of x: keep its better fit rather
            # than drop it.
            if score > scores[m]:
                outcome.kept[m] = res
            report.actions[m] = "refit" if score > scores[m] else "kept"
            return
    if own:
        report.actions[m] = "kept"
        return
    report.actions[m] = "dropped"
    del outcome.kept[m]
    outcome.dropped[m] = (
        f"local fit scored {scores[m]:.4g} on the support, below the screening "
        f"threshold {threshold:.4g}" + (" (also after a refit)" if res is not None else "")
    )
