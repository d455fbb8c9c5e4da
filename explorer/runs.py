"""Computations for the app: fits, comparisons and worked examples, cached, and their errors.

One place runs a computation for a page and turns its exception into a message
(:func:`attempt`), so every page behaves the same: the library's own ``ValueError`` text (which
says what to change) in an ``st.error``, the previous results kept.

Expensive work goes through ``st.cache_data``: a rerun that only changes a plot option reads the
session's results and recomputes nothing.  A cached result keeps the time it was measured at, so
the page can say it is cached; :func:`run_fit` with ``retime=True`` measures again.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field

import streamlit as st
from threadpoolctl import threadpool_limits

from moecore import (
    ConvergenceWarning,
    DegenerateFitWarning,
    DistributedMoE,
    MixtureOfExperts,
    MoEParams,
    VarianceFloorWarning,
)
from moecore.baselines import fit_global
from moecore.collinear import CollinearWarning
from moecore.costs import check_memory, fit_memory_bytes
from moecore.experiments import compare_methods, training_size
from moecore.metrics import rpe
from moecore.model import predict_mean
from moecore.outliers import OutlierWarning
from moecore.params import DISTRIBUTED_PARAMETERS, check_distributed_sizes, em_settings, min_samples
from moecore.shard_check import AccuracyWarning
from moecore.simulation import get_design
from moecore.splits import Split

from . import settings
from .data import Dataset, data_shape, dataset_from_settings, heldout
from .io import InputError
from .teaching import mm_walkthrough, rounds_walkthrough

# What a failed computation may raise: bad settings (ValueError/TypeError, InputError), a local
# fit that failed (LocalFitError, a RuntimeError), an unreachable cluster or a full disk (OSError),
# memory the server does not have (MemoryError: the session's other results are kept).
ERRORS = (ValueError, TypeError, RuntimeError, OSError, MemoryError)

# Dask schedulers the server may connect to: a comma-separated list of fnmatch patterns in the
# server's environment. A scheduler speaks pickles, so by default only this host's own.
SCHEDULER_ALLOW_ENV = "DMOE_DASK_SCHEDULERS"
DEFAULT_SCHEDULER_ALLOW = "tcp://127.0.0.1:*,tcp://localhost:*,tcp://[::1]:*"
# What a dask scheduler address looks like: protocol://host[:port] (e.g. tcp://10.0.0.5:8786).
_SCHEDULER_RE = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://[^\s/]+$")


KEPT = "The previous results stay on screen."


def settings_error(n, d, K, M, S) -> str:
    """Why no fit can run with K experts, M machines and a supporting sample of S on n rows of d inputs
    (the library's own message, :func:`moecore.params.check_distributed_sizes`); "" when one can."""
    try:
        check_distributed_sizes(K, M, S, n, d, min_samples(K, d), names=PAGE_SIZE_NAMES)
    except ValueError as exc:
        return str(exc)
    return ""


# The page's words for the library's parameters, as its widgets are labelled.
PAGE_SIZE_NAMES = {"n_experts": "K = {}", "n_machines": "M = {}", "support_size": "the supporting sample S", "K": "K"}


def attempt(what, fn, *args, after=KEPT, remember=None, **kw):
    """``fn(*args, **kw)``, or None after an ``st.error`` saying what failed and why.

    ``after``: what the message adds (what stays as it was, or what to do).  ``remember``: a
    session-state key that keeps the message (None on success), for a page that draws it again
    on later runs without repeating the work (an upload is parsed once).
    """
    try:
        out = fn(*args, **kw)
    except ERRORS as exc:
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, MemoryError):
            text = f"the server ran out of memory ({text}); use a smaller n, d, K or fewer machines"
        if not text.endswith("."):
            text += "."
        message = f"{what} failed: {text}" + (f" {after}" if after else "")
        if remember:
            st.session_state[remember] = message
        st.error(message)
        return None
    if remember:
        st.session_state.pop(remember, None)
    return out


def _outside_cache(fn):
    """Wrap a progress callback so its st.* calls are not recorded for cache replay.

    ``st.cache_data`` records every element update made while a cached function runs and
    replays it on a cache hit; a progress bar created outside the function cannot be replayed
    (CacheReplayClosureError).  The callback runs in the caller's context, captured before the
    cached call, where Streamlit does not record.
    """
    if fn is None:
        return None
    ctx = contextvars.copy_context()

    def cb(*args):
        ctx.run(fn, *args)

    return cb


