"""Distribution over machines: shard the data, fit local MoEs in parallel, reduce them.

The local fits are independent, so they run with joblib (processes by default) or on a
``dask.distributed`` cluster.  Every random choice is drawn from child seeds of one
``numpy.random.SeedSequence``, one per machine, so the result depends on ``random_state`` alone and
not on ``n_jobs``, the backend or the order in which machines finish.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_feature_names

from . import refine as _refine
from ._validation import (
    check_int,
    check_nonconstant_columns,
    check_random_state_seed,
    check_response_scale,
    check_Xy,
)
from .dispatch import Runner
from .em import MixtureOfExperts, MoEPredictorMixin, min_samples
from .local import LocalFitError, LocalFitResult
from .local import fit_task as _fit_task
from .machine_weights import decide_machine_weights, fit_machine_weights
from .model import Standardizer
from .params import DISTRIBUTED_PARAMETERS, check_parameters, default_support_size, em_settings
from .reduction import reduce_mixtures
from .screening import (
    REFIT_INIT_FACTOR,
    REFIT_MIN_INIT,
    SCORE_POINTS,
    ScreeningReport,
    beaten,
    better_optimum,
    flag_poor_fits,
    n_free_parameters,
    support_loglik,
    support_scores,
)
from .shard_check import warn_small_shards
from .shards import ShardJob
from .shards import fit_shards as _fit_shards
from .splits import Split, as_split, shards_from_labels, split_rows

__all__ = ["DistributedMoE"]


class DistributedMoE(MoEPredictorMixin, BaseEstimator):
    """Distributed learning of a K-expert MoE: M local EM fits, then the OT/MM reduction.

    Parameters
    ----------
    n_experts : int, K >= 1
    n_machines : int, M >= 1
    support_size : int or None
        Size S of the supporting sample drawn from the pooled data; default floor(n / (4 M)).
    n_jobs : int or None, joblib's number of parallel local fits (-1: all cores)
    backend : {"loky", "threading", "multiprocessing", "sequential", "dask"}
    random_state : int, SeedSequence or None
    init, n_init, max_iter, tol, var_floor, gate_steps : the local fits' EM settings
        (see :class:`~moecore.em.MixtureOfExperts`)
    mm_n_init, mm_max_iter, mm_tol : the MM reduction's k-means restarts and stopping rule
    mm_local_starts : int >= 0
        Further MM starts from the best local models on the support (see
        :func:`~moecore.reduction.reduce_mixtures`).
    variance_update : {"exact", "authors"}, see :func:`~moecore.reduction.reduce_mixtures`
    gate_targets : {"component", "plan", "posterior", "coefficients"}
        How the reduced gate is obtained, see :func:`~moecore.reduction.reduce_mixtures`;
        "plan" is the paper's pointwise rule.
    local_check : {"refit", "drop", "off"}
        Screening of the local fits on the supporting sample (:mod:`moecore.screening`): a machine
        whose model scores far below the others (a poor local optimum) refits on its own shard
        with more restarts ("refit", dropped if it still fails the check), is left out with the
        other weights renormalised ("drop"), or nothing is checked ("off", the paper).  With
        covariate machine weights "refit" also sends the reduced model back: every machine refits
        from it, and where that reaches a clearly better optimum of its shard's likelihood the
        reduction is run again with those fits, and kept if it explains the support pairs better
        (``screening_.warm_refits``).
    refine_rounds : int >= 0
        Distributed EM rounds from the reduced model (:mod:`moecore.refine`); 0 keeps the paper's
        one-shot estimator.  Each round costs every machine one E-step on its shard and sends
        O(K p^2) numbers; r rounds are exactly r global EM iterations.
    on_error : {"raise", "skip"}
        What to do when a local fit fails: raise :class:`LocalFitError` naming the shard, or
        aggregate the other machines with renormalised weights (recorded in ``skipped_``).
    scheduler : str, dask Client or None
        For ``backend="dask"``: a scheduler address or a Client; None uses the current client.
    split : {"random", "region", "kmeans", "label"}, :class:`~moecore.splits.Split` or callable
        How :meth:`fit` spreads the rows over the machines when no ``machine`` labels are given:
        "random" (the paper) or a non-IID split (a name means alpha = 0, fully separated; a
        ``Split("region", alpha=0.25)`` sets the mixing and sizes); a callable
        ``split(X, n_machines, rng)`` returns machine labels (n,).
    machine_weights : {"auto", "constant", "covariate"}
        The weight of machine m in the large mixture: "constant" n_m / n (the paper; right when
        every machine sees the same inputs), "covariate" w_m(x) = P(machine m | x) estimated on the
        supporting sample (:mod:`moecore.machine_weights`), or "auto": constant for the package's
        own random splits, otherwise covariate when a score test finds that the machine of a
        support point depends on its x (p < 1e-3).
    local_experts : {"fixed", "bic"}
        "fixed": every machine fits K experts (the paper); "bic": each machine also fits 1..K-1
        experts and keeps the fit of lowest BIC, for machines whose part of x holds fewer than K
        experts (non-IID splits); costs up to K - 1 extra fits per machine.

    Attributes
    ----------
    local_models_ : list of MixtureOfExperts, one per machine that is aggregated
    machines_ : ndarray (M',), the machine index of each entry of ``local_models_``
    local_n_experts_ : ndarray (M',), the number of experts of each local model (K unless
        ``local_experts="bic"`` chose fewer)
    skipped_ : dict {machine index: reason}, failed fits and machines dropped by the screening
    weights_ : ndarray (M',), shares n_m / n of the kept machines, renormalised
    screening_ : ScreeningReport (scores, thresholds, flagged machines, what was done)
    local_scores_ : ndarray (M,), each machine's mean log-likelihood on the support pairs
    flagged_ : list of int, machines the screening flagged
    shards_ : list of index arrays, the rows of X each machine received
    support_indices_ : ndarray (S,), rows of X forming the supporting sample
    reduction_ : ReductionResult
    one_shot_params_ : MoEParams, the reduced model before refinement rounds
    reduced_ : MixtureOfExperts, the final K-expert model
    gates_, experts_, variances_ : its parameters
    mm_history_ : ndarray, MM objective per iteration (non-increasing)
    transport_plan_ : TransportPlan
    support_machine_ : ndarray (S,), the machine each support point came from
    machine_weights_used_ : {"constant", "covariate"}, what ``machine_weights`` resolved to
    machine_weights_test_ : AssociationTest or None, the test "auto" ran (None when it had no need)
    machine_weight_model_ : KNNMachineWeights or None, the fitted w_m(x) (covariate weights only)
    support_weights_ : ndarray (S, M') or None, w_m(x_s) at the support points (covariate only)
    refine_loglik_ : ndarray (refine_rounds + 1,), pooled training log-likelihood of the one-shot
        model and after each round (non-decreasing); empty without rounds
    communication_ : dict, numbers of floats sent: "one_shot_up" (M,) per machine (local model,
        support share, refit), "warm_refit_down" (M,) (the reduced model sent back for the warm
        refits of covariate weights; absent when they did not run), "round_up" / "round_down" per
        machine per round, "one_shot_total",
        "rounds_total", "total"
    timings_ : dict with "local" (M,) seconds of each local fit, "local_max", "local_sum",
        "screening", "refit" (seconds of each refit), "warm_refit" (seconds of each machine's refit
        from the reduced model, covariate weights), "machine_weights" (deciding and estimating
        w_m(x) at the server), "reduction", "rounds" (seconds of each round: slowest machine per
        exchange + server), "wall" (this fit, on the cores used) and "learning_time" = local_max
        + screening + slowest refit (of each kind) + machine_weights + reduction(s) + rounds (the paper's figure,
        machines truly in parallel, extended by the screening, the weights and the rounds)
    """

    def __init__(
        self,
        n_experts=2,
        n_machines=4,
        *,
        support_size=None,
        n_jobs=None,
        backend="loky",
        random_state=None,
        init="kmeans",
        n_init=1,
        max_iter=300,
        tol=1e-6,
        var_floor=1e-6,
        gate_steps=1,
        mm_n_init=3,
        mm_max_iter=200,
        mm_tol=1e-8,
        mm_local_starts=1,
        variance_update="exact",
        gate_targets="component",
        local_check="refit",
        refine_rounds=0,
        on_error="raise",
        scheduler=None,
        split="random",
        machine_weights="auto",
        local_experts="fixed",
    ):
        self.n_experts = n_experts
        self.n_machines = n_machines
        self.support_size = support_size
        self.n_jobs = n_jobs
        self.backend = backend
        self.random_state = random_state
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.gate_steps = gate_steps
        self.mm_n_init = mm_n_init
        self.mm_max_iter = mm_max_iter
        self.mm_tol = mm_tol
        self.mm_local_starts = mm_local_starts
        self.variance_update = variance_update
        self.gate_targets = gate_targets
        self.local_check = local_check
        self.refine_rounds = refine_rounds
        self.on_error = on_error
        self.scheduler = scheduler
        self.split = split
        self.machine_weights = machine_weights
        self.local_experts = local_experts

    # ------------------------------------------------------------------ validation
    def check_parameters(self, n_samples, n_features):
        """Check the parameters for data of this size before any work; returns (K, M, S).

        Raises the ValueError or TypeError that :meth:`fit` would raise (e.g. too many machines
        for n), so a caller can refuse settings before simulating or loading anything.
        """
        return self._check_parameters(int(n_samples), int(n_features))

    def _check_parameters(self, n, d):
        values = check_parameters(DISTRIBUTED_PARAMETERS, self)
        K, M = values["n_experts"], values["n_machines"]
        as_split(self.split)
        # Every shard must hold enough points for K experts of d + 1 coefficients each.
        per_shard = min_samples(K, d)
        if M > n:
            raise ValueError(f"n_machines={M} is more than the n = {n} samples: use at most "
                             f"{max(n // per_shard, 1)} machines (each needs {per_shard} samples for {K} experts).")
        if n // M < per_shard:
            raise ValueError(
                f"n_machines={M} is too large for n={n} samples with n_experts={K}: {K} experts are more "
                f"than a shard can support. Each of the {M} shards gets {n // M} samples, but each shard "
                f"needs at least n_experts * (d + 1) + 1 = {per_shard} samples. Use at most "
                f"{max(n // per_shard, 1)} machines, or at most {max((n // M - 1) // (d + 1), 1)} expert(s)."
            )
        if self.support_size is None:
            S = default_support_size(n, M)
        else:
            S = check_int(self.support_size, "support_size")
            if not K <= S <= n:
                why = (f"the supporting sample is drawn from the data, so it cannot be larger than n = {n}" if S > n
                       else f"it needs a point per reduced expert, so it cannot be smaller than K = {K}")
                raise ValueError(f"support_size must be in [{K}, {n}], got {S}: {why}.")
        return K, M, max(S, K)

    def _em_params(self):
        out = em_settings(self)
        if self.local_experts != "fixed":
            out["local_experts"] = self.local_experts  # read (and removed) by fit_local
        return out

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, machine=None, progress=None):
        """Shard (X, y) over the machines, fit them in parallel and reduce.

        Parameters
        ----------
        X : array-like (n, d) ; y : array-like (n,)
        machine : array-like (n,) of ints in 0..M-1, or None
            The machine holding each row, when the data is already partitioned (by site, by
            day...); None spreads the rows by ``split`` (default: shuffled into M near-equal shards).
        progress : callable(stage, done, total) or None
            Called with ("local", machines done, M) as local fits finish, with ("mm", iteration,
            max iterations) during the reduction and ("round", round, rounds) during refinement.
        """
        # All or nothing: a refit that raises (a failed machine, a bad argument) leaves the
        # estimator as it was, never shards_ of the new data beside the old parameters.
        with _all_or_nothing(self):
            t0 = time.perf_counter()
            X_in = X
            X, y = check_Xy(X, y)
            n, d = X.shape
            K, M, S = self._check_parameters(n, d)
            warn_small_shards(n, d, K, M, S)
            check_nonconstant_columns(X)
            check_response_scale(y)
            ss = check_random_state_seed(self.random_state)
            seed_split, seed_support, seed_mm, seed_machines = ss.spawn(4)
            machine_seeds = seed_machines.spawn(M)
            if machine is None:
                shards = split_rows(as_split(self.split), X, M, np.random.default_rng(seed_split),
                                    min_samples(K, d))
            else:
                shards = shards_from_labels(machine, n, M)
            # With the package's own random split P(machine | x) = n_m / n is known: "auto" needs no test.
            self._random_split = machine is None and isinstance(as_split(self.split), Split) \
                and as_split(self.split).kind == "random"
            support = np.sort(np.random.default_rng(seed_support).choice(n, size=S, replace=False))
            with self._machine_data(X, y, shards) as machines:
                em = self._em_params()
                out = machines.run(_fit_task, range(M), lambda m: (m, K, em, machine_seeds[m]), progress, "local",
                                   lost=lambda m, why: LocalFitResult(m, len(shards[m]), None, np.nan, why))
                results = [out[m][0] for m in range(M)]
                self.shards_ = shards
                self.support_indices_ = support
                holder = np.empty(n, dtype=np.int64)
                for m, idx in enumerate(shards):
                    holder[idx] = m
                shares = np.bincount(holder[support], minlength=M)
                self.support_machine_ = holder[support]
                self._aggregate(machines, results, X[support], y[support], shares, machine_seeds, seed_mm, progress)
            _check_feature_names(self, X_in, reset=True)
            self.timings_["wall"] = time.perf_counter() - t0
            return self

    def _runner(self):
        """Where the machines' tasks run: this estimator's backend, n_jobs and scheduler."""
        return Runner(self.backend, self.n_jobs, self.scheduler)

    def _machine_data(self, X, y, shards):
        """The machines' data for the whole fit: local fits, refits and refinement rounds
        (a context manager yielding :class:`~moecore.dispatch.MachineData`)."""
        return self._runner().machine_data(X, y, shards)

    def fit_shards(self, paths, *, response="y", features=None, workers=None, progress=None):
        """Fit from data that already lives on the machines: one CSV or Parquet file per machine.

        Each file is read by the worker that fits it (the full data never passes through one
        process); each worker also draws its share of the supporting sample, proportional to its
        number of rows, with its own seed.  Then the local models are reduced as in :meth:`fit`.
        See :func:`moecore.shards.fit_shards` for the parameters and the fitted attributes.
        """
        with _all_or_nothing(self):
            t0 = time.perf_counter()
            M = DISTRIBUTED_PARAMETERS["n_machines"].check(self.n_machines)
            ss = check_random_state_seed(self.random_state)
            # The same four children as fit(): the machines' EM seeds are identical to fit()'s.
            _seed_split, seed_support, seed_mm, seed_machines = ss.spawn(4)
            machine_seeds = seed_machines.spawn(M)

            def aggregate(data):
                # The data stay where they are (the dask futures, the files) for refits and rounds.
                self.shards_ = None
                self.support_indices_ = None
                self.shard_paths_ = data.paths
                self.shard_sizes_ = data.sizes
                self.feature_names_in_ = np.array(data.features, dtype=object)
                self.support_shares_ = data.shares
                # Each worker drew its own share, so every support point knows its machine.
                self.support_machine_ = data.support_machine
                self._random_split = False
                self._aggregate(data.machines, data.results, data.X_support, data.y_support, data.shares,
                                machine_seeds, seed_mm, progress)
                self.timings_["read"] = data.read_times

            job = ShardJob(
                n_experts=self.n_experts,
                em_params=self._em_params(),
                machine_seeds=machine_seeds,
                support_seeds=seed_support.spawn(M),
                runner=self._runner(),
                support_size=lambda n, d: self._check_parameters(n, d)[2],
                aggregate=aggregate,
            )
            _fit_shards(job, paths, response=response, features=features, workers=workers, progress=progress)
            self.timings_["wall"] = time.perf_counter() - t0
            return self

    # ------------------------------------------------------------------ after the local fits
    def _aggregate(self, machines, results, Xs, ys, support_shares, machine_seeds, seed_mm, progress):
        """Everything after the local fits, shared by :meth:`fit` and :meth:`fit_shards`.

        results : list (M,) of LocalFitResult ; Xs (S, d), ys (S,) the supporting sample ;
        support_shares : (M,) support points each machine contributed ;
        machines : :class:`~moecore.dispatch.MachineData`, for refits and refinement rounds.
        """
        self._collect(results)
        self._n_samples_all = [r.n_samples for r in results]
        self.support_X_ = Xs
        self.support_y_ = ys
        self._decide_machine_weights(Xs)
        self._screen(machines, results, Xs, ys, support_shares, machine_seeds)
        self._reduce(Xs, ys, seed_mm, progress, machines, machine_seeds)
        self._refine(machines, Xs, ys, progress)

    def _collect(self, results):
        failed = {r.index: r.error for r in results if r.error is not None}
        if failed and self.on_error == "raise":
            m, why = next(iter(sorted(failed.items())))
            raise LocalFitError(
                f"local fit of machine {m} (shard of {results[m].n_samples} samples) failed: {why}. "
                f"{len(failed)} of {len(results)} machine(s) failed; pass on_error='skip' to "
                "aggregate the others."
            )
        kept = [r for r in results if r.error is None]
        if not kept:
            raise LocalFitError(f"all {len(results)} local fits failed; first error: {results[0].error}")
        if failed:
            warnings.warn(
                f"skipped {len(failed)} failed machine(s) {sorted(failed)}; the others are "
                "aggregated with renormalised weights.",
                RuntimeWarning,
                stacklevel=4,
            )
        self.skipped_ = failed
        self._set_kept(kept)
        local_times = np.array([r.time for r in results])
        self.timings_ = {
            "local": local_times,
            "local_max": float(local_times.max()),
            "local_sum": float(local_times.sum()),
            # CPU seconds of each local fit: what a dedicated machine would take, whatever else
            # shares the cores here (the wall-clock "local" figures include such waits).
            "local_cpu": np.array([r.cpu_time for r in results]),
        }
        self.timings_["local_cpu_max"] = float(np.max(self.timings_["local_cpu"]))
        spare = {r.index: r.model.retired_experts_.tolist() for r in kept
                 if getattr(r.model, "retired_experts_", np.array([])).size}
        if spare:
            warnings.warn(
                f"the local fits of machine(s) {sorted(spare)} retired spare experts {spare} "
                f"(machine: experts): their shards support fewer than n_experts={self.n_experts} "
                "experts (e.g. a machine holding one region of x); those components carry no gate "
                "mass into the reduction.",
                RuntimeWarning,
                stacklevel=4,
            )
        not_conv = [r.index for r in kept if not r.model.converged_]
        if not_conv:
            warnings.warn(
                f"the local EM of machine(s) {not_conv} did not converge in max_iter={self.max_iter}.",
                RuntimeWarning,
                stacklevel=4,
            )

    def _set_kept(self, kept):
        """The aggregated machines: their models, indices and renormalised weights n_m / n."""
        self.local_models_ = [r.model for r in kept]
        self.local_n_experts_ = np.array([m.params_.n_experts for m in self.local_models_])
        self.machines_ = np.array([r.index for r in kept])
        sizes = np.array([r.n_samples for r in kept], dtype=float)
        self.weights_ = sizes / sizes.sum()

    def _screen(self, machines, results, Xs, ys, support_shares, machine_seeds):
        """Score every local model on the support pairs; refit or drop the poor ones."""
        t0 = time.perf_counter()
        M = len(results)
        K, d = self.n_experts, Xs.shape[1]
        # Machines holding different parts of x (covariate weights) are not exchangeable: a good fit
        # scores low far from its own data. Each is then scored on its own support points, and a
        # flagged machine is refitted but never dropped (it may be the only one holding its x).
        own = self.machine_weights_used_ == "covariate"
        holder = self.support_machine_

        def score_of(m, params):
            if not own:
                return support_scores(params, Xs, ys, max_points=SCORE_POINTS)
            sel = holder == m
            return (support_scores(params, Xs[sel], ys[sel], max_points=SCORE_POINTS) if sel.any()
                    else np.full(len(params), np.nan))

        scores = np.full(M, np.nan)
        sizes = np.array([r.n_samples for r in results], dtype=float)
        q = n_free_parameters(K, d)
        warm = {}
        if own:
            # Cross-scores: every model on every machine's own points. Where most machines stop in
            # a poor optimum (label skew: one expert dominates a shard and misleads k-means) the
            # median rule cannot see it, but a good fit from another machine beats the poor one on
            # the poor one's own data; the refit then starts from that better model.
            params = [mdl.params_ for mdl in self.local_models_]
            ll = support_loglik(params, Xs, ys)  # (M', S): every model at every support point, one pass
            for own_pos, m in enumerate(self.machines_):
                sel = holder == m
                if not sel.any():
                    continue
                cross = ll[:, sel].mean(axis=1)  # each model on machine m's own points
                scores[m] = cross[own_pos]
                cross[own_pos] = -np.inf
                best = int(np.argmax(cross))
                if best != own_pos and beaten(ll[own_pos, sel], ll[best, sel], q, sizes[m]):
                    warm[int(m)] = params[best]
        else:
            scores[self.machines_] = score_of(None, [mdl.params_ for mdl in self.local_models_])
        threshold, flagged = flag_poor_fits(scores, sizes, q)
        flagged[list(warm)] = True
        report = ScreeningReport(scores, threshold, [int(m) for m in np.flatnonzero(flagged)])
        self.timings_["screening"] = time.perf_counter() - t0
        self.timings_["refit"] = np.zeros(0)
        kept = {r.index: r for r in results if r.error is None}
        up = np.zeros(M)
        if report.flagged and self.local_check == "off":
            report.actions = dict.fromkeys(report.flagged, "kept")
        elif report.flagged:
            refits = {}
            if self.local_check == "refit":
                em = dict(self._em_params(), n_init=max(REFIT_INIT_FACTOR * self.n_init, REFIT_MIN_INIT))
                ems = {m: dict(em, init=warm[m]) if m in warm else em for m in report.flagged}
                # A seed of its own per refit, derived from the machine's: reproducible, and not
                # the restarts that already failed.
                seeds = {m: np.random.SeedSequence(machine_seeds[m].entropy,
                                                   spawn_key=(*machine_seeds[m].spawn_key, 1))
                         for m in report.flagged}
                out = machines.run(_fit_task, report.flagged, lambda m: (m, K, ems[m], seeds[m]))
                refits = {m: res for m, (res, _) in out.items()}
                self.timings_["refit"] = np.array([refits[m].time for m in report.flagged])
            for m in report.flagged:
                res = refits.get(m)
                if res is not None and res.error is None:
                    score = float(score_of(m, [res.model.params_])[0])
                    report.refit_scores[m] = score
                    up[m] += n_free_parameters(K, d) + 1
                    if score >= threshold[m]:
                        kept[m] = res
                        report.actions[m] = "refit"
                        continue
                    if own:
                        # A machine may be the only one holding its part of x: keep its better fit
                        # rather than drop it.
                        if score > scores[m]:
                            kept[m] = res
                        report.actions[m] = "refit" if score > scores[m] else "kept"
                        continue
                if own:
                    report.actions[m] = "kept"
                    continue
                report.actions[m] = "dropped"
                del kept[m]
                self.skipped_[m] = (
                    f"local fit scored {scores[m]:.4g} on the support, below the screening "
                    f"threshold {threshold[m]:.4g}" + (" (also after a refit)" if m in refits else "")
                )
            if not kept:
                raise LocalFitError("the screening dropped every machine; pass local_check='off'.")
            dropped = sorted(m for m, a in report.actions.items() if a == "dropped")
            if dropped:
                warnings.warn(
                    f"the screening left out machine(s) {dropped}: their local fits scored far below "
                    "the others on the supporting sample (a poor local optimum); the others are "
                    "aggregated with renormalised weights.",
                    RuntimeWarning,
                    stacklevel=5,
                )
            self._set_kept([kept[m] for m in sorted(kept)])
        self.screening_ = report
        self.local_scores_ = scores
        self.flagged_ = report.flagged
        # One-shot communication: every machine's model and row count, its share of the support pairs.
        self.communication_ = {"one_shot_up": up + n_free_parameters(K, d) + 1 + support_shares * (d + 1)}

    def _support_machines(self):
        """Index into ``machines_`` of every support point's machine (-1: not aggregated)."""
        pos = np.full(self.n_machines, -1)
        pos[self.machines_] = np.arange(len(self.machines_))
        return pos[self.support_machine_]

    def _decide_machine_weights(self, Xs):
        """Resolve ``machine_weights`` (the "auto" test) before the screening, which assumes
        exchangeable machines and is skipped for covariate weights."""
        t0 = time.perf_counter()
        self.machine_weights_test_ = None
        if self.machine_weights == "auto" and getattr(self, "_random_split", False):
            used = "constant"  # the package shuffled the rows: P(machine | x) = n_m / n exactly
        else:
            mach = self._support_machines()
            ok = mach >= 0
            used, self.machine_weights_test_ = decide_machine_weights(
                self.machine_weights, Xs[ok], mach[ok], len(self.machines_))
        self.machine_weights_used_ = used
        self.timings_["machine_weights"] = (time.perf_counter() - t0 if used == "covariate"
                                            or self.machine_weights_test_ is not None else 0.0)

    def _resolve_machine_weights(self, Xs):
        """The large mixture's machine weights: the shares (M',) or w_m(x_s) at the support (S, M')."""
        self.machine_weight_model_ = None
        self.support_weights_ = None
        if self.machine_weights_used_ == "constant":
            return self.weights_
        t0 = time.perf_counter()
        # Support points of failed machines still serve the reduction, not the weights' fit.
        mach = self._support_machines()
        ok = mach >= 0
        self.machine_weight_model_ = fit_machine_weights(Xs[ok], mach[ok], len(self.machines_))
        self.support_weights_ = self.machine_weight_model_.predict_proba(Xs)
        self.timings_["machine_weights"] += time.perf_counter() - t0
        return self.support_weights_

    def _reduce(self, Xs, ys, seed, progress, machines=None, machine_seeds=None):
        weights = self._resolve_machine_weights(Xs)
        cb = None
        if progress is not None:
            def cb(i, state):
                progress("mm", state.iteration, self.mm_max_iter)

        def mm(models, scores):
            c0 = time.thread_time()
            red = reduce_mixtures(
                [m.params_ for m in models],
                weights,
                Xs,
                self.n_experts,
                y_support=ys,
                n_init=self.mm_n_init,
                local_starts=self.mm_local_starts,
                local_scores=scores[self.machines_],
                max_iter=self.mm_max_iter,
                tol=self.mm_tol,
                variance_update=self.variance_update,
                gate_targets=self.gate_targets,
                random_state=seed,
                callback=cb,
            )
            return red, time.thread_time() - c0

        red, cpu = mm(self.local_models_, self.local_scores_)
        self.timings_["warm_refit"] = np.zeros(0)
        if machines is not None and self.machine_weights_used_ == "covariate" and self.local_check == "refit":
            # Machines holding different data may each see some experts too rarely to resolve them
            # (label skew: k-means on a shard 80 % one expert splits that expert and merges the
            # rest), so every local fit, and with them the reduction, misses an expert, and no
            # machine has a better model to refit from. The reduced model pools what each machine
            # saw often: every machine refits from it and offers that fit where it reaches a better
            # optimum of its own shard's likelihood; the reduction of the improved fits is kept if
            # it explains the support pairs better (docs/method.md, section 9).
            models, scores = self._warm_refits(machines, machine_seeds, red.params, Xs, ys)
            if models is not None:
                red2, cpu2 = mm(models, scores)
                first = support_loglik([red.params, red2.params], Xs, ys).mean(axis=1)
                self.screening_.warm_refit_support = tuple(float(v) for v in first)
                spent = red.time + red2.time
                if first[1] >= first[0]:
                    self.local_models_, self.local_scores_ = models, scores
                    self.local_n_experts_ = np.array([mdl.params_.n_experts for mdl in models])
                    red = red2
                else:
                    self.screening_.warm_refits = {}
                red.time = spent
                cpu += cpu2
        self.reduction_ = red
        self.one_shot_params_ = red.params
        self._set_model(red.params)
        self.mm_history_ = red.objective_history
        self.transport_plan_ = red.plan
        self.timings_["reduction"] = red.time
        self.timings_["reduction_cpu"] = cpu

    def _warm_refits(self, machines, machine_seeds, params, Xs, ys):
        """Every aggregated machine refits from ``params``. Returns the local models and support
        scores with the refits that reached a better optimum, or (None, None) if none did."""
        K, d = self.n_experts, Xs.shape[1]
        q = n_free_parameters(K, d)
        em = dict(self._em_params(), init=params)
        em.pop("local_experts", None)  # a K-expert warm start; BIC's choice is weighed below
        pos = {int(m): i for i, m in enumerate(self.machines_)}
        # A seed of its own (re-seeding a starved expert draws from it), derived from the machine's.
        seeds = {m: np.random.SeedSequence(machine_seeds[m].entropy, spawn_key=(*machine_seeds[m].spawn_key, 2))
                 for m in pos}
        out = machines.run(_fit_task, list(pos), lambda m: (m, K, em, seeds[m]))
        self.timings_["warm_refit"] = np.array([out[m][0].time for m in sorted(out)])
        comm = self.communication_
        comm["warm_refit_down"] = np.zeros(self.n_machines)
        comm["warm_refit_down"][list(pos)] = q
        models, scores, gains = list(self.local_models_), self.local_scores_.copy(), {}
        for m, (res, _) in sorted(out.items()):
            own = models[pos[m]]
            if res.error is None and better_optimum(own.loglik_, res.model.loglik_, res.n_samples, q,
                                                    own.n_parameters()):
                gains[m] = (res.model.loglik_ - own.loglik_) / res.n_samples
                models[pos[m]] = res.model
                comm["one_shot_up"][m] += q + 1
                sel = self.support_machine_ == m
                if sel.any():
                    scores[m] = support_scores([res.model.params_], Xs[sel], ys[sel], max_points=SCORE_POINTS)[0]
        self.screening_.warm_refits = gains
        return (models, scores) if gains else (None, None)

    def _set_model(self, params):
        self.reduced_ = MixtureOfExperts.from_params(params)
        self.params_ = params
        self.gates_, self.experts_, self.variances_ = params.gates, params.experts, params.variances
        self.n_features_in_ = params.n_features

    def _refine(self, machines, Xs, ys, progress):
        """``refine_rounds`` distributed EM rounds from the reduced model; timings and traffic."""
        R = self.refine_rounds
        M = len(self.timings_["local"])
        everyone = range(M)

        def run(fn, args):
            out = machines.run(fn, everyone, lambda m: args)
            return [out[m] for m in everyone]

        up = down = np.zeros(M)
        self.refine_loglik_ = np.zeros(0)
        self.timings_["rounds"] = np.zeros(0)
        if R > 0:
            state = _refine.RoundState.from_params(self.params_, Standardizer.fit(Xs, ys))
            res = _refine.run_rounds(run, M, int(sum(self._n_samples_all)), state, R, var_floor=self.var_floor,
                                     progress=progress)
            self._set_model(res.state.to_params())
            self.refine_loglik_ = res.loglik
            self.timings_["rounds"] = res.times
            up, down = res.up / R, res.down / R
        comm = self.communication_
        comm["round_up"], comm["round_down"] = up, down
        comm["one_shot_total"] = float(comm["one_shot_up"].sum() + comm.get("warm_refit_down", np.zeros(0)).sum())
        comm["rounds_total"] = float(R * (up.sum() + down.sum()))
        comm["total"] = comm["one_shot_total"] + comm["rounds_total"]
        t = self.timings_
        refits = float(np.max(t["refit"], initial=0.0)) + float(np.max(t["warm_refit"], initial=0.0))
        t["learning_time"] = (t["local_max"] + t["screening"] + refits
                              + t["machine_weights"] + t["reduction"] + float(np.sum(t["rounds"])))
        t["learning_time_cpu"] = (t["local_cpu_max"] + t["screening"] + refits
                                  + t["machine_weights"] + t["reduction_cpu"] + float(np.sum(t["rounds"])))


@contextmanager
def _all_or_nothing(est):
    """A refit that raises leaves ``est`` exactly as it was (every fitted attribute)."""
    before = dict(est.__dict__)
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(before)
        raise
