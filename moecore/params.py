"""The estimators' parameters, declared once: type, range, choices, default and what each means.

In the manner of scikit-learn's ``_parameter_constraints``: :class:`~moecore.em.MixtureOfExperts`
and :class:`~moecore.distributed.DistributedMoE` validate their parameters from
:data:`EM_PARAMETERS` and :data:`DISTRIBUTED_PARAMETERS`, and everything that shows or takes a
setting reads the same declaration: the command line (:mod:`moecore.cli`: flags, choices,
defaults, help), the app (``explorer.settings``: widgets' bounds, options, help text, URL keys)
and the settings recorded with a saved model.  A rule changed here changes everywhere.

Messages are written for people: ``"<name> must be in [low, high], got <value>: <what it is>."``
says what is wrong and what the parameter means, so the app can show them as they are.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._validation import check_choice, check_float, check_int, check_random_state_seed

__all__ = [
    "BACKENDS",
    "DISTRIBUTED_PARAMETERS",
    "EM_PARAMETERS",
    "EM_SETTINGS",
    "GATE_TARGETS",
    "LOCAL_CHECKS",
    "MACHINE_WEIGHTS",
    "MM_SETTINGS",
    "SIMULATION_PARAMETERS",
    "SPLITS",
    "SPLIT_PARAMETERS",
    "SWEEPABLE",
    "SWEEP_PARAMETER",
    "VARIANCE_UPDATES",
    "Param",
    "check_distributed_sizes",
    "check_parameters",
    "default_support_size",
    "em_settings",
    "min_samples",
    "min_samples_rule",
    "mm_settings",
    "n_free_parameters",
    "parameters_doc",
    "rule_support_size",
]

# ------------------------------------------------------------------------------ choice lists
# Every list of choices is written here, on the bottom floor: the algorithm modules import them
# from here (never the other way round), so a choice added here is accepted everywhere at once.

# joblib's backends, plus dask.distributed's workers (moecore.dispatch runs tasks on them).
BACKENDS = ("loky", "threading", "multiprocessing", "sequential", "dask")
# The variance update of MM: the exact minimiser, or the authors' code (local variances only).
VARIANCE_UPDATES = ("debiased", "exact", "authors")
# What the reduced gate is fitted to (docs/method.md, "Gate targets"): each local component's whole
# gate mass sent to its dominant reduced expert ("component", the default), the pointwise plan's
# gate mass ("plan", the paper), posterior responsibilities on the support pairs ("posterior", the
# authors' code), or no fit: the mass-weighted mean of the machines' aligned gate coefficients
# ("coefficients").
GATE_TARGETS = ("component", "plan", "posterior", "coefficients")
# What the screening does with a poor local fit (moecore.screening).
LOCAL_CHECKS = ("refit", "drop", "off")
# The machines' weights in the large mixture (moecore.machine_weights).
MACHINE_WEIGHTS = ("constant", "covariate", "auto")
# How rows are spread over machines (moecore.splits.Split checks its kind against these).
SPLITS = ("random", "region", "kmeans", "label")
# What a sweep of moecore.experiments may vary.
SWEEPABLE = ("n_machines", "support_fraction", "n", "refine_rounds", "n_experts")


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, range or choices, default and a sentence on what it means.

    kind : {"int", "float", "choice", "bool", "text", "seed", "object"}
        "seed" is a ``random_state`` (None, a non-negative int or a SeedSequence); "object" is
        checked by its estimator (a split, a scheduler, a warm start), not here.
    low, high : inclusive bounds (``low_open``: low itself excluded); None = unbounded
    choices : the allowed values of a "choice"
    none : when not empty, None is allowed and means this (e.g. "floor(n / (4 M))")
    label : a short name for people (the symbol of the paper when it has one)
    """

    name: str
    kind: str
    default: Any
    help: str
    label: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple = ()
    none: str = ""
    excluded: tuple = ()
    excluded_why: str = ""

    def check(self, value):
        """Return ``value`` (as int/float for numbers) or raise ValueError/TypeError saying why."""
        if value is None and self.none:
            return None
        try:
            if self.kind == "int":
                value = check_int(value, self.name, low=self.low, high=self.high)
                if value in self.excluded:
                    raise ValueError(f"{self.name} {self.excluded_why or 'must not be that'}, not {value}")
                return value
            if self.kind == "float":
                return check_float(value, self.name, low=self.low, high=self.high, low_open=self.low_open)
            if self.kind == "choice":
                return check_choice(value, self.name, self.choices)
            if self.kind == "seed":
                check_random_state_seed(value, self.name)
                return value
            if self.kind == "bool" and not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name} must be true or false, got {value!r}")
            if self.kind == "bool":
                return bool(value)
            if self.kind == "text" and not isinstance(value, str):
                raise TypeError(f"{self.name} must be text, got {type(value).__name__}")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{str(exc).rstrip('.')}: {self.help}") from None
        return value

    def parse(self, text: str):
        """The value written as ``text`` (a command-line argument, a URL parameter), checked."""
        text = str(text).strip()
        if self.none and text.lower() in ("", "none", "auto"):
            return None
        if self.kind in ("int", "seed"):
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"{self.name}={text!r} is not an integer.") from None
        elif self.kind == "bool":
            low = text.lower()
            if low not in _TRUE + _FALSE:
                raise ValueError(f"{self.name}={text!r} is not true or false.")
            value = low in _TRUE
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{self.name}={text!r} is not a number.") from None
        else:
            value = text
        return self.check(value)

    def with_range(self, low=None, high=None, default=None):
        """This parameter with a narrower range (and default) for an interactive tool.

        The app offers K <= 10 and M <= 256; the library accepts more.  Only narrows: a bound
        outside the library's own range is refused.
        """
        lo = self.low if low is None else low
        hi = self.high if high is None else high
        if (self.low is not None and lo < self.low) or (self.high is not None and hi > self.high):
            raise ValueError(f"{self.name}: [{lo}, {hi}] is wider than the library's range.")
        open_low = self.low_open and lo == self.low
        return replace(self, low=lo, high=hi, low_open=open_low, default=self.default if default is None else default)

    def with_choices(self, choices):
        """This choice parameter offering only some of its choices (e.g. no dask without a scheduler)."""
        if not set(choices) <= set(self.choices):
            raise ValueError(f"{self.name}: {sorted(set(choices) - set(self.choices))} are not choices.")
        default = self.default if self.default in choices else next(iter(choices))
        return replace(self, choices=tuple(choices), default=default)

    @property
    def range_text(self):
        if self.kind == "choice":
            return ", ".join(map(str, self.choices))
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}{']' if self.high is not None else ')'}"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _declare(*params):
    return {p.name: p for p in params}


