"""Which machine holds which rows: random (the paper) and non-IID splits of the data.

The paper shuffles the rows into M near-equal shards, so every machine sees the same input
distribution.  Real distributed data rarely is like that (one hospital per region, one sensor per
site), so a split can also follow

* ``"region"``: quantile bands of one input x_j (machine 0 holds the smallest x_j);
* ``"kmeans"``: k-means clusters of the standardised inputs (one cluster per machine);
* ``"label"``: the true expert label (label skew; machine m holds expert m mod K, or, with fewer
  machines than experts, machine k mod M holds expert k).

Each takes a mixing fraction ``alpha`` in [0, 1]: a random ``alpha`` share of the rows swap their
machines among themselves (a random permutation of their labels).  ``alpha = 0`` is the fully
separated split, ``alpha = 1`` a random split; shard sizes are the same for every alpha.  Random and
region splits may have unequal sizes: proportions drawn from a symmetric Dirichlet with the given
``concentration`` (large: near-equal; 1: uniform over the simplex; small: a few large machines),
each machine keeping at least ``min_size`` rows.

Everything is drawn from ``random_state``.  ``Split("random")`` with equal sizes reproduces
:func:`split_shards` draw for draw, so :class:`~moecore.distributed.DistributedMoE`
gives bitwise the same results as before the other splits existed.

Shapes: X (n, d); a split is a list of M index arrays into the rows of X ("shards") or, equally,
machine labels (n,) in 0..M-1.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._kmeans import assign_labels, kmeans
from ._validation import check_int, check_random_state_seed, check_X
from .params import SPLIT_PARAMETERS, SPLITS

__all__ = [
    "SPLITS",
    "PlacedRows",
    "Split",
    "machine_labels",
    "make_split",
    "place_rows",
    "shard_sizes",
    "shards_from_labels",
    "split_shards",
]

# k-means finds the machines' centres on a subsample of this many points per machine (at least
# _KMEANS_MIN); every row is then labelled by its nearest centre.
_KMEANS_PER_MACHINE = 200
_KMEANS_MIN = 5000


@dataclass(frozen=True)
class Split:
    """A named way to spread rows over machines.

    Parameters
    ----------
    kind : {"random", "region", "kmeans", "label"}
    alpha : float in [0, 1], the share of rows re-assigned at random (0: fully separated, 1: random);
        ignored by "random"
    feature : int, the input whose quantiles define the regions ("region" only)
    concentration : float > 0 or None
        Dirichlet concentration of unequal shard sizes ("random" and "region"); None: near-equal
        sizes.  k-means and label splits take their sizes from the clusters and labels.
    labels : array (n,) of ints or None, the true expert labels ("label" only)
    """

    kind: str = "random"
    alpha: float = 0.0
    feature: int = 0
    concentration: float | None = None
    labels: np.ndarray | None = None

    def __post_init__(self):
        for field, param in zip(("kind", "alpha", "feature", "concentration"), SPLIT_PARAMETERS.values(), strict=True):
            param.check(getattr(self, field))
        if self.concentration is not None and self.kind in ("kmeans", "label"):
            raise ValueError(
                f'concentration applies to "random" and "region" splits; a {self.kind!r} split takes '
                "its shard sizes from its clusters/labels (use concentration=None)."
            )
        if self.kind == "label" and self.labels is None:
            raise ValueError('a "label" split needs labels: the true expert label of every row, given as '
                             'Split("label", labels=labels) with labels an (n,) array of integers.')

    def shards(self, X, n_machines, rng, *, min_size=1):
        """The M index arrays of the rows each machine holds (see :func:`make_split`)."""
        return _make_shards(self, X, n_machines, rng, min_size)

    def label(self):
        """A short description for tables and figures, e.g. "region x1, alpha 0.25"."""
        if self.kind == "random":
            base = "random"
        elif self.kind == "region":
            base = f"region x{self.feature + 1}, alpha {self.alpha:g}"
        else:
            base = f"{self.kind}, alpha {self.alpha:g}"
        return base if self.concentration is None else f"{base}, Dirichlet({self.concentration:g})"


def as_split(split, *, alpha=None, feature=None, concentration=None, labels=None):
    """A :class:`Split` from a name, a Split or a callable (returned unchanged)."""
    if callable(split) and not isinstance(split, Split):
        return split
    if isinstance(split, Split):
        return split
    if not isinstance(split, str):
        raise TypeError(
            f"split must be one of {list(SPLITS)}, a moecore.splits.Split or a callable "
            f"(X, n_machines, rng) -> machine labels, got {type(split).__name__}."
        )
    kw = {k: v for k, v in (("alpha", alpha), ("feature", feature), ("concentration", concentration),
                            ("labels", labels)) if v is not None}
    return Split(split, **kw)


def shard_sizes(n, n_machines, *, concentration=None, min_size=1, rng=None):
    """Shard sizes (M,) summing to n, each at least ``min_size``.

    ``concentration=None``: the sizes of ``np.array_split`` (the first n mod M shards one row
    longer).  Otherwise proportions q ~ Dirichlet(concentration 1_M) and sizes
    ``min_size + `` the largest-remainder split of the other n - M min_size rows by q.
    """
    n = check_int(n, "n", low=1)
    M = check_int(n_machines, "n_machines", low=1)
    min_size = check_int(min_size, "min_size", low=1)
    if M * min_size > n:
        raise ValueError(
            f"n_machines={M} machines of at least min_size={min_size} rows need {M * min_size} rows; "
            f"there are {n}."
        )
    if concentration is None:
        return np.array([len(a) for a in np.array_split(np.arange(n), M)], dtype=np.int64)
    concentration = SPLIT_PARAMETERS["concentration"].check(concentration)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)) when concentration is given, "
                        f"got {type(rng).__name__}.")
    q = rng.dirichlet(np.full(M, concentration))
    rest = n - M * min_size
    exact = rest * q
    share = np.floor(exact).astype(np.int64)
    left = rest - int(share.sum())
    order = np.argsort(-(exact - share), kind="stable")
    share[order[:left]] += 1
    return share + min_size


def _cut(order, sizes):
    """Shards of consecutive runs of ``order`` with the given sizes."""
    return np.split(order, np.cumsum(sizes)[:-1])


def _labels_of(shards, n):
    lab = np.empty(n, dtype=np.int64)
    for m, idx in enumerate(shards):
        lab[idx] = m
    return lab


def shards_from_labels(machine, n, n_machines):
    """Index arrays (sorted) of the rows of each machine, from machine labels (n,).

    Raises ValueError/TypeError naming ``machine`` when labels are malformed or a machine is empty.
    """
    M = n_machines
    machine = np.asarray(machine)
    if machine.shape != (n,):
        raise ValueError(f"machine must hold one machine index per row of X ({n}), got shape {machine.shape}.")
    if machine.dtype.kind not in "iu":
        raise TypeError(f"machine must hold integers in [0, {M - 1}], got dtype {machine.dtype}.")
    if machine.min() < 0 or machine.max() >= M:
        raise ValueError(f"machine indices must lie in [0, n_machines - 1] = [0, {M - 1}].")
    # One stable sort instead of M scans of the labels: rows stay in increasing order per machine.
    order = np.argsort(machine, kind="stable")
    counts = np.bincount(machine, minlength=M)
    empty = np.flatnonzero(counts == 0).tolist()
    if empty:
        raise ValueError(f"machine(s) {empty} hold no rows: every one of the {M} machines needs data.")
    return _cut(order, counts)


def _mix(lab, alpha, rng):
    """Let a random ``alpha`` share of the rows swap machines (permute their labels)."""
    n = lab.shape[0]
    k = round(alpha * n)
    if k < 2:
        return lab
    rows = rng.choice(n, size=k, replace=False)
    lab = lab.copy()
    lab[rows] = lab[rows[rng.permutation(k)]]
    return lab


def split_shards(n, n_machines, rng):
    """Shuffle 0..n-1 with ``rng`` and cut into ``n_machines`` near-equal index arrays."""
    return np.array_split(rng.permutation(n), n_machines)


def _make_shards(split, X, M, rng, min_size):
    n, d = X.shape
    if split.kind == "random":
        if split.concentration is None:
            # Exactly the paper's (and the package's historical) shuffle: bitwise the same shards.
            return split_shards(n, M, rng)
        sizes = shard_sizes(n, M, concentration=split.concentration, min_size=min_size, rng=rng)
        return _cut(rng.permutation(n), sizes)
    if split.kind == "region":
        if split.feature >= d:
            raise ValueError(f"feature must be in [0, {d - 1}] (X has {d} column(s)), got {split.feature}.")
        sizes = shard_sizes(n, M, concentration=split.concentration, min_size=min_size, rng=rng)
        order = np.argsort(X[:, split.feature], kind="stable")
        lab = _labels_of(_cut(order, _tie_respecting_sizes(X[order, split.feature], sizes, min_size,
                                                           split.feature)), n)
    elif split.kind == "kmeans":
        lab = _kmeans_labels(X, M, rng)
    else:
        lab = _label_skew(split.labels, n, M, rng)
    lab = _mix(lab, split.alpha, rng)
    if split.kind == "kmeans":
        _check_kmeans_shards(X, lab, M, split.alpha)
    shards = shards_from_labels(lab, n, M)
    small = [m for m, s in enumerate(shards) if s.size < min_size]
    if small:
        raise ValueError(
            f"the {split.kind!r} split leaves machine(s) {small} with fewer than {min_size} rows "
            f"(smallest: {min(shards[m].size for m in small)}); use fewer machines or a larger alpha."
        )
    return shards


def _tie_respecting_sizes(values, sizes, min_size, feature):
    """Shard sizes (M,) near ``sizes`` whose cuts fall between distinct values of sorted ``values`` (n,).

    Real inputs repeat (a price rounded to the cent, a carat to 0.01): a quantile cut inside a run
    of equal values would give machines on both sides the same x, and a shard inside one run holds
    a constant input its local EM cannot fit.  Each cut moves to the nearest change of value, within
    the bounds that leave every shard at least two distinct values and ``min_size`` rows; where no
    such cuts exist, a ValueError says how many machines the input allows.  Without ties the sizes
    are returned unchanged.
    """
    n, M = values.shape[0], sizes.shape[0]
    # starts[g]: first sorted row of the g-th distinct value; a cut is a group index in 1..G-1.
    starts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1, [n]])
    G = starts.shape[0] - 1
    if G == n:
        return sizes

    def earliest_after(j):
        # the first cut after cut j leaving a shard of >= 2 values and >= min_size rows
        return max(j + 2, int(np.searchsorted(starts, starts[j] + min_size, side="left")))

    def latest_before(j):
        return min(j - 2, int(np.searchsorted(starts, starts[j] - min_size, side="right")) - 1)

    lo, j = [], 0
    while len(lo) < M and j <= G:
        j = earliest_after(j)
        lo.append(j)
    if j > G:
        most, j = 0, earliest_after(0)
        while j <= G:
            most, j = most + 1, earliest_after(j)
        raise ValueError(
            f"a region split of x{feature + 1} over {M} machines would leave a machine with a single value "
            f"of x{feature + 1} (it has {G} distinct values, some repeated many times): use at most "
            f"{max(most, 1)} machines for this split, a k-means split, or alpha > 0."
        )
    hi, j = [], G
    for _ in range(M - 1):
        j = latest_before(j)
        hi.append(j)
    hi = hi[::-1]
    targets = np.cumsum(sizes)[:-1]
    # nearest group start to each target cut
    g = np.clip(np.searchsorted(starts, targets), 1, G)
    nearer = np.abs(starts[g - 1] - targets) <= np.abs(starts[g] - targets)
    snapped = np.where(nearer & (g - 1 >= 1), g - 1, g)
    cuts, prev = [], 0
    for m in range(M - 1):
        c = max(min(max(int(snapped[m]), lo[m]), hi[m]), earliest_after(prev))
        cuts.append(c)
        prev = c
    return np.diff(np.concatenate([[0], starts[cuts], [n]]))


def _check_kmeans_shards(X, lab, M, alpha):
    """Refuse a k-means split that puts a machine on one repeated input value (a constant column)."""
    order = np.argsort(lab, kind="stable")
    counts = np.bincount(lab, minlength=M)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    flat = [m for m in range(M) if counts[m] and np.any(np.ptp(X[order[bounds[m]:bounds[m + 1]]], axis=0) == 0)]
    if flat:
        distinct = len(np.unique(X, axis=0))
        raise ValueError(
            f"the k-means split gives machine(s) {flat[:10]} a constant input: their cluster is one repeated "
            f"x value (the {X.shape[0]} rows hold {distinct} distinct x), which a local EM cannot fit; use "
            f"fewer machines than {M}" + (", or alpha > 0 to deal out some rows at random." if alpha == 0 else ".")
        )


def _kmeans_labels(X, M, rng):
    n = X.shape[0]
    if M > n:
        raise ValueError(f"n_machines={M} exceeds the {n} rows to cluster.")
    mean, scale = X.mean(axis=0), X.std(axis=0)
    ZT = ((X - mean) / np.where(scale > 0, scale, 1.0)).T
    n_sub = max(_KMEANS_MIN, _KMEANS_PER_MACHINE * M)
    sub = ZT[:, np.sort(rng.choice(n, n_sub, replace=False))] if n > n_sub else ZT
    centres, labels, _ = kmeans(sub, M, rng, n_init=3)
    return assign_labels(ZT, centres) if sub is not ZT else labels


def _label_skew(labels, n, M, rng):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must hold one expert label per row of X ({n}), got shape {labels.shape}.")
    if labels.dtype.kind not in "iu" or labels.min() < 0:
        raise TypeError("labels must hold non-negative integers (the true expert of each row).")
    K = int(labels.max()) + 1
    if M <= K:
        return labels.astype(np.int64) % M
    # More machines than experts: the rows of expert k go to machines k, k + K, k + 2K, ... in
    # near-equal random parts.
    lab = np.empty(n, dtype=np.int64)
    for k in range(K):
        rows = np.flatnonzero(labels == k)
        mach = np.arange(k, M, K)
        parts = np.array_split(rng.permutation(rows), mach.size)
        for m, part in zip(mach, parts, strict=True):
            lab[part] = m
    return lab


def make_split(X, n_machines, split="random", *, alpha=None, feature=None, concentration=None,
               labels=None, min_size=1, random_state=None):
    """Spread the rows of X over ``n_machines`` machines.

    Parameters
    ----------
    X : array (n, d)
    n_machines : int, M >= 1
    split : {"random", "region", "kmeans", "label"}, a :class:`Split`, or a callable
        ``split(X, n_machines, rng) -> machine labels (n,)``
    alpha, feature, concentration, labels : see :class:`Split` (used with a name)
    min_size : int, fewest rows a machine may hold
    random_state : int, SeedSequence or None

    Returns
    -------
    list of M int arrays: the rows each machine holds.
    """
    X = check_X(X)
    M = check_int(n_machines, "n_machines", low=1, high=X.shape[0])
    min_size = check_int(min_size, "min_size", low=1)
    rng = np.random.default_rng(check_random_state_seed(random_state))
    return split_rows(as_split(split, alpha=alpha, feature=feature, concentration=concentration,
                               labels=labels), X, M, rng, min_size)


def split_rows(split, X, M, rng, min_size=1):
    """Shards of a validated X for a :class:`Split` or a callable split (as :func:`make_split`)."""
    if isinstance(split, Split):
        return split.shards(X, M, rng, min_size=min_size)
    shards = shards_from_labels(split(X, M, rng), X.shape[0], M)
    _refuse_small(shards, min_size, "the split gives")
    return shards


def _refuse_small(shards, min_size, who, fix=""):
    """A ValueError naming the machines of ``shards`` with fewer than ``min_size`` rows, before any fit."""
    small = [m for m, s in enumerate(shards) if s.size < min_size]
    if small:
        raise ValueError(f"{who} machine(s) {small} fewer than {min_size} rows{fix}.")


def _refuse_flat_columns(X, shards, random_split, names=None):
    """A ValueError naming the inputs of X (n, d) that take one value on some machine's rows of ``shards``
    (the whole X varies in each: the estimators refuse a constant column before this), before any fit.

    A local EM cannot estimate a coefficient of an input constant on its rows: with a rare 0/1 indicator
    (0.5 % of the rows) 15 of 64 machines failed after the others had fitted, and the message asked for
    the column to be removed "as constant", which the data's was not (the audit of 2026-12-06)."""
    flat = {}
    for m, rows in enumerate(shards):
        if rows.size:
            for j in np.flatnonzero(np.ptp(X[rows], axis=0) == 0):
                flat.setdefault(int(j), []).append(m)
    if not flat:
        return
    j, machines = max(flat.items(), key=lambda item: len(item[1]))
    label = f"{names[j]!r} (column {j})" if names is not None else f"column {j} (numbered from 0)"
    others = f" (and column(s) {sorted(set(flat) - {j})} on other machines)" if len(flat) > 1 else ""
    everywhere = len(machines) == len(shards)
    raise ValueError(
        f"input {label} takes a single value on the rows of {len(machines)} of the {len(shards)} machines "
        f"{machines[:10]}{' ...' if len(machines) > 10 else ''}{others}, though it varies over the data: a "
        "machine's local EM cannot estimate its coefficients. "
        + ("It is constant on every machine (a property of the machine, such as a site): leave it out, each "
           "local model's intercept holds it." if everywhere else
           (f"Use fewer machines than {len(shards)} (each then holds more of its rarer values), or leave the "
            "column out." if random_split else f"Spread its values over the machines (a random split), use fewer "
            f"machines than {len(shards)}, or leave the column out."))
    )