# ------------------------------------------------------------------------------- settings -> fit
def fit_params(s: dict, *, automatic=False, sweep=False) -> dict:
    """The one map from app settings to keyword arguments: those of DistributedMoE (the Fit
    page's settings, for the Fit and Compare pages, the lessons and the K view) or, with
    ``sweep``, those of moecore.experiments.sweep / alpha_sweep (the Experiments page's
    settings, run where the Fit page's backend says).  Each setting's declaration names its
    argument (``explorer.settings.Setting.keyword``).

    ``automatic``: a run nobody asked for with a click (the first page load, a lesson's first
    view): it runs in this process (threading, same numbers for the same seed), so that opening a
    link never starts worker processes nor connects to a cluster.  n_jobs is capped at the
    server's cores in every case.
    """
    kw = {}
    for name in settings.FIT_SETTINGS:
        if settings.SETTINGS[name].keyword:
            kw[settings.SETTINGS[name].keyword] = s[name]
    if automatic and kw["backend"] in ("loky", "dask"):
        kw["backend"] = "threading"
    kw["n_jobs"] = max(1, min(int(kw["n_jobs"]), settings.MAX_JOBS))
    kw["scheduler"] = (kw.get("scheduler") or "").strip() or None if kw["backend"] == "dask" else None
    kw["split_alpha"], kw["split_feature"] = float(s["split_alpha"]), int(s["split_feature"])
    if not sweep:
        return kw
    out = {k: kw[k] for k in ("backend", "n_jobs", "scheduler")}
    for name in settings.EXPERIMENT_SETTINGS:
        if settings.SETTINGS[name].keyword:
            out[settings.SETTINGS[name].keyword] = s[name]
    if out["support_size"] is None or s["exp_parameter"] == "support_fraction":
        del out["support_size"]  # the sweep's own: the paper's rule, or the fractions of it swept
    return out


def split_of(kw: dict, labels=None):
    """The DistributedMoE keyword arguments of ``kw`` with its split settings as one Split.

    The fit settings keep the split as plain values (hashable, for the cache); the label split
    takes the data's true expert labels here.
    """
    kw = dict(kw)
    kind, alpha, feature = kw.pop("split"), kw.pop("split_alpha"), kw.pop("split_feature")
    if kind == "label" and labels is None:
        raise InputError("the label-skew split needs the true expert of every row: only simulated data has "
                         "it. Choose another split.")
    kw["split"] = Split(kind, alpha=alpha, feature=feature, labels=labels if kind == "label" else None)
    return kw


def scheduler_allow_list() -> list:
    """The scheduler address patterns this server may connect to (server-side setting)."""
    text = os.environ.get(SCHEDULER_ALLOW_ENV, DEFAULT_SCHEDULER_ALLOW)
    return [p.strip() for p in text.split(",") if p.strip()]


def check_scheduler(addr):
    """The server's policy on dask schedulers (not the library's rule): an address is needed,
    it must look like one, and it must be on this server's allow-list."""
    if not addr:
        raise InputError(
            "the dask backend needs the address of a running scheduler, e.g. tcp://127.0.0.1:8786 "
            "(start one with `dask scheduler` and `dask worker tcp://...`), or choose another backend."
        )
    if not _SCHEDULER_RE.match(addr):
        raise InputError(
            f"{settings.clip(addr)!r} is not a dask scheduler address: write protocol://host:port, e.g. tcp://127.0.0.1:8786."
        )
    allowed = scheduler_allow_list()
    if not any(fnmatch.fnmatchcase(addr, pat) for pat in allowed):
        raise InputError(
            f"this server only connects to the dask schedulers on its allow-list ({', '.join(allowed)}); "
            f"{settings.clip(addr)!r} is not on it. Use one of those, or ask the server's administrator to add it "
            f"to the {SCHEDULER_ALLOW_ENV} setting."
        )


def _checked(kw, labels):
    """The keyword arguments with the split resolved; the server's own rules checked first."""
    if kw["backend"] == "dask":
        check_scheduler(kw["scheduler"])
    return split_of(kw, labels)