# Upper bounds where a larger value is never a choice but a slip, which would run for hours or report a
# meaningless fit as converged: 10**18 restarts filled the memory with seeds; tol = 1 stopped EM after two
# iterations (-1.83 nats per point where it converges to -0.96); var_floor = 10 set every variance to 10
# var(y), "converged", without a warning; 10 000 gate steps a fit took 67 s for the result of 10.
MAX_RESTARTS = 1000
MAX_TOL = 0.01
MAX_VAR_FLOOR = 0.1
MAX_GATE_STEPS = 100

# ------------------------------------------------------------------------------ EM
EM_PARAMETERS = _declare(
    Param("n_experts", "int", 2, "the number of experts K", "K", low=1),
    Param("init", "choice", "portfolio",
          "the initial partition: portfolio (short EM runs from k-means, random-lines and random starts, "
          "the best continued), k-means on the standardised (x, y) pairs, random labels, or random lines "
          "(or a MoEParams to warm-start from)", choices=("portfolio", "kmeans", "random", "lines")),
    Param("n_init", "int", 1, "EM restarts; the run of highest log-likelihood is kept", "restarts", low=1,
          high=MAX_RESTARTS),
    Param("max_iter", "int", 300, "the most EM iterations per restart", low=1),
    Param("tol", "float", 1e-6, "EM stops when the log-likelihood changes by less than this, relatively",
          low=0.0, high=MAX_TOL),
    Param("var_floor", "float", 1e-6, "the smallest expert variance, relative to var(y)", low=0.0,
          low_open=True, high=MAX_VAR_FLOOR),
    Param("gate_steps", "int", 1, "Newton steps on the gates per EM iteration", low=1, high=MAX_GATE_STEPS),
    Param("acceleration", "choice", "squarem",
          "squarem extrapolates every two EM steps (never lowering the log-likelihood); none is plain EM",
          choices=("squarem", "none")),
    Param("split_moves", "bool", False,
          "after the starts, try split-and-merge moves from the best run: higher training maxima, often through "
          "sharper experts, which fit held-out data worse on small simulated designs (off by default)"),
    Param("random_state", "seed", None, "the seed: None, a non-negative integer or a numpy SeedSequence",
          "seed", none="fresh entropy"),
)

