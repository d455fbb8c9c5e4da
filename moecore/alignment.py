"""Label switching: experts are defined only up to a permutation, so comparisons align first."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .model import MoEParams, gate_proba

__all__ = ["align_to", "expert_distance", "match_experts"]


def expert_distance(ref: MoEParams, other: MoEParams, X=None):
    """Cost matrix (K_ref, K_other) between experts.

    Without X: squared distance of the coefficient vectors plus that of the log-variances.
    With X (n, d): mean squared distance of the expert mean lines over X plus the log-variance
    term, which is invariant to the scale of x, plus the mean squared distance of the gate
    probabilities over X: two experts with one line and one variance, told apart only by where
    their gates put them (lost_expert_design's experts 1 and 5, at x < -1 and x > 1.4), would
    otherwise match either way, and a comparison of gates after such a swap compares the gate of
    one region with the gate of the other.
    """
    if ref.n_features != other.n_features:
        raise ValueError(
            f"cannot align models with {ref.n_features} and {other.n_features} features."
        )
    if X is None:
        diff = ref.experts[:, :, None] - other.experts[:, None, :]
        cost = (diff**2).sum(axis=0)
    else:
        Xt = np.hstack([np.ones((len(X), 1)), np.asarray(X, dtype=np.float64)])
        with np.errstate(over="ignore", invalid="ignore"):
            mr, mo = Xt @ ref.experts, Xt @ other.experts
            sq = (mr[:, :, None] - mo[:, None, :]) ** 2  # (n, K_ref, K_other)
        # A row where a line extrapolates past float64 (an input of 1e300) says nothing of which
        # experts match, and its inf made every cost inf (linear_sum_assignment: "infeasible").
        finite = np.isfinite(sq).all(axis=(1, 2))
        cost = (sq if finite.all() else sq[finite]).mean(axis=0) if finite.any() else np.zeros(sq.shape[1:])
        cost = cost / max(np.mean(ref.variances), 1e-300)
        pr, po = gate_proba(X, ref), gate_proba(X, other)
        cost = cost + ((pr[:, :, None] - po[:, None, :]) ** 2).mean(axis=0)
    lv = np.log(ref.variances)[:, None] - np.log(other.variances)[None, :]
    return cost + lv**2


def match_experts(ref: MoEParams, other: MoEParams, X=None):
    """Permutation ``perm`` (K,) such that expert ``perm[k]`` of ``other`` matches expert k of ``ref``."""
    if ref.n_experts != other.n_experts:
        raise ValueError(f"cannot align {other.n_experts} experts to {ref.n_experts}.")
    rows, cols = linear_sum_assignment(expert_distance(ref, other, X))
    return cols[np.argsort(rows)]


def align_to(ref: MoEParams, other: MoEParams, X=None) -> MoEParams:
    """``other`` with its experts reordered to match ``ref`` (gates re-pinned to the last column)."""
    return other.permute(match_experts(ref, other, X))