def fit_work(n, d, kw: dict, *, distributed=1, reference=True) -> float:
    """The work of fitting ``n`` rows of ``d`` inputs with the fit settings ``kw`` (those of
    :func:`fit_params`), in the units of :data:`explorer.settings.MAX_SESSION_WORK`: ``distributed``
    distributed fits (local stage, reduction, rounds) and, with ``reference``, the global EM."""
    restarts = (distributed + bool(reference)) * kw["n_init"]
    return float(n) * (d + 1) * kw["n_experts"] * (restarts + distributed * (kw["refine_rounds"] + kw["mm_n_init"] / 4))


def check_budget(n, d, kw: dict, *, by_link=False):
    """Refuse, before any work, a fit beyond the session's budget (:data:`~explorer.settings.MAX_SESSION_WORK`,
    or :data:`~explorer.settings.MAX_LINK_WORK` for one a link starts by itself) or whose memory
    estimate exceeds :data:`~explorer.settings.MAX_SESSION_MEMORY_MB` or what the server has free."""
    work = fit_work(n, d, kw)
    limit = settings.MAX_LINK_WORK if by_link else settings.MAX_SESSION_WORK
    size = (f"n = {n:,} rows x (d + 1) = {d + 1} x K = {kw['n_experts']} x (2 x {kw['n_init']} restarts + "
            f"{kw['refine_rounds']} rounds + {kw['mm_n_init']} MM restarts / 4) = {work:.2g}")
    if work > limit:
        if by_link:
            raise InputError(f"this fit is larger than a link starts by itself ({size}; a link may start "
                             f"{limit:.2g}): press Run on the Distributed fit page to start it.")
        raise InputError(f"this fit is beyond a session's budget on this server ({size}; at most {limit:.2g}): "
                         "use fewer rows (n), inputs (d), experts (K), restarts or rounds.")
    need = fit_memory_bytes(n, d)
    if need > settings.MAX_SESSION_MEMORY_MB * 2**20:
        raise InputError(f"this fit would need about {need / 2**20:,.0f} MB of memory; a session may use "
                         f"{settings.MAX_SESSION_MEMORY_MB:,} MB: use fewer rows (n) or inputs (d).")
    check_memory(need, "this fit", "use fewer rows (n) or inputs (d), or try again when the server is less busy.")


def check_sweep_budget(design: str, parameter: str, kw: dict, values) -> None:
    """Refuse, before its first fit, a sweep of the Experiments page whose fits together exceed the
    session's budget (:data:`~explorer.settings.MAX_SESSION_WORK`), or whose largest fit exceeds
    the memory :func:`check_budget` allows.  ``kw``: the sweep's keyword arguments
    (:func:`fit_params` with ``sweep``, and ``data`` = (X (n, d), y (n,)) with ``test_size`` when
    the runs fit the current data, whose d and training rows then count, not a design's);
    ``values``: the values of ``parameter`` swept."""
    if kw.get("data") is not None:
        X, y = kw["data"]
        d, n_fit = X.shape[1], training_size(y.size, kw["test_size"])
    else:
        d, n_fit = get_design(design).params.n_features, kw["n"]
    base = {k: kw.get(k, DISTRIBUTED_PARAMETERS[k].default) for k in ("n_experts", "n_init", "refine_rounds",
                                                                       "mm_n_init")}
    # An alpha sweep fits each split and the random split it is compared with.
    shape = dict(distributed=2 if parameter == "alpha" else 1, reference=kw["include_global"])
    varied = parameter if parameter in ("refine_rounds", "n_experts") else None
    fits = [(int(v) if parameter == "n" else n_fit, dict(base, **{varied: int(v)}) if varied else base)
            for v in values]
    work = kw["repeats"] * sum(fit_work(n, d, f, **shape) for n, f in fits)
    if work > settings.MAX_SESSION_WORK:
        raise InputError(f"this sweep is beyond a session's budget on this server ({len(fits)} values x "
                         f"{kw['repeats']} repeats of fits of up to n = {max(n for n, _ in fits):,} rows, d = {d}, "
                         f"K up to {max(f['n_experts'] for _, f in fits)}: {work:.2g} in all; at most "
                         f"{settings.MAX_SESSION_WORK:.2g}): use fewer values or repeats, a smaller n or K, or fewer "
                         "restarts.")
    n, f = max(fits, key=lambda fit: fit_work(fit[0], d, fit[1], **shape))
    check_budget(n, d, f)


