"""What one distributed fit costs: the seconds of each step and the numbers each machine sends.

The paper's *learning time* counts the machines as truly parallel: the slowest local fit plus the
server's reduction.  Our fits add steps (the screening and its refits, the machine weights, the
warm refits of covariate weights, the refinement rounds), and every reader of the figure (the
estimator's ``timings_``, the app's timing text, the command line) must add the same terms.  So
the terms live in one object, :class:`FitCosts`, whose :meth:`~FitCosts.learning_time_parts` is
the only place where the sum is written; everything else reads it.  The memory a fit will need is
estimated here too, before anything is allocated (:func:`fit_memory_bytes`, :func:`check_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FIT_MEMORY_FACTOR", "FitCosts", "check_memory", "fit_memory_bytes"]


def _empty():
    return np.zeros(0)


@dataclass
class FitCosts:
    """Seconds and communication of one :class:`~moecore.distributed.DistributedMoE` fit.

    Seconds
    -------
    local, local_cpu : ndarray (M,), wall-clock and CPU seconds of each machine's local fit (the
        CPU figure is what a dedicated machine would take, whatever else shares the cores here)
    screening : scoring the local fits on the support
    refit : ndarray (refitted,), each screening refit (a machine flagged by the comparison: with its
        comparison)
    compare : ndarray (compared,), each machine's comparison of the best-scoring model with its own
        on its rows (:func:`~moecore.screening.second_look`), in the same exchange as the refits (a
        refit that followed a comparison is in ``refit``, its seconds counting both)
    warm_refit : ndarray (M',), each machine's refit from the reduced model (covariate weights)
    machine_weights : deciding and estimating w_m(x) at the server
    reduction, reduction_cpu : the MM reduction(s) at the server, wall-clock and CPU
    rounds : ndarray (rounds,), each refinement round (slowest machine per exchange + server)
    wall : the whole fit on the cores used ; read : ndarray (M,) or None, reading each shard's file
    local_iter : ndarray (M',), EM iterations of each successful local fit (the tail's other face)
    pilot, pilot_cpu : the server's pilot fit on the supporting sample (``pilot=True``), before the
        local fits
    check : the check after the fit (:func:`~moecore.shard_check.check_fit`), slowest machine; not
        in the learning time, which ends when the model is final

    Numbers of floats sent
    ----------------------
    one_shot_up : ndarray (M,), each machine's model, row count, support share and refits
    refit_down : ndarray (M,) or None, another machine's model sent to a flagged machine to refit from,
        or to a machine to compare with its own
    compare_up : ndarray (M,) or None, the one number each compared machine sent back
    pilot_down : ndarray (M,) or None, the pilot model sent to every machine before its local fit
    warm_refit_down : ndarray (M,) or None, the reduced model sent back for the warm refits
    check_down, check_up : ndarray (M,) or None, the final model sent to each checked machine and the
        two numbers it sent back
    round_up, round_down : ndarray (M,), per machine per round ; n_rounds : int
    """

    local: np.ndarray
    local_cpu: np.ndarray
    one_shot_up: np.ndarray
    screening: float = 0.0
    refit: np.ndarray = field(default_factory=_empty)
    warm_refit: np.ndarray = field(default_factory=_empty)
    machine_weights: float = 0.0
    reduction: float = 0.0
    reduction_cpu: float = 0.0
    rounds: np.ndarray = field(default_factory=_empty)
    wall: float = float("nan")
    read: np.ndarray | None = None
    warm_refit_down: np.ndarray | None = None
    refit_down: np.ndarray | None = None
    round_up: np.ndarray | None = None
    round_down: np.ndarray | None = None
    n_rounds: int = 0
    local_iter: np.ndarray = field(default_factory=_empty)
    pilot: float = 0.0
    pilot_cpu: float = 0.0
    pilot_down: np.ndarray | None = None
    check: float = 0.0
    check_down: np.ndarray | None = None
    check_up: np.ndarray | None = None
    compare: np.ndarray = field(default_factory=_empty)
    compare_up: np.ndarray | None = None

    @classmethod
    def of_local_fits(cls, results, n_params, support_shares, n_features):
        """The costs known once the local fits are back: their seconds, and the one-shot upload of
        every machine (its q free parameters and row count, its share of the support pairs)."""
        return cls(np.array([r.time for r in results]), np.array([r.cpu_time for r in results]),
                   n_params + 1 + support_shares * (n_features + 1),
                   local_iter=np.array([r.model.n_iter_ for r in results if r.model is not None]))

    def add_pilot(self, seconds, n_params):
        """Record the pilot fit: its (seconds, CPU seconds) or None (no pilot), and the model of
        ``n_params`` numbers it sent to every machine."""
        if seconds is not None:
            self.pilot, self.pilot_cpu = seconds
            self.pilot_down = np.full(len(self.local), float(n_params))

    def add_screening(self, out, extra_up):
        """Record the screening (:class:`~moecore.screening.ScreeningOutcome` ``out``): its seconds, its
        exchange's refits and comparisons, what went down, and what went up (``extra_up`` (M,): what
        each refitted model carries beside its parameters)."""
        self.screening, self.refit, self.compare = out.seconds, out.refit_times, out.compare_times
        self.refit_down = out.refit_down if out.refit_down.any() else None
        self.compare_up = out.compare_up
        self.one_shot_up = out.refit_up + extra_up + self.one_shot_up

    def add_check(self, seconds, machines, n_params):
        """Record the check after the fit: the slowest machine's ``seconds``, the model of ``n_params``
        numbers sent to each of ``machines`` and the three numbers each sent back."""
        self.check = float(seconds)
        self.check_down, self.check_up = np.zeros(len(self.local)), np.zeros(len(self.local))
        self.check_down[machines], self.check_up[machines] = n_params, 3.0

    def learning_time_parts(self, *, cpu=False) -> dict:
        """{term: seconds} whose sum is the learning time, machines truly in parallel.

        ``cpu=True`` takes the local fits and the reduction in CPU seconds (not inflated by other
        work on the host) and the other terms as measured.
        """
        return {
            "pilot": self.pilot_cpu if cpu else self.pilot,
            "slowest local fit": float(np.max(self.local_cpu if cpu else self.local)),
            "screening": self.screening,
            # The refits and the comparisons are one exchange: its slowest machine.
            "slowest refit or comparison": float(max(np.max(self.refit, initial=0.0),
                                                      np.max(self.compare, initial=0.0))),
            "slowest warm refit": float(np.max(self.warm_refit, initial=0.0)),
            "machine weights": self.machine_weights,
            "reduction": self.reduction_cpu if cpu else self.reduction,
            f"{self.rounds.size} refinement round(s)": float(np.sum(self.rounds)),
        }

    @property
    def learning_time(self) -> float:
        """The paper's figure, extended by our steps: the sum of :meth:`learning_time_parts`."""
        return sum(self.learning_time_parts().values())

    @property
    def learning_time_cpu(self) -> float:
        return sum(self.learning_time_parts(cpu=True).values())

    def describe(self, *, cpu=False) -> str:
        """The sum written out, e.g. "slowest local fit 0.210 s + reduction 0.031 s = 0.241 s"
        (terms of zero seconds left out, the local fits always shown)."""
        parts = self.learning_time_parts(cpu=cpu)
        terms = [f"{name} {sec:.3f} s" for name, sec in parts.items() if sec or name == "slowest local fit"]
        return " + ".join(terms) + f" = {sum(parts.values()):.3f} s"

    def timings(self) -> dict:
        """The ``timings_`` dict of the estimator (its documented keys)."""
        out = {
            "local": self.local, "local_max": float(self.local.max()), "local_sum": float(self.local.sum()),
            "local_cpu": self.local_cpu, "local_cpu_max": float(np.max(self.local_cpu)),
            "screening": self.screening, "refit": self.refit, "compare": self.compare,
            "warm_refit": self.warm_refit,
            "machine_weights": self.machine_weights, "reduction": self.reduction,
            "reduction_cpu": self.reduction_cpu, "rounds": self.rounds, "wall": self.wall,
            "learning_time": self.learning_time, "learning_time_cpu": self.learning_time_cpu,
            "local_spread": self.local_spread(), "pilot": self.pilot, "check": self.check,
        }
        if self.read is not None:
            out["read"] = self.read
        return out

    def local_spread(self) -> dict:
        """The tail of the local fits, since the slowest machine sets the learning time:
        {"time", "iterations"}, each {"median", "p90", "max"} over the machines (seconds; EM
        iterations of the kept run, successful fits only; NaN where there is none)."""
        def summary(a):
            if not a.size:
                return {"median": float("nan"), "p90": float("nan"), "max": float("nan")}
            return {"median": float(np.median(a)), "p90": float(np.quantile(a, 0.9)), "max": float(a.max())}

        return {"time": summary(np.asarray(self.local, dtype=np.float64)),
                "iterations": summary(np.asarray(self.local_iter, dtype=np.float64))}

    def communication(self) -> dict:
        """The ``communication_`` dict of the estimator: floats sent, per machine and in total."""
        M = len(self.one_shot_up)
        up = np.zeros(M) if self.round_up is None else self.round_up
        down = np.zeros(M) if self.round_down is None else self.round_down
        out = {"one_shot_up": self.one_shot_up, "round_up": up, "round_down": down}
        sent_more = 0.0
        for key in ("pilot_down", "refit_down", "compare_up", "warm_refit_down", "check_down", "check_up"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
                sent_more += float(getattr(self, key).sum())
        out["one_shot_total"] = float(self.one_shot_up.sum() + sent_more)
        out["rounds_total"] = float(self.n_rounds * (up.sum() + down.sum()))
        out["total"] = out["one_shot_total"] + out["rounds_total"]
        return out


# Peak memory of a fit (with the comparisons of compare_methods: a global EM, the local fits, their
# E-step arrays) over the bytes of its data X and y, float64: measured 12.5 with
# `/usr/bin/time -f %M python -m moecore compare --n 2000000 --machines 16 --backend sequential`
# (1.05 GB at 64 MB of data), rounded up.
FIT_MEMORY_FACTOR = 16


def fit_memory_bytes(n_samples, n_features, factor=FIT_MEMORY_FACTOR):
    """Estimated peak bytes of fitting ``n_samples`` rows of ``n_features`` inputs (and y)."""
    return int(n_samples) * (int(n_features) + 2) * 8 * factor


def check_memory(need, what, hint):
    """Raise MemoryError before allocating when ``need`` bytes exceed the memory available now.

    Allocating first is no check: Linux grants the memory and the kernel kills the process
    when it is touched (an uncatchable SIGKILL), taking other work on the machine with it.
    """
    import psutil

    free = psutil.virtual_memory().available
    if need > free:
        raise MemoryError(f"{what} needs about {need / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB is "
                          f"available: {hint}")
    return need
