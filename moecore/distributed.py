"""Distribution over machines: shard the data, fit local MoEs in parallel, reduce them.

The local fits are independent, so they run with joblib (processes by default) or on a
``dask.distributed`` cluster.  Every random choice is drawn from child seeds of one
``numpy.random.SeedSequence``, one per machine, so the result depends on ``random_state`` alone and
not on ``n_jobs``, the backend or the order in which machines finish.
"""

from __future__ import annotations

import functools
import time

import numpy as np
from sklearn.base import BaseEstimator

from ._validation import (
    check_2d,
    check_feature_names,
    check_nonconstant_columns,
    check_random_state_seed,
    check_response_scale,
    check_Xy,
)
from ._warn import warn
from .collinear import warn_collinear
from .costs import FitCosts
from .dispatch import Runner, SchedulerPickling
from .em import (
    ConvergenceWarning,
    MixtureOfExperts,
    MoEPredictorMixin,
    VarianceFloorWarning,
    floor_message,
    warn_degenerate,
)
from .local import collect_local_fits, derived_seed, fit_local_models, kept_machines, refitter, with_pilot
from .machine_weights import choose_machine_weights, covariate_weights, support_positions
from .outliers import warn_outliers
from .params import (
    DISTRIBUTED_PARAMETERS,
    MAX_RESTARTS,
    check_distributed_sizes,
    check_parameters,
    em_settings,
    min_samples,
    mm_settings,
    n_free_parameters,
    parameters_doc,
)
from .reduction import expert_spread, reduce_mixtures
from .refine import rounds_on_machines, warm_refit_reduction
from .screening import REFIT_INIT_FACTOR, REFIT_MIN_INIT, screen_local_fits, second_look
from .shard_check import AccuracyWarning, check_expert_rows, check_fit, machine_errors, warn_small_shards
from .shards import ShardJob
from .shards import fit_shards as _fit_shards
from .splits import Split, as_split, place_rows

__all__ = ["DistributedMoE"]


def _seeds(random_state, n_machines):
    """The fit's seeds: split, support, MM and one per machine, children of one SeedSequence."""
    seed_split, seed_support, seed_mm, seed_machines = check_random_state_seed(random_state).spawn(4)
    return seed_split, seed_support, seed_mm, seed_machines.spawn(n_machines)


def _shard_machines(est):
    """M for :meth:`DistributedMoE.fit_shards`, which has no pilot: its workers draw the supporting
    sample with their fits, and the pilot is fitted to it before them."""
    if DISTRIBUTED_PARAMETERS["pilot"].check(est.pilot):
        raise ValueError("pilot=True needs the supporting sample before the local fits, and fit_shards' workers "
                         "draw it with their fits: use fit, or pilot=False.")
    if as_split(est.split) != Split("random"):
        raise ValueError(f"split={est.split!r} cannot apply to fit_shards: each file is one machine's rows as they "
                         "are. Leave split at 'random', or pass the rows to fit.")
    return DISTRIBUTED_PARAMETERS["n_machines"].check(est.n_machines)


def _extra_up(est, sent):
    """(M,) what goes up with every model sent in ``sent`` (M,) (numbers per machine, 0 where none)
    beside its parameters: its squared errors and log-likelihood on its rows (for the check after the
    fit) and, when the reduction debiases its variances, its K net variances."""
    return (np.asarray(sent) > 0) * (2 + est.n_experts * (est.variance_update == "debiased"))


def _screening_exchange(est, machines, machine_seeds):
    """The screening's exchange with the machines (the ``refit`` of
    :func:`~moecore.screening.screen_local_fits`): the flagged machines refit, from another machine's
    better model or with more restarts, and the compared ones run :func:`~moecore.screening.second_look`;
    {machine: SecondLook}, None for a machine lost with its worker."""
    # At most MAX_RESTARTS, the bound a fit accepts: 4 x 300 restarts were refused in the refit.
    em = dict(em_settings(est), n_init=min(max(REFIT_INIT_FACTOR * est.n_init, REFIT_MIN_INIT), MAX_RESTARTS))

    def exchange(flagged, warm, compared, compare_of):
        args = {m: (m, est.n_experts, dict(em, init=warm[m]) if m in warm else em,
                    derived_seed(machine_seeds[m], 1), est.local_experts) for m in flagged}
        args.update({m: (m, est.n_experts, em, derived_seed(machine_seeds[m], 1), "fixed", compare_of(m))
                     for m in compared})
        out = machines.run(second_look, list(args), lambda m: args[m], lost=lambda m, why: None)
        return {m: look for m, (look, _) in out.items()}
    return exchange