# ------------------------------------------------------------------------------- fits
@dataclass
class FitResult:
    """A distributed fit and its global EM reference, with what they were made from.

    settings : the app settings in use (backend and n_jobs as they actually ran); both models
        are fitted on all the rows of the data
    measured_at : when the timings were measured (time.time()); cached : whether this result
        came from the cache (its timings are those of the original run)
    """

    dm: DistributedMoE
    global_model: MixtureOfExperts
    settings: dict
    data_key: str
    wall: float
    key: str = ""
    train_rpe: dict = field(default_factory=dict)
    measured_at: float = 0.0
    cached: bool = False

    def matches(self, data: Dataset, s: dict) -> bool:
        """Whether this fit is of ``data`` with the fit settings of ``s``."""
        where = ("backend", "n_jobs", "scheduler")  # where a fit runs does not change its numbers
        now = {k: s[k] for k in settings.FIT_SETTINGS}
        mine, theirs = fit_params(self.settings), fit_params(dict(self.settings, **now))
        return self.data_key == data.key and all(mine[k] == theirs[k] for k in mine if k not in where)


@st.cache_data(max_entries=16, show_spinner=False)
def _fit_cached(data_key: str, _X, _y, kw: dict, retime: int = 0, _progress=None, _labels=None):
    t0 = time.perf_counter()
    dm = DistributedMoE(**split_of(kw, _labels)).fit(_X, _y, progress=_progress)
    if _progress is not None:
        _progress("global", 0, 1)
    g = fit_global(_X, _y, kw["n_experts"], random_state=kw["random_state"], **em_settings(kw))
    return dm, g, time.perf_counter() - t0, time.time()


def run_fit(data: Dataset, s: dict | None = None, progress=None, *, automatic=False, retime=False,
            by_link=False) -> FitResult:
    """Distributed fit (and the global EM reference) of the data's training rows; cached.

    ``retime``: measure again instead of returning a cached result.  ``by_link``: started by a
    link, not a click (the smaller budget of :func:`check_budget`).
    """
    s = dict(s or settings.settings())
    kw = fit_params(s, automatic=automatic)
    s.update(backend=kw["backend"], n_jobs=kw["n_jobs"])  # what actually ran
    X, y, labels = data.X, data.y, data.labels
    check_budget(data.n, data.d, kw, by_link=by_link)
    _checked(kw, labels)
    token = st.session_state.get("_retime", 0) + (1 if retime else 0)
    st.session_state["_retime"] = token
    t_call = time.time()
    dm, g, wall, measured_at = _fit_cached(data.key, X, y, kw, token, _progress=_outside_cache(progress),
                                           _labels=labels)
    train_rpe = {"reduction": rpe(y, predict_mean(X, dm.params_)), "global": rpe(y, predict_mean(X, g.params_))}
    key = hashlib.sha1(repr((data.key, sorted(kw.items()), token)).encode()).hexdigest()[:16]
    return FitResult(dm, g, s, data.key, wall, key, train_rpe, measured_at, measured_at < t_call)


@st.cache_data(max_entries=8, show_spinner=False)
def _compare_cached(data_key: str, _X, _y, _Xt, _yt, _labels, truth_json, kw: dict, fit_key: str = "",
                    unaligned: bool = False, _fitted=None, _progress=None, _train_labels=None):
    truth = MoEParams.from_dict(json.loads(truth_json)) if truth_json else None
    kw = split_of(kw, _train_labels)
    K, M, seed = kw.pop("n_experts"), kw.pop("n_machines"), kw.pop("random_state")
    dm, g = _fitted or (None, None)
    return compare_methods(_X, _y, _Xt, _yt, K, M, labels_test=_labels, truth=truth, random_state=seed,
                           distributed=dm, global_model=g, unaligned=unaligned, progress=_progress, **kw)


