"""Worked examples for teaching: the MM reduction one iterate at a time, and refinement rounds.

Used by the app's Learn page (the only user: it lives next to it), usable as is from a notebook:
every number comes from the same estimators and kernels as a real fit
(:class:`~moecore.distributed.DistributedMoE`, :func:`~moecore.reduction.mm_steps`,
:func:`~moecore.refine.em_rounds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moecore.baselines import fit_global
from moecore.distributed import DistributedMoE
from moecore.metrics import parameter_mse
from moecore.model import Standardizer, loglik_per_sample
from moecore.params import em_settings
from moecore.reduction import LargeMixture, MMState, ReductionProblem, mm_steps
from moecore.refine import em_rounds
from moecore.simulation import SimulatedData, simulate_design

__all__ = ["MM_STARTS", "MMWalkthrough", "mm_walkthrough", "rounds_walkthrough"]

MM_STARTS = ("local", "kmeans")


@dataclass
class MMWalkthrough:
    """A small distributed fit and every MM iterate of its reduction.

    problem : ReductionProblem, the large mixture evaluated on the support
    states : list of MMState, iterate 0 (the start) to the last
    data : SimulatedData the machines held, with the true model
    model : DistributedMoE, the fit whose local models are reduced
    """

    problem: ReductionProblem
    states: list
    data: SimulatedData
    model: DistributedMoE

    def plan_at(self, i):
        """The TransportPlan of iterate ``i`` (coupling (L, K), each component's dominant expert)."""
        state: MMState = self.states[i]
        return self.problem.transport_plan(state.assignment, state.variances.shape[0])

    def moved(self, i):
        """How many (support point, component) pairs changed reduced expert at iterate ``i``."""
        if i == 0:
            return 0
        return int((self.states[i - 1].assignment != self.states[i].assignment).sum())


def mm_walkthrough(n_machines, seed, init="local", *, design="teaching-1d", n=2000, max_iter=60):
    """Fit ``design`` on ``n_machines`` machines and record every MM iterate of the reduction.

    ``init="local"`` starts MM from K randomly chosen local experts (a poor start, so that the
    steps can be seen); ``"kmeans"`` from the library's own k-means start.
    """
    if init not in MM_STARTS:
        raise ValueError(f"init must be one of {list(MM_STARTS)}, got {init!r}.")
    sim = simulate_design(design, n, random_state=seed)
    K = sim.params.n_experts
    dm = DistributedMoE(K, n_machines, backend="sequential", random_state=seed).fit(sim.X, sim.y)
    large = LargeMixture([m.params_ for m in dm.local_models_], dm.weights_)
    problem = ReductionProblem(large, sim.X[dm.support_indices_])
    rng = np.random.default_rng(seed)
    if init == "local":
        idx = rng.choice(large.experts.shape[1], K, replace=False)
        B0 = problem.experts_std(large.experts[:, idx])
        V0 = large.variances[idx].copy()
    else:
        B0, V0 = problem.initial_experts(K, rng)
    states = list(mm_steps(problem, B0, V0, max_iter=max_iter, tol=1e-10))
    return MMWalkthrough(problem, states, sim, dm)


def rounds_walkthrough(walk: MMWalkthrough, rounds=3):
    """The walkthrough's reduced model refined by distributed EM rounds.

    Returns a list of dicts, one per number of rounds 0..rounds: ``loglik`` (pooled, per sample),
    ``gates`` (gate MSE against the truth) and ``gates_global`` (against the global EM).
    """
    sim, dm = walk.data, walk.model
    shards = [(sim.X[idx], sim.y[idx]) for idx in dm.shards_]
    scaler = Standardizer.fit(dm.support_X_, dm.support_y_)
    g = fit_global(sim.X, sim.y, sim.params.n_experts, random_state=dm.random_state, **em_settings(dm)).params_
    prm, out = dm.params_, []
    for r in range(rounds + 1):
        if r:
            prm, _ = em_rounds(shards, prm, 1, scaler=scaler)
        out.append(dict(rounds=r, loglik=float(loglik_per_sample(sim.X, sim.y, prm).mean()),
                        gates=parameter_mse(prm, sim.params)["gates"], gates_global=parameter_mse(prm, g)["gates"]))
    return out