def floored_machines(est):
    """{machine: its local model's experts at the variance floor} (:attr:`MixtureOfExperts.floored_experts_`),
    for the machines whose local model has any: a near-noiseless response, whose variances the floor sets."""
    return {int(m): lm.floored_experts_.tolist() for m, lm in zip(est.machines_, est.local_models_, strict=True)
            if getattr(lm, "floored_experts_", np.empty(0)).size}


def _check_fit(est, machines, quiet):
    """After the fit, every aggregated machine measures the final model on its own rows (three numbers
    up, the model down) and :func:`~moecore.shard_check.check_fit` compares the training RPE and the
    log-likelihood with the local models' own, and :func:`~moecore.shard_check.check_expert_rows` each
    reduced expert's rows per machine with its parameters; an AccuracyWarning unless ``quiet``.

    With covariate weights the machines hold different x: n / M is not the rows of an expert on the
    machines that hold it (no rows check), and a local model is a yardstick on its own rows only when the
    package split the rows by x (region, k-means), where it flagged 80 of 85 reductions that lost more than
    0.1 nats per point against a global EM of the same K and 3 of 123 within 0.05 (docs/method.md, section
    3b, "Small shards, and the check after the fit"). A label split or given partition can hand a machine
    one expert's rows, which every mixture fits worse than its local model: no check there (None)."""
    est.fit_check_ = est.expert_rows_ = None
    if not quiet:  # from the support pairs, which the server holds: whatever the machine weights
        warn_degenerate(est.params_, est.support_X_, est.support_y_, rows_name="support points")
        floored = floored_machines(est)
        if floored:
            warn(floor_message(f"experts of the local fits of machine(s) {list(floored)[:10]}"
                               f"{' ...' if len(floored) > 10 else ''} ({len(floored)} of {len(est.machines_)})",
                               est.var_floor), VarianceFloorWarning)
        if not est.reduction_.converged:  # as a local EM's: mm_max_iter=1 stopped the MM without a word
            warn(f"the MM reduction stopped at mm_max_iter={est.mm_max_iter} before R settled (relative decrease "
                 f"above mm_tol={est.mm_tol:g}): raise mm_max_iter.", ConvergenceWarning)
    n_kept = sum(est._n_samples_all[m] for m in est.machines_)
    # The server's part, from the plan and the local models it holds: whatever the machine weights.
    est.expert_spread_ = expert_spread(est.one_shot_params_, [m.params_ for m in est.local_models_],
                                       est._large_mixture_weights(est.support_X_), est.support_X_,
                                       est.transport_plan_, n_kept, est.refine_rounds)
    if not est.expert_spread_.ok and not quiet:
        warn(est.expert_spread_.message, AccuracyWarning)
    covariate = est.machine_weights_used_ == "covariate"
    if covariate and not getattr(est, "_x_split", False):
        return
    if not covariate:  # the server's part, from the reduced gates on the support's x: no exchange
        est.expert_rows_ = check_expert_rows(est.params_, est.support_X_, n_kept, len(est.machines_),
                                             est.refine_rounds)
        if not est.expert_rows_.ok and not quiet:
            warn(est.expert_rows_.message, AccuracyWarning)
    out = machines.run(machine_errors, est.machines_, lambda m: (est.params_,), lost=lambda m, why: None)
    done = [i for i, m in enumerate(est.machines_) if out[m][0] is not None]
    if not done:
        return
    q, machines_done = n_free_parameters(est.params_.n_experts, est.params_.n_features), est.machines_[done]
    est.fit_check_ = check_fit([est.local_models_[i].train_sse_ for i in done], [out[m][0] for m in machines_done],
                               local_loglik=[est.local_models_[i].train_loglik_ for i in done],
                               sizes=[est._n_samples_all[m] for m in machines_done], n_params=q,
                               refine_rounds=est.refine_rounds,
                               rows_per_parameter=min(est._n_samples_all[m] for m in machines_done) / q,
                               machines_differ=covariate)
    est.costs_.add_check(max(out[m][1] for m in machines_done), machines_done, q)
    if not est.fit_check_.ok and not quiet:
        warn(est.fit_check_.message, AccuracyWarning)