def automatic_compare_size(data: Dataset, n_train: int) -> str:
    """Why a page's first comparison of ``data`` (fitted on its ``n_train`` training rows) is not started
    by itself ("" when it may be): the size of its fit, beyond what the app starts without a click
    (:func:`check_budget` ``by_link``)."""
    kw = fit_params(settings.settings(), automatic=True)
    work = fit_work(n_train, data.d, kw)
    if work <= settings.MAX_LINK_WORK:
        return ""
    return (f"This comparison ({work:.2g} units of work) is larger than the app starts without a click "
            f"({settings.MAX_LINK_WORK:.2g})")


def run_compare(data: Dataset, s: dict | None = None, progress=None, *, automatic=False, fit=None,
                by_link=False):
    """compare_methods on the data's training rows, evaluated on held-out data; cached.

    ``fit``: the session's FitResult; when it is of this data with these settings and was fitted on
    the same rows (simulated data, whose held-out set is a fresh draw) its models are evaluated as
    they are, else the comparison fits what it needs (uploads hold 20 % of their rows out).
    """
    s = dict(s or settings.settings())
    Xt, yt, lt, tr = heldout(data)
    X, y = data.X[tr], data.y[tr]
    kw = fit_params(s, automatic=automatic)
    truth_json = json.dumps(data.truth.to_dict()) if data.truth is not None else ""
    if data.truth is not None and data.truth.n_experts != kw["n_experts"]:
        truth_json = ""  # parameter metrics need the same K
    train_labels = data.labels[tr] if data.labels is not None else None
    check_budget(len(tr), data.d, kw, by_link=by_link)
    _checked(kw, train_labels)
    fitted, fit_key = None, ""
    if fit is not None and fit.matches(data, s) and len(tr) == data.n:
        fitted, fit_key = (fit.dm, fit.global_model), fit.key
    cmp = _compare_cached(data.key, X, y, Xt, yt, lt, truth_json, kw, fit_key, bool(s["cmp_unaligned"]),
                          _fitted=fitted,
                          _progress=_outside_cache(progress), _train_labels=train_labels)
    return cmp, (Xt, yt, lt), bool(fit_key)


# ------------------------------------------------------------------------------- session
# What the library warns about and the pages show from the fitted attributes instead (screening,
# retired experts, skipped machines, the EM's convergence) or from the data (outlying rows, tied
# inputs): on the server's log it is noise.
# A dead worker process stays on the log: it is the server's news, not a session's.
_SHOWN_ON_PAGES = (r"(skipped \d+ failed machine"
                   r"|the screening left out machine)")
LIBRARY_WARNINGS = ((DegenerateFitWarning, ""), (ConvergenceWarning, ""), (RuntimeWarning, _SHOWN_ON_PAGES),
                    (AccuracyWarning, ""), (OutlierWarning, ""), (CollinearWarning, ""), (VarianceFloorWarning, ""))


def _process_settings():
    """Settings of the server process, made once, before any session fits.

    Warning filters and BLAS thread limits are process-wide: entered and restored around each fit
    (``warnings.catch_warnings``, a ``threadpool_limits`` context), they would race between the
    sessions' threads, one session restoring what another had just set.  The library's hot loops
    run on one BLAS thread (moecore._threads); with the process at one thread already, their
    limit is a no-op and there is nothing left to undo.
    """
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    threadpool_limits(limits=1)


@st.cache_resource(show_spinner=False)
def warm_up():
    """Once per server process: the process settings (:func:`_process_settings`), then one tiny
    fit, which loads the numba kernels from their cache (compiled during ``make setup``) and starts
    the thread pools, so the timings shown for the first real fit are those of the fit and not of
    the process warming up."""
    from moecore.simulation import simulate_design

    _process_settings()
    sim = simulate_design(settings.DEFAULT_DESIGN, 1200, random_state=0)
    # The default portfolio, not k-means starts alone (0.30 s against 0.19 s): its line starts (k-planes)
    # have kernels of their own, which a k-means warm-up left to the first session's fit. Where their on-disk
    # cache was cold (a server started without `make setup`), machine 1 then took 4.1 s to compile them, and
    # the cached first fit showed every later session a speed-up of 0.0057x (the audit of 2026-12-06).
    DistributedMoE(3, 2, backend="threading", n_jobs=2, random_state=0).fit(sim.X, sim.y)
    MixtureOfExperts(3, random_state=0).fit(sim.X, sim.y)
    return True


