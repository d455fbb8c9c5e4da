"""Synthetic data from a softmax-gated mixture of Gaussian linear experts, and named designs.

``simulate`` draws x from a Gaussian or uniform distribution, the expert label z from the gates
at x, and y from that expert.  The named designs cover teaching (d = 1, experts easy to see) and
experiments (d from 2 to 10, K from 2 to 5, well-separated or overlapping experts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import model as _m
from ._validation import check_choice, check_random_state_seed
from .costs import check_memory
from .params import SIMULATION_PARAMETERS, check_parameters

__all__ = ["DESIGNS", "Design", "SimulatedData", "get_design", "simulate", "simulate_design"]


@dataclass(frozen=True)
class Design:
    """A named true model and the distribution of x it is meant to be sampled with.

    x ~ N(x_loc, x_scale^2) independently per coordinate ("gaussian"), or uniform on
    [x_loc - x_scale, x_loc + x_scale] ("uniform").
    """

    name: str
    description: str
    params: _m.MoEParams
    x_dist: str = "gaussian"
    x_loc: float = 0.0
    x_scale: float = 1.0

    @property
    def n_experts(self):
        return self.params.n_experts

    @property
    def n_features(self):
        return self.params.n_features


@dataclass
class SimulatedData:
    """X (n, d), y (n,), the true expert labels (n,) and the true parameters."""

    X: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    params: _m.MoEParams


def _pattern(rows, cols, a, b, scale):
    """Fixed, well-spread coefficients from a closed formula (no RNG: stable across NumPy versions)."""
    j = np.arange(rows)[:, None]
    k = np.arange(cols)[None, :]
    return np.round(scale * np.sin(a * (j + 1) + b * (k + 1) ** 1.5), 2)


def _designs():
    out = {}

    def add(name, description, gates, experts, variances, **kw):
        out[name] = Design(name, description, _m.MoEParams(gates, experts, variances), **kw)

    # Three regimes along x: expert 1 left of -1, expert 2 in the middle, expert 3 right of 1.
    add(
        "teaching-1d",
        "d = 1, K = 3: three lines, each dominant on a third of x in [-3, 3]; best for learning.",
        gates=[[0.0, 4.0, 0.0], [-8.0, -4.0, 0.0]],
        experts=[[-1.0, 0.5, 1.0], [-2.0, 1.5, -1.0]],
        variances=[0.09, 0.04, 0.09],
        x_dist="uniform",
        x_scale=3.0,
    )
    add(
        "two-experts-1d",
        "d = 1, K = 2: two crossing lines with a smooth gate; the simplest MoE.",
        gates=[[0.0, 0.0], [3.0, 0.0]],
        experts=[[1.0, -1.0], [2.0, -1.5]],
        variances=[0.25, 0.25],
        x_dist="gaussian",
    )
    add(
        "separated-2d",
        "d = 2, K = 4: sharp gates cut the plane into four bands along t = x1 + x2 / 2, each "
        "with its own plane; intercepts far apart relative to the noise.",
        # Logits a_k t + c_k with slopes a = (-15, -5, 5, 15) and c = (0, 10, 10, 0): band
        # boundaries at t = -1, 0, 1; pinned to the last expert.
        gates=[[0.0, 10.0, 10.0, 0.0], [-30.0, -20.0, -10.0, 0.0], [-15.0, -10.0, -5.0, 0.0]],
        experts=[[-6.0, -2.0, 2.0, 6.0], [1.0, -1.0, 1.5, 0.5], [0.5, 1.0, -1.0, 1.5]],
        variances=[0.25, 0.2, 0.3, 0.25],
    )
    # Expert 0 holds x1 < -1; expert 2's plane crosses expert 0's along x2 = -2 - x1 / 2 inside
    # that region, where a pointwise transport plan ties (docs/method.md, "Gate targets").
    add(
        "crossing-2d",
        "d = 2, K = 3: three regimes along x1; expert planes cross inside another expert's region.",
        gates=[[0.0, 4.0, 0.0], [-8.0, -4.0, 0.0], [0.0, 0.0, 0.0]],
        experts=[[1.0, 0.0, -1.0], [1.0, -1.0, 0.5], [0.5, 1.0, -0.5]],
        variances=[0.1, 0.05, 0.1],
        x_dist="uniform",
        x_scale=3.0,
    )
    gates5 = np.vstack([[0.5, -0.5, 0.0], _pattern(5, 3, 0.9, 1.7, 0.8)])
    gates5[:, -1] = 0.0
    add(
        "overlapping-5d",
        "d = 5, K = 3: close intercepts, larger noise and weak gates: experts overlap.",
        gates=gates5,
        experts=np.vstack([[-1.0, 0.0, 1.0], _pattern(5, 3, 1.1, 0.7, 1.0)]),
        variances=[0.5, 0.6, 0.5],
    )
    gates10 = np.vstack([[0.3, -0.2, 0.1, 0.4, 0.0], _pattern(10, 5, 0.7, 1.3, 2.0)])
    gates10[:, -1] = 0.0
    add(
        "separated-10d",
        "d = 10, K = 5: well-separated experts in ten dimensions.",
        gates=gates10,
        experts=np.vstack([[-8.0, -4.0, 0.0, 4.0, 8.0], _pattern(10, 5, 0.5, 0.9, 1.0)]),
        variances=[0.3, 0.3, 0.4, 0.3, 0.35],
    )
    return out


DESIGNS = _designs()


def get_design(name) -> Design:
    """The named design (see ``DESIGNS``)."""
    check_choice(name, "design", set(DESIGNS))
    return DESIGNS[name]


def simulate(params, n, *, x_dist="gaussian", x_loc=0.0, x_scale=1.0, random_state=None):
    """Draw n samples from the MoE ``params``.

    Parameters
    ----------
    params : MoEParams
    n : int, >= 1
    x_dist : {"gaussian", "uniform"}
    x_loc, x_scale : location and scale (> 0) of each coordinate of x
    random_state : int, SeedSequence or None

    Returns
    -------
    SimulatedData with X (n, d), y (n,), labels (n,) in 0..K-1, params
    """
    if not isinstance(params, _m.MoEParams):
        raise TypeError(f"params must be a MoEParams, got {type(params).__name__}.")
    given = dict(n=n, x_dist=x_dist, x_loc=x_loc, x_scale=x_scale, random_state=random_state)
    v = check_parameters(SIMULATION_PARAMETERS, given)
    n, x_loc, x_scale = v["n"], v["x_loc"], v["x_scale"]
    rng = np.random.default_rng(check_random_state_seed(random_state))
    d = params.n_features
    # Checked before the arrays are made: n = 10**13 raised NumPy's raw _ArrayMemoryError (or, where Linux
    # grants the memory, the process is killed when it is touched).
    check_memory(2 * 8 * n * (d + params.n_experts + 4), f"simulating n = {n:,} rows of {d} input(s)",
                 "lower n.")
    if x_dist == "gaussian":
        X = x_loc + x_scale * rng.standard_normal((n, d))
    else:
        X = rng.uniform(x_loc - x_scale, x_loc + x_scale, size=(n, d))
    P = _m.gate_proba(X, params)
    # Inverse-CDF draw of the label; the clip guards the rounding of the last cumulative sum.
    labels = np.minimum((P.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), params.n_experts - 1)
    means = _m.expert_means(X, params)[np.arange(n), labels]
    y = means + np.sqrt(params.variances[labels]) * rng.standard_normal(n)
    return SimulatedData(X, y, labels, params)


def simulate_design(name, n, *, random_state=None, **overrides):
    """Draw n samples from a named design; ``overrides`` may change x_dist, x_loc, x_scale."""
    design = get_design(name)
    kw = dict(x_dist=design.x_dist, x_loc=design.x_loc, x_scale=design.x_scale)
    unknown = set(overrides) - set(kw)
    if unknown:
        raise TypeError(f"unknown override(s) {sorted(unknown)}; allowed: {sorted(kw)}.")
    kw.update(overrides)
    return simulate(design.params, n, random_state=random_state, **kw)