# The EM settings every fit of one comparison shares: the local fits, their refits and the global
# EM of the app, the sweeps and the command line (a global EM that dropped one would be fitted
# under other rules than the machines it is compared with).
EM_SETTINGS = ("init", "n_init", "max_iter", "tol", "var_floor", "gate_steps", "acceleration")


def em_settings(source) -> dict:
    """The :data:`EM_SETTINGS` of an estimator or a dict of parameters (those it has)."""
    get = source.get if isinstance(source, dict) else lambda k, d=None: getattr(source, k, d)
    return {k: get(k) for k in EM_SETTINGS if get(k) is not None}


# The MM reduction's settings: the estimator's parameter name and reduce_mixtures' argument name.
MM_SETTINGS = {"mm_n_init": "n_init", "mm_max_iter": "max_iter", "mm_tol": "tol", "mm_local_starts": "local_starts",
               "variance_update": "variance_update", "gate_targets": "gate_targets"}


def mm_settings(source) -> dict:
    """The keyword arguments of :func:`~moecore.reduction.reduce_mixtures` from an estimator's
    :data:`MM_SETTINGS`."""
    return {arg: getattr(source, name) for name, arg in MM_SETTINGS.items()}


# ------------------------------------------------------------------------------ distributed
DISTRIBUTED_PARAMETERS = _declare(
    EM_PARAMETERS["n_experts"],
    Param("n_machines", "int", 4, "the number of machines M the rows are split over", "M", low=1),
    Param("support_size", "int", None, "the size S of the supporting sample drawn from the pooled data",
          "S", low=1, none="floor(n / (4 M))"),
    Param("n_jobs", "int", None, "the number of local fits run at once (-1: all cores)", "n_jobs",
          none="joblib's default", excluded=(0,),
          excluded_why="must be a positive number of workers or -1 (all cores)"),
    Param("backend", "choice", "loky",
          "where the local fits run: loky/multiprocessing processes, threads, one after another, or "
          "the workers of a dask.distributed cluster", choices=BACKENDS),
    # Each machine starts from its own rows: a warm start (a MoEParams) is MixtureOfExperts' alone.
    replace(EM_PARAMETERS["init"], help=EM_PARAMETERS["init"].help.replace(
        " (or a MoEParams to warm-start from)", ", on every machine (a MoEParams warm start is MixtureOfExperts' "
        "alone; pilot=True sends every machine one shared start)")),
    *(EM_PARAMETERS[k] for k in EM_SETTINGS if k != "init"),
    EM_PARAMETERS["random_state"],
    Param("mm_n_init", "int", 3, "k-means starts of the MM reduction", "MM restarts", low=1, high=MAX_RESTARTS),
    Param("mm_max_iter", "int", 200, "the most MM iterations per start", low=1),
    Param("mm_tol", "float", 1e-8, "MM stops when its objective falls by less than this, relatively", low=0.0,
          high=MAX_TOL),
    Param("mm_local_starts", "int", 1, "further MM starts from the best-scoring local models", low=0),
    Param("variance_update", "choice", "debiased",
          "debiased: the MM minimiser with each local variance net of its line's estimation noise (small "
          "shards); exact: the MM minimiser over the reduced variances (the paper); authors: the local "
          "variances only, as the authors' code", choices=VARIANCE_UPDATES),
    Param("gate_targets", "choice", "component",
          "how the reduced gate is obtained: component (each local expert's mass to its dominant reduced "
          "expert), plan (the paper's pointwise plan), posterior (the authors' code) or coefficients "
          "(aligned local gate coefficients, averaged)", choices=GATE_TARGETS),
    Param("local_check", "choice", "refit",
          "screening of poor local fits, on the supporting sample and on each machine's own rows (the best-scoring "
          "model against its own): refit from a better machine's model, drop, or off (the paper)",
          choices=LOCAL_CHECKS),
    Param("refine_rounds", "int", 0,
          "distributed EM rounds after the one-shot reduction, each one exact global EM iteration "
          "(0: the paper's one-shot estimator)", "rounds", low=0, high=1000),
    Param("on_error", "choice", "raise",
          "a failed local fit raises LocalFitError (raise) or is left out with the weights renormalised (skip)",
          choices=("raise", "skip")),
    Param("scheduler", "object", None, "for backend='dask': a scheduler address or a distributed Client (a "
          "pickled estimator keeps the Client's address: a Client holds a live connection)",
          none="the current dask client"),
    Param("split", "object", "random",
          "how the rows are spread over the machines: random (the paper), region, kmeans or label, "
          "a moecore.splits.Split or a callable"),
    Param("machine_weights", "choice", "auto",
          "the machines' weights in the large mixture: constant n_m / n (the paper), covariate P(machine | x), "
          "or auto (covariate when a test finds the machines hold different x)", choices=MACHINE_WEIGHTS),
    Param("local_experts", "choice", "fixed",
          "fixed: every machine fits K experts; bic: each machine keeps the number of experts (at most K) "
          "of lowest BIC", choices=("fixed", "bic")),
    Param("pilot", "bool", False,
          "a pilot start: the server fits K experts to the supporting sample before the local fits and sends "
          "that model to every machine as one more start of its portfolio (needs init='portfolio')"),
)


