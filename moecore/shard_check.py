"""Honesty about small shards and small supports, checked before any work.

A local model has q = (K - 1)(d + 1) + K(d + 1) + K free parameters (gates, experts, variances); the
reduced model has the same q.  The library already refuses shards with fewer than K(d + 1) + 1 rows
(``n_machines`` too large: a local EM cannot even start).  Above that floor the fits run, but with few
rows per parameter the local EMs over-fit their shard and the reduction of poor local models is poor,
and a supporting sample with few points per reduced parameter fits the reduced gate on too little.

:func:`check_shards` compares r = (rows per machine) / q and s = S / q with :data:`MIN_ROWS_PER_PARAMETER`
and :data:`MIN_SUPPORT_PER_PARAMETER`; below either it returns a warning that says what to change
(:class:`DistributedMoE` issues it as a :class:`SmallShardWarning` when ``fit`` starts, and
``fit_shards`` once the files are inspected, before any local fit; the app shows it next to M and S).
A warning rather than a refusal: the measured failures are frequent below the
bounds, not certain, and a teacher may want to show exactly that failure.  The bounds are read from
``benchmarks/bench_small_shards.py`` (benchmarks/README.md, "small shards").  What the rule cannot see:
a K the data do not support (a 4-expert design fitted with K = 3) fails at any shard size; choose K
with :func:`moecore.selection.choose_k`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .params import n_free_parameters

__all__ = [
    "MIN_ROWS_PER_PARAMETER",
    "MIN_SUPPORT_PER_PARAMETER",
    "ShardCheck",
    "SmallShardWarning",
    "check_shards",
    "warn_small_shards",
]

# Measured (benchmarks/bench_small_shards.py, 681 fits of 5 small real sets and 2 designs): at the K the
# data call for, the reduced model's RPE was above 1.2x the global EM's in 29-72 % of fits with r < 4,
# in 7 of 42 with 4 <= r < 6 (worst 2.6x at r = 5.1), and in none of 84 with r >= 6; with r >= 4, in
# 5 of 21 fits with s < 1.5 and 1 of 105 with s >= 1.5.  The bounds keep a margin above the last failures.
MIN_ROWS_PER_PARAMETER = 8.0
MIN_SUPPORT_PER_PARAMETER = 2.0


class SmallShardWarning(UserWarning):
    """The shards or the supporting sample are too small for the reduction to be trusted."""


@dataclass(frozen=True)
class ShardCheck:
    """The numbers behind the rule and its verdict.

    rows_per_machine : int, the smallest shard: floor(n / M) of a near-equal split, or the
        smallest file's rows when each machine holds its own file
    n_parameters : int, q of one local model (and of the reduced model)
    rows_per_parameter, support_per_parameter : float, r = floor(n / M) / q and s = S / q
    ok : bool ; message : str, empty when ok, else what is wrong and what to change
    advice : str, empty when ok, else only what to change (for a one-line notice)
    """

    rows_per_machine: int
    n_parameters: int
    rows_per_parameter: float
    support_per_parameter: float
    ok: bool
    message: str
    advice: str = ""

    @property
    def summary(self):
        """One line for people, e.g. "40 rows per machine for 13 parameters (3.1 per parameter)"."""
        return (f"{self.rows_per_machine} rows per machine for {self.n_parameters} parameters per local model "
                f"({self.rows_per_parameter:.1f} per parameter); support {self.support_per_parameter:.1f} points "
                "per reduced parameter")


def check_shards(n_samples, n_features, n_experts, n_machines, support_size, *, smallest_shard=None):
    """Compare the shards and the support with the model's parameters (see the module's rule).

    Parameters
    ----------
    n_samples, n_features : n and d of the data ; n_experts : K ; n_machines : M ; support_size : S
    smallest_shard : int or None, the rows of the smallest shard when the machines hold shards of
        their own (one file each, :meth:`DistributedMoE.fit_shards`); None: floor(n / M), the
        smallest shard of :meth:`DistributedMoE.fit`'s near-equal split

    Returns
    -------
    ShardCheck
    """
    n, d, K, M, S = (int(v) for v in (n_samples, n_features, n_experts, n_machines, support_size))
    q = n_free_parameters(K, d)
    rows = n // M if smallest_shard is None else int(smallest_shard)
    who = "each machine" if smallest_shard is None else "the smallest shard"
    r, s = rows / q, S / q
    problems, advice = [], []
    if r < MIN_ROWS_PER_PARAMETER:
        m_ok = max(n // math.ceil(MIN_ROWS_PER_PARAMETER * q), 1)
        advice.append(f"use at most {m_ok} machine(s) for K = {K}" + (", or fewer experts" if K > 1 else ""))
        problems.append(
            f"{who} holds {rows} rows for the {q} parameters of its local model ({r:.1f} per parameter; "
            f"below {MIN_ROWS_PER_PARAMETER:g} the reduced model was often more than 1.2x the global EM's RPE): "
            + advice[-1])
    if s < MIN_SUPPORT_PER_PARAMETER:
        s_ok = min(math.ceil(MIN_SUPPORT_PER_PARAMETER * q), n)
        advice.append(f"use a support size of at least {s_ok}")
        problems.append(
            f"the supporting sample holds {S} points for the {q} parameters of the reduced model ({s:.1f} per "
            f"parameter, below {MIN_SUPPORT_PER_PARAMETER:g}): " + advice[-1])
    msg = "; ".join(problems)
    return ShardCheck(rows, q, r, s, not problems, msg[:1].upper() + msg[1:] + "." if msg else "", "; ".join(advice))


def warn_small_shards(n_samples, n_features, n_experts, n_machines, support_size, *, smallest_shard=None,
                      stacklevel=3):
    """:func:`check_shards`, issuing its message as a :class:`SmallShardWarning` when not ok; returns it."""
    check = check_shards(n_samples, n_features, n_experts, n_machines, support_size, smallest_shard=smallest_shard)
    if not check.ok:
        warnings.warn(check.message, SmallShardWarning, stacklevel=stacklevel)
    return check