def machine_labels(shards, n=None):
    """Machine labels (n,) of the rows of a split given as shards (index arrays)."""
    if n is None:
        n = int(sum(len(s) for s in shards))
    if not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {type(n).__name__}.")
    return _labels_of(shards, n)


@dataclass(frozen=True)
class PlacedRows:
    """Which machine holds which rows, and the supporting sample drawn from the pooled rows.

    shards : list (M,) of index arrays ; support : ndarray (S,), sorted rows of the supporting
    sample ; support_machine : ndarray (S,), the machine of each support point ; random_split :
    whether the package itself shuffled the rows over the machines (then P(machine | x) = n_m / n
    is known and needs no test) ; x_split : whether it split them by x alone (region or k-means): the
    machines then hold different inputs but know nothing of the experts beyond x, so a local model is a
    yardstick on its own rows (the check after the fit; a label split gives each machine one expert's rows,
    which every mixture fits worse than they do).
    """

    shards: list
    support: np.ndarray
    support_machine: np.ndarray
    random_split: bool
    x_split: bool = False

    def support_shares(self, n_machines):
        """(M,) support points each machine contributed."""
        return np.bincount(self.support_machine, minlength=n_machines)


def place_rows(split, machine, X, n_machines, support_size, min_size, seed_split, seed_support, names=None,
               refuse_flat=True):
    """The first step of a distributed fit: spread the n rows of X (n, d) over the machines by
    ``split`` (or by the given ``machine`` labels (n,)) and draw the supporting sample of
    ``support_size`` rows, each from its own seed.  With ``refuse_flat`` (not for a fit that skips
    failed machines), refuses a split that leaves an input (``names`` (d,) for the message, or None)
    constant on a machine's rows.  Returns :class:`PlacedRows`."""
    n = X.shape[0]
    if machine is None:
        shards = split_rows(split, X, n_machines, np.random.default_rng(seed_split), min_size)
    else:
        if split != Split("random"):
            # Both say where the rows go: keeping one in silence fitted another split than the one asked for.
            shown = split.kind if isinstance(split, Split) else getattr(split, "__name__", "a callable")
            raise ValueError(f"machine labels and split={shown!r} both place the rows: give one (leave split at "
                             "'random' with machine labels).")
        shards = shards_from_labels(machine, n, n_machines)
        # Before any fit, as a split's own machines (a local fit refused them only after the others).
        _refuse_small(shards, min_size, "machine labels give", ", the fewest a local fit of these experts and "
                      "inputs takes: merge those machines or use fewer experts")
    kind = split.kind if machine is None and isinstance(split, Split) else None
    if refuse_flat:
        _refuse_flat_columns(X, shards, kind == "random", names)
    support = np.sort(np.random.default_rng(seed_support).choice(n, size=support_size, replace=False))
    return PlacedRows(shards, support, machine_labels(shards, n)[support], kind == "random",
                      kind in ("region", "kmeans"))