# ------------------------------------------------------------------------------ splits
SPLIT_PARAMETERS = _declare(
    Param("split", "choice", "random",
          "how the rows are spread over the machines: random (the paper), by region of one input, by k-means "
          "cluster of x, or by true expert (label skew)", choices=SPLITS),
    Param("alpha", "float", 0.0, "the share of rows dealt out again at random (0: separated, 1: random)",
          "alpha", low=0.0, high=1.0),
    Param("feature", "int", 0, "the input whose quantile bands are the regions (0: the first)", low=0),
    Param("concentration", "float", None, "the Dirichlet concentration of unequal shard sizes", low=0.0,
          low_open=True, none="near-equal sizes"),
)

# ------------------------------------------------------------------------------ sweeps
SWEEP_PARAMETER = Param("parameter", "choice", "n_machines",
                        "what a sweep varies (support_fraction multiplies floor(n / (4 M)))", choices=SWEEPABLE)

# ------------------------------------------------------------------------------ simulation
SIMULATION_PARAMETERS = _declare(
    Param("n", "int", 20_000, "the number of samples to draw", "n", low=1),
    Param("x_dist", "choice", "gaussian", "the distribution of each input", choices=("gaussian", "uniform")),
    # Inputs whose squares stay finite (_SQUARE_SAFE): an x_scale of 1e308 overflowed in NumPy's uniform.
    Param("x_loc", "float", 0.0, "the location (centre) of each input", low=-1e100, high=1e100),
    Param("x_scale", "float", 1.0, "the scale of each input: the standard deviation or the half-width", low=0.0,
          low_open=True, high=1e100),
    Param("random_state", "seed", None, "the seed: None, a non-negative integer or a numpy SeedSequence",
          "seed", none="fresh entropy"),
)


def min_samples(n_experts, n_features):
    """Fewest samples EM accepts for K experts on d features: K (d + 1) + 1.

    Below this, some expert is bound to get fewer points than its d + 1 coefficients. The same
    bound applies to every machine's shard (``DistributedMoE``, ``fit_shards``, the app's checks).
    """
    return n_experts * (n_features + 1) + 1


def min_samples_rule(n_experts, n_features, experts="n_experts"):
    """The bound written for people: "n_experts * (d + 1) + 1 = 7" (every message that cites it);
    ``experts`` is the caller's word for K."""
    return f"{experts} * (d + 1) + 1 = {min_samples(n_experts, n_features)}"


def n_free_parameters(n_experts, n_features):
    """Free parameters of a K-expert MoE on d inputs: (K - 1)(d + 1) gate + K (d + 1) expert
    coefficients + K variances."""
    p = n_features + 1
    return (n_experts - 1) * p + n_experts * p + n_experts


