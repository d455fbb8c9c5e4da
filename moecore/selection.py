"""Choosing the number of experts K: BIC and ICL against K, for the global EM and the distributed fit.

For each K the global EM and the distributed fit are scored on the training data they were fitted to:

* BIC(K) = -2 log L + q(K) log n, q(K) = (K - 1)(d + 1) + K(d + 1) + K free parameters;
* ICL(K) = BIC(K) + 2 sum_i sum_k -tau_ik log tau_ik (BIC plus twice the entropy of the posterior
  memberships tau: it prefers experts that are well separated, Biernacki, Celeux and Govaert 2000).

The distributed fit's log L is the reduced model's log-likelihood of all the rows, which is the sum of
each machine's log-likelihood of its own shard (one number per machine to send), so the criterion
needs no data moved.  The chosen K is the one of lowest criterion.  With ``local_experts="bic"`` each
machine also chooses its own K (at most the K fitted), and the table reports the median of their choices.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._validation import check_int, check_random_state_seed, check_Xy
from .baselines import fit_global
from .distributed import DistributedMoE
from .params import EM_SETTINGS, min_samples, min_samples_rule, n_free_parameters

__all__ = ["CRITERIA", "KSelection", "choose_k", "criterion_values"]

CRITERIA = ("bic", "icl")


@dataclass(frozen=True)
class KSelection:
    """The criteria against K and the K each fit chooses.

    Attributes
    ----------
    table : DataFrame, one row per K: ``K``, ``n_parameters``, then per fit (prefix ``global_`` and,
        when the distributed fit ran, ``distributed_``) ``loglik`` (total), ``bic``, ``icl``, ``time``
        (seconds: the EM's time, the distributed fit's learning time); ``distributed_local_k``, the
        median K the machines chose, with ``local_experts="bic"``
    criterion : "bic" or "icl"
    chosen_global : int ; chosen_distributed : int or None
    """

    table: pd.DataFrame
    criterion: str
    chosen_global: int
    chosen_distributed: int | None


def criterion_values(model, X, y):
    """(total log-likelihood, BIC, ICL, free parameters) of a fitted model on (X (n, d), y (n,))."""
    n, d = X.shape
    q = n_free_parameters(model.params_.n_experts, d)
    loglik = float(model.score_samples(X, y).sum())
    tau = model.posterior_proba(X, y)
    entropy = -float(np.sum(tau * np.log(np.clip(tau, 1e-300, None))))
    bic = -2.0 * loglik + q * np.log(n)
    return loglik, bic, bic + 2.0 * entropy, q


def _distributed_params(given):
    """``distributed_params`` as a dict of :class:`DistributedMoE` parameters that choose_k does not set
    itself (n_experts, n_machines and random_state are its own; the EM settings go as keywords)."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"distributed_params must be a dict of DistributedMoE parameters, got {type(given).__name__}.")
    allowed = sorted(set(DistributedMoE().get_params()) - {"n_experts", "n_machines", "random_state"}
                     - set(EM_SETTINGS))
    bad = sorted(set(given) - set(allowed), key=str)
    if bad:
        raise TypeError(f"distributed_params has {bad}, which choose_k sets itself or DistributedMoE does not "
                        f"take (K from ks, n_machines and random_state as arguments, EM settings as keywords); "
                        f"it takes {allowed}.")
    return dict(given)


def choose_k(X, y, ks=(1, 2, 3, 4, 5), *, n_machines=None, criterion="bic", random_state=None,
             distributed_params=None, **em_params):
    """BIC (and ICL) against K for the global EM and, with ``n_machines``, the distributed fit.

    Parameters
    ----------
    X : array-like (n, d) ; y : array-like (n,)
    ks : iterable of ints >= 1, the numbers of experts to try
    n_machines : int or None, M of the distributed fit (None: the global EM only)
    criterion : {"bic", "icl"}, what the chosen K minimises
    random_state : int, SeedSequence or None; each K gets its own child seed (the same whatever
        the other Ks tried), shared by its global and distributed fits
    distributed_params : dict of further :class:`DistributedMoE` parameters (n_jobs, backend,
        local_experts, split...) or None
    **em_params : the EM settings (``init``, ``n_init``, ...) of every fit

    Returns
    -------
    KSelection
    """
    X, y = check_Xy(X, y)
    if isinstance(ks, str) or not np.iterable(ks):
        raise TypeError(f"ks must be an iterable of ints >= 1, the numbers of experts to try (e.g. (1, 2, 3)); "
                        f"got {type(ks).__name__} {ks!r}.")
    ks = sorted({check_int(k, "ks", low=1) for k in ks})
    if not ks:
        raise ValueError("ks must hold at least one number of experts.")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
    unknown = sorted(set(em_params) - set(EM_SETTINGS))
    if unknown:
        raise TypeError(f"unknown EM setting(s) {unknown}: choose_k takes {list(EM_SETTINGS)}.")
    dist = _distributed_params(distributed_params)
    # Refuse before any fit: the largest K is the strictest.
    if X.shape[0] < min_samples(ks[-1], X.shape[1]):
        raise ValueError(f"ks holds {ks[-1]}: X has {X.shape[0]} samples, and with {ks[-1]} experts and "
                         f"{X.shape[1]} feature(s) a fit needs {min_samples_rule(ks[-1], X.shape[1])}. "
                         "Try fewer experts.")
    if n_machines is not None:
        # Refuse before any fit: every K must suit the shards (the largest K is the strictest).
        DistributedMoE(max(ks), n_machines, **em_params, **dist).check_parameters(*X.shape)
    seeds = check_random_state_seed(random_state).spawn(max(ks))
    rows = []
    for k in ks:
        row = {"K": k}
        t0 = time.perf_counter()
        g = fit_global(X, y, k, random_state=seeds[k - 1], **em_params)
        row["global_time"] = time.perf_counter() - t0
        ll, bic, icl, q = criterion_values(g, X, y)
        row.update(n_parameters=q, global_loglik=ll, global_bic=bic, global_icl=icl)
        if n_machines is not None:
            dm = DistributedMoE(k, n_machines, random_state=seeds[k - 1], **em_params, **dist).fit(X, y)
            ll, bic, icl, _ = criterion_values(dm, X, y)
            row.update(distributed_loglik=ll, distributed_bic=bic, distributed_icl=icl,
                       distributed_time=dm.timings_["learning_time"])
            if dist.get("local_experts") == "bic":
                row["distributed_local_k"] = float(np.median([m.params_.n_experts for m in dm.local_models_]))
        rows.append(row)
    table = pd.DataFrame(rows)
    times = [c for c in table.columns if c.endswith("_time")]
    table = table[["K", "n_parameters", *[c for c in table.columns if c not in ("K", "n_parameters", *times)], *times]]

    def best(prefix):
        return int(table["K"].iloc[int(np.argmin(table[f"{prefix}_{criterion}"].to_numpy()))])

    return KSelection(table, criterion, best("global"), best("distributed") if n_machines is not None else None)
