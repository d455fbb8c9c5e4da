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

from .alignment import align_to
from .em import MixtureOfExperts
from .model import MoEParams

__all__ = ["coordinate_median", "fit_global", "single_machine", "weighted_average"]


def fit_global(X, y, n_experts, **em_params):
    """One EM on all the data X (n, d), y (n,); returns the fitted MixtureOfExperts (``fit_time_``
    is its time).  ``em_params``: its settings (see :data:`~moecore.params.EM_SETTINGS`)."""
    return MixtureOfExperts(n_experts, **em_params).fit(X, y)


def _aligned(local_params, reference, align):
    local_params = list(local_params)
    if not local_params:
        raise ValueError("local_params must hold at least one local model.")
    if not align:
        return local_params
    ref = local_params[reference] if isinstance(reference, (int, np.integer)) else reference
    return [align_to(ref, prm) for prm in local_params]


def _weights(weights, M):
    w = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (M,) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be {M} non-negative numbers with a positive sum.")
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
    local_params = list(local_params)
    if not 0 <= index < len(local_params):
        raise ValueError(f"index must be in [0, {len(local_params) - 1}], got {index}.")
    return local_params[index]


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
