"""Baselines the reduction is judged against (method.md, section 4).

* the global (centralised) EM on all the data;
* the weighted average and the coordinate-wise median of the local parameters, after aligning
  every local model's experts to a reference machine (``align=False`` shows why that matters);
* a single machine's local model.

Shapes: X (n, d), y (n,); every local model is a MoEParams with gates and experts (d+1, K) and
variances (K,); the aggregates are MoEParams of the same shapes.
"""

from __future__ import annotations

import time

import numpy as np

from ._validation import check_int
from .alignment import align_to
from .em import MixtureOfExperts
from .model import MoEParams

__all__ = ["coordinate_median", "fit_global", "single_machine", "weighted_average"]


def fit_global(X, y, n_experts, **em_params):
    """One EM on all the data X (n, d), y (n,); returns the fitted MixtureOfExperts (``fit_time_``
    is its time).  ``em_params``: its settings (see :data:`~moecore.params.EM_SETTINGS`)."""
    return MixtureOfExperts(n_experts, **em_params).fit(X, y)


def _models(local_params) -> list:
    """``local_params`` as a list of MoEParams of one shape, or a TypeError/ValueError saying what is not."""
    local_params = list(local_params)
    if not local_params:
        raise ValueError("local_params must hold at least one local model.")
    bad = next((p for p in local_params if not isinstance(p, MoEParams)), None)
    if bad is not None:
        raise TypeError(f"local_params must be MoEParams (a fitted model's params_), got a {type(bad).__name__}.")
    shapes = {(p.n_features, p.n_experts) for p in local_params}
    if len(shapes) > 1:
        raise ValueError(f"local_params must all have the same inputs and experts to be averaged, got (d, K) = "
                         f"{sorted(shapes)}; the reduction (DistributedMoE) aggregates models of different K.")
    return local_params


def _index(index, M, name):
    # An int, not a bool (True read as machine 1) nor a negative one (-1 read as the last machine).
    return check_int(index, name, low=0, high=M - 1)


def _aligned(local_params, reference, align):
    local_params = _models(local_params)
    if not align:
        return local_params
    if isinstance(reference, MoEParams):
        ref = reference
    else:
        ref = local_params[_index(reference, len(local_params), "reference")]
    return [align_to(ref, prm) for prm in local_params]


def _weights(weights, M):
    w = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (M,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be {M} finite non-negative numbers with a positive sum.")
    # By the largest first: two weights of 1e308 summed to inf (and every weight to 0).
    w = w / w.max()
    return w / w.sum()


def weighted_average(local_params, weights=None, *, reference=0, align=True):
    """Weighted average of the (aligned) local parameters.

    Parameters
    ----------
    local_params : list (M,) of MoEParams, each (d+1, K) gates and experts, (K,) variances
    weights : array (M,) or None (equal weights)
    reference : int or MoEParams, the model every local model is aligned to
    align : bool, align experts first (True) or average them in their local order (False)
    """
    prms = _aligned(local_params, reference, align)
    w = _weights(weights, len(prms))
    return MoEParams(
        np.tensordot(w, np.stack([p.gates for p in prms]), axes=1),
        np.tensordot(w, np.stack([p.experts for p in prms]), axes=1),
        np.tensordot(w, np.stack([p.variances for p in prms]), axes=1),
    )


def coordinate_median(local_params, *, reference=0, align=True):
    """Coordinate-wise median of the (aligned) local parameters: list (M,) of MoEParams, each
    aligned to ``reference`` (an index or a MoEParams) unless ``align=False``."""
    prms = _aligned(local_params, reference, align)
    return MoEParams(
        np.median(np.stack([p.gates for p in prms]), axis=0),
        np.median(np.stack([p.experts for p in prms]), axis=0),
        np.median(np.stack([p.variances for p in prms]), axis=0),
    )


def single_machine(local_params, index=0):
    """The local model (MoEParams) of machine ``index`` of the list (M,) ``local_params``."""
    local_params = _models(local_params)
    return local_params[_index(index, len(local_params), "index")]


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