def default_support_size(n, n_machines):
    """The paper's supporting sample size, floor(n / (4 M)): a quarter of a shard."""
    return max(1, int(n) // (4 * int(n_machines)))


def rule_support_size(n, n_machines, n_experts):
    """The S a fit takes when support_size is None: the paper's floor(n / (4 M)), at least K (a point
    per reduced expert)."""
    return max(default_support_size(n, n_machines), int(n_experts))


def _size_advice(K, M, n, d, per_shard):
    """What to change when M shards of n samples cannot hold K experts on d inputs: only advice that
    works (one machine may not hold K experts either, and a shard may hold no expert at all)."""
    machines, experts = n // per_shard, (n // M - 1) // (d + 1) if M <= n else 0
    # "At most" here is where a fit can run at all; the small-shard rule (moecore.shard_check), shown
    # beside this on the Fit page, advises fewer machines for accuracy: each number says which it is.
    most = (f"use at most {machines} machine(s), the most that can run at all (each needs {per_shard} samples "
            f"for {K} experts; the small-shard rule advises fewer for accuracy)")
    options = ([most] * (machines >= 1)
               + [f"at most {experts} expert(s)"] * (1 <= experts < K))
    if options:
        return "To fix: " + ", or ".join(options) + "."
    most = (n - 1) // (d + 1)
    if most >= 1:
        return (f"Even one machine cannot fit {K} expert(s) on these {n} samples (it needs {per_shard}): use at most "
                f"{most} expert(s) on one machine, or more data.")
    return f"No fit is possible on {n} sample(s) of {d} input(s): one expert needs {d + 2}. Use more data."


# How check_distributed_sizes' messages write each parameter; a caller with its own labels (the app's
# "M = 5") passes its own, so the message is built in its words rather than rewritten afterwards
# ("K": the word for K inside the shard-size formula).
SIZE_NAMES = {"n_experts": "n_experts={}", "n_machines": "n_machines={}", "support_size": "support_size",
              "K": "n_experts"}


def check_distributed_sizes(n_experts, n_machines, support_size, n, d, per_shard, *, names=None):
    """The supporting sample size S for n samples of d inputs, after checking that M machines of
    ``per_shard`` samples at least (K experts of d + 1 coefficients each) fit in n.

    Raises ValueError saying how many machines or experts would fit, or the range of S.  ``names``
    overrides :data:`SIZE_NAMES`, the messages' words for each parameter.
    """
    K, M, nm = n_experts, n_machines, {**SIZE_NAMES, **(names or {})}
    if M > n or n // M < per_shard:
        machines, experts = nm["n_machines"].format(M), nm["n_experts"].format(K)
        head = (f"{machines} is more than the n = {n} samples" if M > n else
                # One machine: no machine count helps, the experts are too many for the data.
                f"{experts} is too many for the n = {n} samples, even on one machine: a fit of {K} experts needs "
                f"at least {min_samples_rule(K, d, nm['K'])} samples" if M == 1 else
                f"{machines} is too large for n={n} samples with {experts}: {K} experts are more than a "
                f"shard can support. Each of the {M} shards gets {n // M} samples, but each shard needs at least "
                f"{min_samples_rule(K, d, nm['K'])} samples")
        raise ValueError(f"{head}. {_size_advice(K, M, n, d, per_shard)}")
    if support_size is None:
        return rule_support_size(n, M, K)
    S = check_int(support_size, nm["support_size"])
    if not K <= S <= n:
        why = (f"the supporting sample is drawn from the data, so it cannot be larger than n = {n}" if S > n
               else f"it needs a point per reduced expert, so it cannot be smaller than K = {K}")
        raise ValueError(f"{nm['support_size']} must be in [{K}, {n}], got {S}: {why}.")
    return S


def parameters_doc(spec: dict, indent="    ") -> str:
    """The numpydoc "Parameters" entries of a declaration: name, range or choices, default, help.

    The estimators' docstrings are written from it, so a default or a range is stated once.
    """
    lines = []
    for p in spec.values():
        kind = {"int": "int", "float": "float", "bool": "bool", "text": "str", "seed": "int, SeedSequence or None",
                "object": "object"}.get(p.kind, "")
        what = f"{{{', '.join(repr(c) for c in p.choices)}}}" if p.kind == "choice" else f"{kind} in {p.range_text}"
        if p.kind in ("seed", "object", "bool", "text"):
            what = kind
        lines.append(f"{p.name} : {what}, default {p.default!r}")
        text = f"{p.help[0].upper()}{p.help[1:]}" + (f"; None: {p.none}." if p.none else ".")
        lines.extend(textwrap.wrap(text, 96, initial_indent=indent, subsequent_indent=indent))
    return f"\n{indent}".join(lines)


def check_parameters(spec: dict, source) -> dict:
    """Check every declared parameter of ``source`` (an estimator or a dict); return the values.

    Kinds "object" are returned unchecked, for their estimator to check.
    """
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k)
    return {name: p.check(get(name)) for name, p in spec.items()}

