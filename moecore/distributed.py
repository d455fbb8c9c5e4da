"""Distribution over machines: shard the data, fit local MoEs in parallel, reduce them.

The local fits are independent, so they run with joblib (processes by default) or on a
``dask.distributed`` cluster.  Every random choice is drawn from child seeds of one
``numpy.random.SeedSequence``, one per machine, so the result depends on ``random_state`` alone and
not on ``n_jobs``, the backend or the order in which machines finish.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_feature_names

from ._validation import check_nonconstant_columns, check_random_state_seed, check_response_scale, check_Xy
from .costs import FitCosts
from .dispatch import Runner
from .em import MixtureOfExperts, MoEPredictorMixin, min_samples
from .local import LocalFitResult, collect_local_fits, derived_seed, fit_task
from .machine_weights import choose_machine_weights, covariate_weights, support_positions
from .params import (
    DISTRIBUTED_PARAMETERS,
    check_distributed_sizes,
    check_parameters,
    em_settings,
)
from .reduction import reduce_mixtures
from .refine import rounds_on_machines, warm_refits
from .screening import REFIT_INIT_FACTOR, REFIT_MIN_INIT, n_free_parameters, screen_local_fits, support_loglik
from .shards import ShardJob
from .shards import fit_shards as _fit_shards
from .splits import Split, as_split, machine_labels, shards_from_labels, split_rows

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
        as_split(self.split)
        K, M = values["n_experts"], values["n_machines"]
        return K, M, check_distributed_sizes(K, M, self.support_size, n, d, min_samples(K, d))

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
            X_in, (X, y) = X, check_Xy(X, y)
            (n, d), (K, M, S) = X.shape, self._check_parameters(*X.shape)
            check_nonconstant_columns(X)
            check_response_scale(y)
            seed_split, seed_support, seed_mm, machine_seeds = _seeds(self.random_state, M)
            split = as_split(self.split)
            shards = (split_rows(split, X, M, np.random.default_rng(seed_split), min_samples(K, d))
                      if machine is None else shards_from_labels(machine, n, M))
            support = np.sort(np.random.default_rng(seed_support).choice(n, size=S, replace=False))
            self.shards_, self.support_indices_ = shards, support
            self.support_machine_ = machine_labels(shards, n)[support]
            with self._machine_data(X, y, shards) as machines:
                results = self._fit_local(machines, K, shards, machine_seeds, progress)
                # With the package's own random split P(machine | x) = n_m / n is known.
                random_split = machine is None and isinstance(split, Split) and split.kind == "random"
                self._aggregate(machines, results, X[support], y[support], np.bincount(self.support_machine_,
                                minlength=M), machine_seeds, seed_mm, progress, random_split)
            _check_feature_names(self, X_in, reset=True)
            self._finish_costs(t0)
            return self

    def _fit_local(self, machines, K, shards, machine_seeds, progress):
        """Every machine fits its local MoE on its shard: a list (M,) of LocalFitResult."""
        em = self._em_params()
        out = machines.run(fit_task, range(len(machine_seeds)), lambda m: (m, K, em, machine_seeds[m]), progress,
                           "local", lost=lambda m, why: LocalFitResult(m, len(shards[m]), None, np.nan, why))
        return [out[m][0] for m in range(len(machine_seeds))]

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
            # The same seeds as fit(): the machines' EM seeds are identical to fit()'s.
            _seed_split, seed_support, seed_mm, machine_seeds = _seeds(self.random_state, M)

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
                self._aggregate(data.machines, data.results, data.X_support, data.y_support, data.shares,
                                machine_seeds, seed_mm, progress, random_split=False)
                self.costs_.read = data.read_times

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
            self._finish_costs(t0)
            return self

    # ------------------------------------------------------------------ after the local fits
    def _aggregate(self, machines, results, Xs, ys, support_shares, machine_seeds, seed_mm, progress, random_split):
        """The server's part of the algorithm, shared by :meth:`fit` and :meth:`fit_shards`:
        collect the local fits, choose the machine weights, screen, reduce, refine.

        results : list (M,) of LocalFitResult ; Xs (S, d), ys (S,) the supporting sample ;
        support_shares : (M,) support points each machine contributed ;
        machines : :class:`~moecore.dispatch.MachineData`, for refits and refinement rounds.
        """
        kept, self.skipped_ = collect_local_fits(results, self.on_error, self.n_experts, self.max_iter)
        self._set_kept(kept)
        self._n_samples_all = [r.n_samples for r in results]
        self.support_X_, self.support_y_ = Xs, ys
        q = n_free_parameters(self.n_experts, Xs.shape[1])
        # One-shot communication: every machine's model and row count, its share of the support pairs.
        self.costs_ = FitCosts(np.array([r.time for r in results]), np.array([r.cpu_time for r in results]),
                               q + 1 + support_shares * (Xs.shape[1] + 1))
        self._choose_machine_weights(Xs, random_split)
        self._screen(machines, results, Xs, ys, machine_seeds)
        self._reduce(Xs, ys, seed_mm, progress, machines, machine_seeds)
        self._refine(machines, Xs, ys, progress)

    def _set_kept(self, kept):
        """The aggregated machines: their models, indices and renormalised weights n_m / n."""
        self.local_models_ = [r.model for r in kept]
        self.local_n_experts_ = np.array([m.params_.n_experts for m in self.local_models_])
        self.machines_ = np.array([r.index for r in kept])
        sizes = np.array([r.n_samples for r in kept], dtype=float)
        self.weights_ = sizes / sizes.sum()

    def _refit(self, machines, machine_seeds, em_of, purpose):
        """A callable refitting some machines on their shards with the EM settings ``em_of(m)``."""
        def refit(todo, K=self.n_experts):
            out = machines.run(fit_task, todo, lambda m: (m, K, em_of(m), derived_seed(machine_seeds[m], purpose)))
            return {m: res for m, (res, _) in out.items()}
        return refit

    def _screen(self, machines, results, Xs, ys, machine_seeds):
        """Score every local model on the support pairs; refit or drop the poor ones."""
        em = dict(self._em_params(), n_init=max(REFIT_INIT_FACTOR * self.n_init, REFIT_MIN_INIT))
        warm_start = {}
        refit = self._refit(machines, machine_seeds, lambda m: dict(em, init=warm_start[m]) if m in warm_start
                            else em, purpose=1)
        out = screen_local_fits(results, self.local_models_, self.machines_, Xs, ys, self.support_machine_,
                                local_check=self.local_check, own=self.machine_weights_used_ == "covariate",
                                refit=lambda todo, warm: warm_start.update(warm) or refit(todo))
        if out.report.flagged and self.local_check != "off":
            self.skipped_.update(out.dropped)
            self._set_kept([out.kept[m] for m in sorted(out.kept)])
        self.costs_.screening, self.costs_.refit = out.seconds, out.refit_times
        self.costs_.one_shot_up = out.refit_up + self.costs_.one_shot_up
        self.screening_, self.local_scores_, self.flagged_ = out.report, out.scores, out.report.flagged

    def _choose_machine_weights(self, Xs, random_split):
        """Resolve ``machine_weights`` (the "auto" test) before the screening, which treats
        exchangeable machines and covariate ones differently."""
        t0 = time.perf_counter()
        pos = support_positions(self.support_machine_, self.machines_, self.n_machines)
        self.machine_weights_used_, self.machine_weights_test_ = choose_machine_weights(
            self.machine_weights, Xs, pos, len(self.machines_), random_split=random_split)
        if self.machine_weights_used_ == "covariate" or self.machine_weights_test_ is not None:
            self.costs_.machine_weights = time.perf_counter() - t0

    def _large_mixture_weights(self, Xs):
        """The large mixture's machine weights: the shares (M',) or w_m(x_s) at the support (S, M')."""
        self.machine_weight_model_ = self.support_weights_ = None
        if self.machine_weights_used_ == "constant":
            return self.weights_
        t0 = time.perf_counter()
        pos = support_positions(self.support_machine_, self.machines_, self.n_machines)
        self.machine_weight_model_, self.support_weights_ = covariate_weights(Xs, pos, len(self.machines_))
        self.costs_.machine_weights += time.perf_counter() - t0
        return self.support_weights_

    def _reduce(self, Xs, ys, seed, progress, machines, machine_seeds):
        """The OT/MM reduction of the local models; with covariate weights and local_check="refit",
        every machine refits from the reduced model and the reduction of the improved fits is kept
        if it explains the support pairs better (:func:`~moecore.refine.warm_refits`)."""
        weights = self._large_mixture_weights(Xs)
        red, cpu = self._mm(self.local_models_, self.local_scores_, weights, Xs, ys, seed, progress)
        if self.machine_weights_used_ == "covariate" and self.local_check == "refit":
            em = dict(self._em_params(), init=red.params)
            em.pop("local_experts", None)  # a K-expert warm start; BIC's choice is weighed by the refit's test
            warm = warm_refits(self._refit(machines, machine_seeds, lambda m: em, purpose=2), red.params,
                               self.local_models_, self.machines_, self.local_scores_, Xs, ys,
                               self.support_machine_, self.n_machines)
            costs = self.costs_
            costs.warm_refit, costs.warm_refit_down = warm.times, warm.down
            costs.one_shot_up = costs.one_shot_up + warm.up
            self.screening_.warm_refits = warm.gains
            if warm.gains:
                red2, cpu2 = self._mm(warm.models, warm.scores, weights, Xs, ys, seed, progress)
                first = support_loglik([red.params, red2.params], Xs, ys).mean(axis=1)
                self.screening_.warm_refit_support = tuple(float(v) for v in first)
                spent = red.time + red2.time
                if first[1] >= first[0]:
                    self.local_models_, self.local_scores_ = warm.models, warm.scores
                    self.local_n_experts_ = np.array([mdl.params_.n_experts for mdl in warm.models])
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
        self.costs_.reduction, self.costs_.reduction_cpu = red.time, cpu

    def _mm(self, models, scores, weights, Xs, ys, seed, progress):
        """One reduction of ``models`` with this estimator's MM settings; (result, CPU seconds)."""
        c0 = time.thread_time()
        red = reduce_mixtures(
            [m.params_ for m in models], weights, Xs, self.n_experts, y_support=ys, n_init=self.mm_n_init,
            local_starts=self.mm_local_starts, local_scores=scores[self.machines_], max_iter=self.mm_max_iter,
            tol=self.mm_tol, variance_update=self.variance_update, gate_targets=self.gate_targets,
            random_state=seed,
            callback=None if progress is None else lambda i, state: progress("mm", state.iteration, self.mm_max_iter),
        )
        return red, time.thread_time() - c0

    def _set_model(self, params):
        self.reduced_ = MixtureOfExperts.from_params(params)
        self.params_ = params
        self.gates_, self.experts_, self.variances_ = params.gates, params.experts, params.variances
        self.n_features_in_ = params.n_features

    def _refine(self, machines, Xs, ys, progress):
        """``refine_rounds`` distributed EM rounds from the reduced model."""
        R, M, costs = self.refine_rounds, len(self.costs_.local), self.costs_
        self.refine_loglik_ = np.zeros(0)
        costs.round_up = costs.round_down = np.zeros(M)
        if R > 0:
            res = rounds_on_machines(machines, self.params_, Xs, ys, R, M, int(sum(self._n_samples_all)),
                                     var_floor=self.var_floor, progress=progress)
            self._set_model(res.state.to_params())
            self.refine_loglik_ = res.loglik
            costs.rounds, costs.round_up, costs.round_down, costs.n_rounds = res.times, res.up / R, res.down / R, R

    def _finish_costs(self, t0):
        """The fit's wall clock, and the ``timings_`` / ``communication_`` views of ``costs_``."""
        self.costs_.wall = time.perf_counter() - t0
        self.timings_ = self.costs_.timings()
        self.communication_ = self.costs_.communication()


def _seeds(random_state, n_machines):
    """The fit's seeds: split, support, MM and one per machine, children of one SeedSequence."""
    seed_split, seed_support, seed_mm, seed_machines = check_random_state_seed(random_state).spawn(4)
    return seed_split, seed_support, seed_mm, seed_machines.spawn(n_machines)


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