def _all_or_nothing(fit):
    """A fit method that raises (a failed machine, a bad argument) leaves the estimator exactly as
    it was, never ``shards_`` of the new data beside the old parameters; one that returns has its
    wall clock and the ``timings_`` / ``communication_`` views of its costs set, and returns it."""
    @functools.wraps(fit)
    def fitted(est, *args, **kwargs):
        before, t0 = dict(est.__dict__), time.perf_counter()
        # A fit starts from none of the last one's learned attributes: fit_shards' shard_paths_ and
        # shard_sizes_ outlived a later fit, describing files that fit never read.
        for name in [k for k in est.__dict__ if k.endswith("_") and not k.startswith("_")]:
            del est.__dict__[name]
        try:
            fit(est, *args, **kwargs)
        except BaseException:
            est.__dict__.clear()
            est.__dict__.update(before)
            raise
        est.costs_.wall = time.perf_counter() - t0
        est.timings_, est.communication_ = est.costs_.timings(), est.costs_.communication()
        return est
    return fitted


class DistributedMoE(SchedulerPickling, MoEPredictorMixin, BaseEstimator):
    """Distributed learning of a K-expert MoE: M local EM fits, then the OT/MM reduction.

    :meth:`fit` is the paper's algorithm, one step per module: split the rows (:mod:`~moecore.splits`),
    fit a local MoE on every shard in parallel (:mod:`~moecore.local`, :mod:`~moecore.dispatch`), choose
    the machines' weights in the large mixture (:mod:`~moecore.machine_weights`), screen the local fits
    (:mod:`~moecore.screening`), reduce the M K local experts to K (:mod:`~moecore.reduction`) and run
    ``refine_rounds`` distributed EM rounds (:mod:`~moecore.refine`).  The local fits share the EM
    settings (:data:`~moecore.params.EM_SETTINGS`) of :class:`~moecore.em.MixtureOfExperts`.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    local_models_, machines_, local_n_experts_, weights_ : the aggregated machines (M'): their
        MixtureOfExperts, indices, numbers of experts and renormalised shares n_m / n
    skipped_ : dict {{machine: reason}}, failed fits and machines the screening dropped
    screening_, flagged_, local_scores_ : ScreeningReport, machines flagged, support scores (M,)
    shards_, support_indices_, support_machine_ : the rows of each machine (M index arrays), the
        supporting sample's rows (S,) and the machine of each (S,)
    reduction_, transport_plan_, mm_history_ : ReductionResult, TransportPlan, MM objective per iteration
    one_shot_params_, reduced_ : the reduced model before the rounds (MoEParams) and the final
        MixtureOfExperts: ``gates_`` (d+1, K), ``experts_`` (d+1, K), ``variances_`` (K,)
    machine_weights_used_, machine_weights_test_, machine_weight_model_, support_weights_ :
        "constant" or "covariate"; the AssociationTest of "auto" (or None); w_m(x) and its values
        (S, M') at the support (covariate weights; else None)
    refine_loglik_ : ndarray (refine_rounds + 1,), pooled training log-likelihood of the one-shot
        model and after each round (non-decreasing); empty without rounds
    expert_rows_ : ExpertRows or None, each reduced expert's rows per machine against its parameters
        (:func:`~moecore.shard_check.check_expert_rows`; None with covariate weights); expert_spread_ : the
        local lines' spread against their noise (:func:`~moecore.reduction.expert_spread`)
    fit_check_ : FitCheck or None, the final model's training RPE and log-likelihood against the local models'
    costs_ : FitCosts, every step's seconds and every machine's traffic: ``learning_time`` (the
        paper's figure extended by our steps) and ``learning_time_parts()``; ``timings_`` and
        ``communication_`` are its dict views
    """

    def __init__(
        self, n_experts=2, n_machines=4, *, support_size=None, n_jobs=None, backend="loky", random_state=None,
        init="portfolio", n_init=1, max_iter=300, tol=1e-6, var_floor=1e-6, gate_steps=1, acceleration="squarem",
        mm_n_init=3, mm_max_iter=200, mm_tol=1e-8, mm_local_starts=1, variance_update="debiased",
        gate_targets="component", local_check="refit", refine_rounds=0, on_error="raise", scheduler=None,
        split="random", machine_weights="auto", local_experts="fixed", pilot=False,
    ):
        self.n_experts, self.n_machines, self.support_size, self.n_jobs = n_experts, n_machines, support_size, n_jobs
        self.backend, self.random_state, self.scheduler, self.init = backend, random_state, scheduler, init
        self.n_init, self.max_iter, self.tol, self.var_floor = n_init, max_iter, tol, var_floor
        self.gate_steps, self.acceleration = gate_steps, acceleration
        self.mm_n_init, self.mm_max_iter, self.mm_tol = mm_n_init, mm_max_iter, mm_tol
        self.mm_local_starts, self.variance_update, self.gate_targets = mm_local_starts, variance_update, gate_targets
        self.local_check, self.refine_rounds, self.on_error, self.split = local_check, refine_rounds, on_error, split
        self.machine_weights, self.local_experts, self.pilot = machine_weights, local_experts, pilot

    # ------------------------------------------------------------------ validation
    def check_parameters(self, n_samples, n_features):
        """Check the parameters for data of this size before any work; returns (K, M, S).

        Raises the ValueError or TypeError that :meth:`fit` would raise (e.g. too many machines
        for n), so a caller can refuse settings before simulating or loading anything.
        """
        values, (n, d) = check_parameters(DISTRIBUTED_PARAMETERS, self), (int(n_samples), int(n_features))
        as_split(self.split)
        K, M = values["n_experts"], values["n_machines"]
        return K, M, check_distributed_sizes(K, M, self.support_size, n, d, min_samples(K, d))

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
        return self._fit(X, y, machine=machine, progress=progress)

    @_all_or_nothing
    def _fit(self, X, y, *, machine=None, progress=None, quiet=False):
        """:meth:`fit`; ``quiet`` leaves out the warnings on machines and the check (the attributes record them),
        for a caller running many fits: process-wide warning filters are not thread-safe."""
        check_2d(X)
        X_in, y_in, (X, y) = X, y, check_Xy(X, y)
        check_feature_names(self, X_in, reset=True)  # names a fit refuses (repeated, mixed types), before any work
        d, (K, M, S) = X.shape[1], self.check_parameters(*X.shape)
        x_moments = check_nonconstant_columns(X)
        check_response_scale(y)
        warn_outliers(X, y, X_in=X_in, y_in=y_in)
        warn_collinear(X, *x_moments, X_in=X_in)
        rows, seed_mm, machine_seeds = _placed_rows(self, X, machine, K, M, S)
        self.shards_, self.support_indices_, self.support_machine_ = rows.shards, rows.support, rows.support_machine
        self._x_split = rows.x_split
        em, pilot = with_pilot(self.pilot, em_settings(self), X[rows.support], y[rows.support], K, seed_mm)
        with self._machine_data(X, y, rows.shards) as machines:
            results = fit_local_models(machines, K, em, machine_seeds, [len(r) for r in rows.shards],
                                       progress, self.local_experts)
            self._aggregate(machines, results, X[rows.support], y[rows.support], rows.support_shares(M),
                            machine_seeds, seed_mm, progress, rows.random_split, quiet)
        self.costs_.add_pilot(pilot, n_free_parameters(K, d))

    def _runner(self):
        """Where the machines' tasks run: this estimator's backend, n_jobs and scheduler."""
        return Runner(self.backend, self.n_jobs, self.scheduler)

    def _machine_data(self, X, y, shards):
        """The machines' data for the whole fit: local fits, refits and refinement rounds
        (a context manager yielding :class:`~moecore.dispatch.MachineData`)."""
        return self._runner().machine_data(X, y, shards)

    @_all_or_nothing
    def fit_shards(self, paths, *, response="y", features=None, workers=None, progress=None):
        """Fit from data that already lives on the machines: one CSV or Parquet file per machine.

        Each file is read by the worker that fits it (the full data never passes through one
        process); each worker also draws its share of the supporting sample, proportional to its
        number of rows, with its own seed.  Then the local models are reduced as in :meth:`fit`.
        See :func:`moecore.shards.fit_shards` for the parameters and the fitted attributes.
        """
        M = _shard_machines(self)
        # The same seeds as fit(): the machines' EM seeds are identical to fit()'s.
        _seed_split, seed_support, seed_mm, machine_seeds = _seeds(self.random_state, M)

        def aggregate(data):
            # The data stay where they are (dask futures, files) for refits and rounds: no row indices.
            self.shards_ = self.support_indices_ = None
            self._x_split = False  # files of unknown provenance: no yardstick with covariate weights
            self.shard_paths_, self.shard_sizes_, self.support_shares_ = data.paths, data.sizes, data.shares
            self.feature_names_in_ = np.array(data.features, dtype=object)
            # Each worker drew its own share, so every support point knows its machine.
            self.support_machine_ = data.support_machine
            self._aggregate(data.machines, data.results, data.X_support, data.y_support, data.shares,
                            machine_seeds, seed_mm, progress, random_split=False)
            self.costs_.read = data.read_times

        job = ShardJob(self.n_experts, em_settings(self), machine_seeds, seed_support.spawn(M), self._runner(),
                       lambda n, d: self.check_parameters(n, d)[2], aggregate, self.local_experts)
        _fit_shards(job, paths, response=response, features=features, workers=workers, progress=progress)

    # ------------------------------------------------------------------ after the local fits
    def _aggregate(self, machines, results, Xs, ys, support_shares, machine_seeds, seed_mm, progress, random_split,
                   quiet=False):
        """The server's part, shared by :meth:`fit` and :meth:`fit_shards`: collect the local fits
        (LocalFitResult (M,)), choose the machine weights, screen, reduce, refine, check; Xs (S, d), ys (S,)
        the support pairs, support_shares (M,) how many each machine sent."""
        kept, self.skipped_ = collect_local_fits(results, self.on_error, self.n_experts, self.max_iter, quiet)
        self.local_models_, self.local_n_experts_, self.machines_, self.weights_ = kept_machines(kept)
        self._n_samples_all, self._random_split = [r.n_samples for r in results], random_split
        self.support_X_, self.support_y_ = Xs, ys
        self.costs_ = FitCosts.of_local_fits(results, n_free_parameters(self.n_experts, Xs.shape[1])
                                             + _extra_up(self, 1), support_shares, Xs.shape[1])
        self._choose_machine_weights(Xs, random_split)
        self._screen(machines, results, Xs, ys, machine_seeds, quiet)
        self._reduce(Xs, ys, seed_mm, progress, machines, machine_seeds)
        self._refine(machines, Xs, ys, progress)
        _check_fit(self, machines, quiet)

    def _screen(self, machines, results, Xs, ys, machine_seeds, quiet=False):
        """Score every local model on the support pairs; refit or drop the poor ones."""
        out = screen_local_fits(results, self.local_models_, self.machines_, Xs, ys, self.support_machine_,
                                local_check=self.local_check, own=self.machine_weights_used_ == "covariate",
                                exchangeable=self._random_split, quiet=quiet,
                                exchange=_screening_exchange(self, machines, machine_seeds))
        if out.report.flagged and self.local_check != "off":
            self.skipped_.update(out.dropped)
            kept = [out.kept[m] for m in sorted(out.kept)]
            self.local_models_, self.local_n_experts_, self.machines_, self.weights_ = kept_machines(kept)
        self.costs_.add_screening(out, _extra_up(self, out.refit_up))
        self.screening_, self.local_scores_, self.flagged_ = out.report, out.scores, out.report.flagged

    def _choose_machine_weights(self, Xs, random_split):
        """Resolve ``machine_weights`` (the "auto" test) before the screening, which treats
        exchangeable machines and covariate ones differently."""
        t0, pos = time.perf_counter(), support_positions(self.support_machine_, self.machines_, self.n_machines)
        self.machine_weights_used_, self.machine_weights_test_ = choose_machine_weights(
            self.machine_weights, Xs, pos, len(self.machines_), random_split=random_split,
            x_split=self._x_split)
        if self.machine_weights_used_ == "covariate" or self.machine_weights_test_ is not None:
            self.costs_.machine_weights = time.perf_counter() - t0

    def _large_mixture_weights(self, Xs):
        """The large mixture's machine weights: the shares (M',) or w_m(x_s) at the support (S, M')."""
        self.machine_weight_model_ = self.support_weights_ = None
        if self.machine_weights_used_ == "covariate":
            t0, pos = time.perf_counter(), support_positions(self.support_machine_, self.machines_, self.n_machines)
            self.machine_weight_model_, self.support_weights_ = covariate_weights(Xs, pos, len(self.machines_))
            self.costs_.machine_weights += time.perf_counter() - t0
        return self.weights_ if self.support_weights_ is None else self.support_weights_

    def _reduce(self, Xs, ys, seed, progress, machines, machine_seeds):
        """The OT/MM reduction of the local models; with covariate weights and local_check="refit",
        every machine refits from the reduced model and the reduction of the improved fits is kept
        if it explains the support pairs better (:func:`~moecore.refine.warm_refits`)."""
        weights = self._large_mixture_weights(Xs)
        red, cpu = self._mm(self.local_models_, self.local_scores_, weights, Xs, ys, seed, progress)
        if self.machine_weights_used_ == "covariate" and self.local_check == "refit":
            # A K-expert warm start (local_experts="fixed"): BIC's choice is weighed by the refit's test.
            em = dict(em_settings(self), init=red.params)
            warm = warm_refit_reduction(
                refitter(machines, self.n_experts, machine_seeds, lambda m: em, purpose=2),
                lambda models, scores: self._mm(models, scores, weights, Xs, ys, seed, progress),
                red, self.local_models_, self.machines_, self.local_scores_, Xs, ys, self.support_machine_,
                self.n_machines)
            red, cpu, costs = warm.reduction, cpu + warm.cpu, self.costs_
            costs.warm_refit, costs.warm_refit_down = warm.times, warm.down
            costs.one_shot_up = costs.one_shot_up + warm.up + _extra_up(self, warm.up)
            self.screening_.warm_refits, self.screening_.warm_refit_support = warm.gains, warm.support
            if warm.kept:
                self.local_models_, self.local_scores_ = warm.models, warm.scores
                self.local_n_experts_ = np.array([mdl.params_.n_experts for mdl in warm.models])
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
            [m.params_ for m in models], weights, Xs, self.n_experts, y_support=ys, local_scores=scores[self.machines_],
            net_variances=[m.net_variances_ for m in models], random_state=seed, **mm_settings(self),
            callback=None if progress is None else lambda i, state: progress("mm", state.iteration, self.mm_max_iter))
        return red, time.thread_time() - c0

    def _set_model(self, params):
        self.reduced_, self.params_ = MixtureOfExperts.from_params(params), params
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



def _placed_rows(est, X, machine, K, M, S):
    """(PlacedRows, the MM's seed, the machines' seeds) of ``est``'s fit of X (n, d): the rows spread over
    the M machines (by ``machine`` labels (n,) or its split) and the S support points drawn; warns of
    small shards (moecore.shard_check)."""
    seed_split, seed_support, seed_mm, machine_seeds = _seeds(est.random_state, M)
    # A split leaving an input constant on a machine is refused, unless failed machines are skipped.
    rows = place_rows(as_split(est.split), machine, X, M, S, min_samples(K, X.shape[1]), seed_split, seed_support,
                      getattr(est, "feature_names_in_", None), refuse_flat=est.on_error == "raise")
    # By the smallest shard where the split is uneven (machine labels, a skewed split): n // M let a machine of
    # 12 rows beside machines of 2 000 pass.
    smallest = min(map(len, rows.shards))
    warn_small_shards(*X.shape, K, M, S, smallest_shard=smallest if smallest < X.shape[0] // M else None)
    return rows, seed_mm, machine_seeds


DistributedMoE.__doc__ = DistributedMoE.__doc__.format(parameters=parameters_doc(DISTRIBUTED_PARAMETERS))