def _refuse_a_heavy_link(ss):
    """The link's budget checked from its n and d before its data is simulated.  A refused link keeps
    its settings, n too up to :data:`~explorer.settings.MAX_LINK_ROWS`; beyond, n falls back to the
    default (simulating 10^6 rows holds the GIL for a second that every other session waits), and
    the message says how to ask for the full size."""
    s = settings.settings()
    n, d = data_shape(s)
    try:
        check_budget(n, d, fit_params(s, automatic=True), by_link=True)
    except ERRORS as exc:
        ss["_auto_fit_tried"] = True
        msg = f"The automatic first fit was not started: {exc}"
        default_n = settings.SETTINGS["n"].default
        if n > max(default_n, settings.MAX_LINK_ROWS) and s["source"] != "real":  # a real set loads whole, cheaply
            settings.set_setting("n", default_n)
            msg += (f" The data was not simulated at n = {n:,} either: it has n = {default_n:,} rows; set n on "
                    "the Data page and press Generate data before you press Run.")
        ss["startup_notice"] = msg  # a choice made for the user, not a failure: shown as information


def ensure_data_and_fit():
    """A session's first run: data and a fitted model before any page draws.

    The automatic first fit runs in this process (see :func:`fit_params`): a link alone never
    starts worker processes or connects to a cluster.
    """
    ss = st.session_state
    warm_up()
    if "data" not in ss and "fit" not in ss and not ss.get("_auto_fit_tried"):
        _refuse_a_heavy_link(ss)
    if "data" not in ss:
        try:
            ss["data"] = dataset_from_settings()
        except ERRORS as exc:
            ss["startup_error"] = f"Could not build the data from the URL settings: {exc}"
            settings.reset_settings()
            ss["data"] = dataset_from_settings()
    feature = settings.settings()["split_feature"]
    if feature >= ss["data"].d:  # a link's input of the regions beyond the data's (sfeat=5 with one input)
        settings.set_setting("split_feature", 0)
        ss["startup_ignored"] = (f"sfeat={feature}: the data have {ss['data'].d} input(s), so the regions follow "
                                 f"input 0 ({ss['data'].x_names[0]})")
    if "fit" not in ss and not ss.get("_auto_fit_tried"):
        ss["_auto_fit_tried"] = True
        try:
            ss["fit"] = run_fit(ss["data"], automatic=True, by_link=True)
        except ERRORS as exc:
            ss["startup_error"] = (f"The automatic first fit failed: {exc} Change the settings on the Distributed "
                                   "fit page.")


@st.cache_resource(max_entries=64, show_spinner=False)
def _shared_figure(name: str, key: tuple, data_labels: tuple, _build):
    return _build()


def figure(name: str, key: tuple, build):
    """A figure built once per (name, key) on this server and shared read-only by every session:
    a rerun that changes one plot option rebuilds only the figure that option belongs to, and a
    class opening one link builds each figure once, not once per student (building the Fit page's
    figures took about 0.1 s of each session's first run, with the GIL held: five sessions opening
    at once waited for each other's figures).  ``key`` must name everything the figure shows
    (pages pass the fit's and the data's keys); the data's names are added here, since the data's
    key is a hash of its numbers only and two uploads of one table may name its columns apart."""
    data = st.session_state.get("data")
    labels = () if data is None else (data.key, data.name, tuple(data.x_names), data.y_name)
    return _shared_figure(name, tuple(key), labels, build)


# ------------------------------------------------------------------------------- Learn page
@st.cache_resource(max_entries=8, show_spinner=False)
def learn_example(M: int, seed: int, init: str, n: int = 2000):
    """The Learn page's live example (:func:`explorer.teaching.mm_walkthrough`), computed once and
    shared read-only (no copy per rerun: a step only redraws)."""
    return mm_walkthrough(M, seed, init, design=settings.DEFAULT_DESIGN, n=n)


@st.cache_data(max_entries=8, show_spinner=False)
def learn_rounds(M: int, seed: int, rounds: int = 3, n: int = 2000):
    """The Learn example refined by distributed EM rounds (:func:`explorer.teaching.rounds_walkthrough`)."""
    return rounds_walkthrough(learn_example(M, seed, "kmeans", n), rounds)

