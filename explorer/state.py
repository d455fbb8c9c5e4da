"""Session state, shareable URL settings and cached wrappers around :mod:`moecore`.

Every user setting lives in ``st.session_state`` under a ``cfg_*`` key that is also the key of
its widget, so it survives page switches (``keep_settings``) and can be written to and read from
the URL (``settings_from_query``/``settings_to_query``).  Data and fitted models are session
state too (``data``, ``fit``, ``compare``, ``sweep``): each browser session has its own, and a
failed computation never overwrites the last good result.

Expensive work goes through ``st.cache_data``: a rerun that only changes a plot option reads
the session's results and recomputes nothing.  The cache returns a fresh unpickled copy per call,
so sessions never share mutable objects.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import os
import re
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from moecore import DistributedMoE, MixtureOfExperts, MoEParams
from moecore.distributed import default_support_size
from moecore.em import min_samples
from moecore.reduction import GATE_TARGETS, VARIANCE_UPDATES
from moecore.screening import LOCAL_CHECKS
from moecore.experiments import compare_methods
from moecore.machine_weights import MACHINE_WEIGHTS
from moecore.splits import SPLITS, Split
from moecore.simulation import DESIGNS, get_design, simulate

from .io import InputError

DEFAULT_DESIGN = "teaching-1d"
# Worker processes are capped at the server's cores, whatever a link or a widget asks for:
# /?jobs=1000&backend=loky started ~430 processes that never returned.
MAX_JOBS = max(1, os.cpu_count() or 1)
# Dask schedulers the server may connect to: a comma-separated list of fnmatch patterns in the
# server's environment. A scheduler speaks pickles, so by default only this host's own.
SCHEDULER_ALLOW_ENV = "DMOE_DASK_SCHEDULERS"
DEFAULT_SCHEDULER_ALLOW = "tcp://127.0.0.1:*,tcp://localhost:*,tcp://[::1]:*"
# Refinement rounds offered in the app: 3 reach the global EM's parameters on every shipped
# design (benchmarks/bench_reduction_params.py); a few more show the curve flatten.
MAX_APP_ROUNDS = 10
# Measured in benchmarks/bench_app.py: data + 8 local fits + reduction + global EM on 20 000
# points take well under 2 s on 2 cores with the threading backend (loky pays ~1-3 s to start
# its worker processes on the first fit, more than the whole fit costs).
DEFAULTS = {
    "cfg_source": "design",
    "cfg_design": DEFAULT_DESIGN,
    "cfg_n": 20_000,
    "cfg_seed": 0,
    "cfg_x_dist": "uniform",
    "cfg_x_scale": 3.0,
    "cfg_custom_K": 3,
    "cfg_custom_d": 1,
    "cfg_custom_sep": 2.0,
    "cfg_custom_gate": 3.0,
    "cfg_custom_var": 0.1,
    "cfg_K": 3,
    "cfg_M": 8,
    "cfg_support_auto": True,
    "cfg_support": 625,
    "cfg_restarts": 1,
    "cfg_mm_restarts": 3,
    "cfg_fit_seed": 0,
    "cfg_backend": "threading",
    "cfg_scheduler": "",
    "cfg_n_jobs": min(2, MAX_JOBS),
    "cfg_variance_update": "exact",
    "cfg_gate_targets": "component",
    "cfg_local_check": "refit",
    "cfg_rounds": 0,
    "cfg_split": "random",
    "cfg_split_alpha": 0.0,
    "cfg_split_feature": 0,
    "cfg_machine_weights": "auto",
}
BACKENDS = ["threading", "loky", "sequential", "dask"]
# What a dask scheduler address looks like: protocol://host[:port] (e.g. tcp://10.0.0.5:8786).
_SCHEDULER_RE = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://[^\s/]+$")
# URL name -> session key, and how to parse the text of the URL back.
QUERY_KEYS = {
    "src": ("cfg_source", str),
    "design": ("cfg_design", str),
    "n": ("cfg_n", int),
    "seed": ("cfg_seed", int),
    "xdist": ("cfg_x_dist", str),
    "xscale": ("cfg_x_scale", float),
    "cK": ("cfg_custom_K", int),
    "cd": ("cfg_custom_d", int),
    "csep": ("cfg_custom_sep", float),
    "cgate": ("cfg_custom_gate", float),
    "cvar": ("cfg_custom_var", float),
    "K": ("cfg_K", int),
    "M": ("cfg_M", int),
    "Sauto": ("cfg_support_auto", lambda s: s.lower() in ("1", "true", "yes")),
    "S": ("cfg_support", int),
    "restarts": ("cfg_restarts", int),
    "mmrestarts": ("cfg_mm_restarts", int),
    "fseed": ("cfg_fit_seed", int),
    "backend": ("cfg_backend", str),
    # No "scheduler": an address in a link would make the server connect wherever the link's
    # author wants; it is typed on the page (and checked against the allow-list) instead.
    "jobs": ("cfg_n_jobs", int),
    "var": ("cfg_variance_update", str),
    "gt": ("cfg_gate_targets", str),
    "check": ("cfg_local_check", str),
    "rounds": ("cfg_rounds", int),
    "split": ("cfg_split", str),
    "alpha": ("cfg_split_alpha", float),
    "sfeat": ("cfg_split_feature", int),
    "mw": ("cfg_machine_weights", str),
}
CHOICES = {
    "cfg_source": {"design", "custom"},
    "cfg_design": set(DESIGNS),
    "cfg_x_dist": {"uniform", "gaussian"},
    "cfg_backend": set(BACKENDS),
    "cfg_variance_update": set(VARIANCE_UPDATES),
    "cfg_gate_targets": set(GATE_TARGETS),
    "cfg_local_check": set(LOCAL_CHECKS),
    "cfg_split": set(SPLITS),
    "cfg_machine_weights": set(MACHINE_WEIGHTS),
}
LIMITS = {
    "cfg_n": (50, 200_000),
    "cfg_custom_K": (1, 8),
    "cfg_custom_d": (1, 10),
    "cfg_K": (1, 10),
    "cfg_M": (1, 256),
    "cfg_support": (1, 200_000),
    "cfg_restarts": (1, 10),
    "cfg_mm_restarts": (1, 10),
    "cfg_n_jobs": (1, MAX_JOBS),
    "cfg_rounds": (0, MAX_APP_ROUNDS),
    "cfg_seed": (0, 2**31 - 1),
    "cfg_fit_seed": (0, 2**31 - 1),
    # The widgets' own ranges (pages/data.py): /?xscale=1e308 crashed the first run.
    "cfg_x_scale": (0.1, 100.0),
    "cfg_custom_sep": (0.0, 10.0),
    "cfg_custom_gate": (0.0, 10.0),
    "cfg_custom_var": (0.01, 2.0),
    "cfg_split_alpha": (0.0, 1.0),
    "cfg_split_feature": (0, 9),
}
# URL parameters refused outright, with why.
REFUSED_QUERY = {
    "scheduler": "a dask scheduler address is never taken from a link: type it on the Distributed fit page",
}


def _clip(text, limit=40):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def parse_query(query) -> tuple[dict, list]:
    """The one parser of URL settings, which are untrusted input.

    Returns (settings by name without "cfg_", ignored parameters with why).  Every value is
    converted and checked against :data:`CHOICES` or :data:`LIMITS` (the widgets' ranges); none
    can name a host to connect to.  Never raises.
    """
    out, ignored = {}, []
    for name, value in dict(query or {}).items():
        if name in REFUSED_QUERY:
            ignored.append(f"{name} ({REFUSED_QUERY[name]})")
            continue
        if name not in QUERY_KEYS:
            continue
        key, conv = QUERY_KEYS[name]
        text = value if isinstance(value, str) else (list(value) or [""])[-1]
        try:
            val = conv(str(text))
        except (TypeError, ValueError, OverflowError):
            ignored.append(f"{name}={_clip(text)!r} (not a valid {getattr(conv, '__name__', 'value')})")
            continue
        if key in CHOICES and val not in CHOICES[key]:
            ignored.append(f"{name}={_clip(text)!r} (must be one of {sorted(CHOICES[key])})")
            continue
        if key in LIMITS and not LIMITS[key][0] <= val <= LIMITS[key][1]:  # NaN fails too
            ignored.append(f"{name}={_clip(text)!r} (must be in {list(LIMITS[key])})")
            continue
        out[key[4:]] = val
    return out, ignored


# ------------------------------------------------------------------------------- settings
# The settings live in one plain dict, st.session_state["_cfg"], keyed by name without "cfg_".
# Widgets (key "cfg_<name>") are drawn by ``widget`` with that dict's value as their default and
# write their value back.  Why not the widget keys themselves: Streamlit drops a widget's state
# at the end of a run on a page that does not draw it, so settings would be lost on page switches.
def _cfg() -> dict:
    if "_cfg" not in st.session_state:
        st.session_state["_cfg"] = {k[4:]: v for k, v in DEFAULTS.items()}
    return st.session_state["_cfg"]


def init_settings(query=None):
    """On a session's first run, fill the settings from the URL (else the defaults).

    Returns the list of URL parameters that were ignored, with why, for a warning.
    """
    ss = st.session_state
    ignored = []
    if ss.get("_settings_ready"):
        return ignored
    cfg = dict(_cfg())
    values, ignored = parse_query(query)
    cfg.update(values)
    ss["_cfg"] = cfg
    ss["_settings_ready"] = True
    return ignored


def keep_settings():
    """Kept for the entry script: the settings dict needs no per-run repair (see ``widget``)."""
    _cfg()


def widget(kind, label, name, *args, where=None, options=None, **kw):
    """Draw the setting ``name`` as ``st.<kind>`` (in ``where``) and remember its value."""
    cfg = _cfg()
    fn = getattr(where if where is not None else st, kind)
    key = "cfg_" + name
    if kind in ("selectbox", "radio"):
        options = list(options)
        idx = options.index(cfg[name]) if cfg[name] in options else 0
        out = fn(label, options, *args, index=idx, key=key, **kw)
    else:
        out = fn(label, *args, value=cfg[name], key=key, **kw)
    if cfg.get(name) != out:
        cfg = dict(cfg)
        cfg[name] = out
        st.session_state["_cfg"] = cfg
    return out


def set_setting(name, value):
    """Change one setting outside its widget (e.g. when the data no longer offers its old value)."""
    cfg = dict(_cfg())
    cfg[name] = value
    st.session_state["_cfg"] = cfg


def settings() -> dict:
    cfg = _cfg()
    return {k[4:]: cfg.get(k[4:], v) for k, v in DEFAULTS.items()}


def settings_to_query() -> dict:
    """The settings as URL query parameters (only those that differ from the defaults)."""
    out = {}
    cfg = _cfg()
    for name, (key, _) in QUERY_KEYS.items():
        v = cfg.get(key[4:], DEFAULTS[key])
        if v != DEFAULTS[key]:
            out[name] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def sync_query_params():
    """Mirror the settings in the address bar, so the URL can be shared as is."""
    want = settings_to_query()
    have = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if want != have:
        st.query_params.clear()
        st.query_params.update(want)


# ------------------------------------------------------------------------------- data
@dataclass
class Dataset:
    """The data a session works on; ``truth`` and ``labels`` only for simulated data."""

    X: np.ndarray
    y: np.ndarray
    name: str
    x_names: list
    y_name: str = "y"
    labels: np.ndarray | None = None
    truth: MoEParams | None = None
    source: str = "design"
    sim: dict = field(default_factory=dict)  # how to draw more (held-out) data like it
    key: str = ""

    def __post_init__(self):
        if not self.key:
            h = hashlib.sha1()
            h.update(np.ascontiguousarray(self.X).tobytes())
            h.update(np.ascontiguousarray(self.y).tobytes())
            self.key = h.hexdigest()[:16]

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def d(self):
        return self.X.shape[1]


def custom_params(K, d, sep, gate, var, seed) -> MoEParams:
    """A K-expert, d-input true model from a few knobs: expert spread, gate sharpness, noise.

    Intercepts are spread ``sep`` apart; slopes and gate directions are drawn from the seed.
    """
    rng = np.random.default_rng(int(seed) + 7919)
    experts = np.vstack([sep * (np.arange(K) - (K - 1) / 2), rng.normal(0, 1.0, (d, K))])
    gates = np.vstack([np.zeros(K), gate * rng.normal(0, 1.0, (d, K))])
    if d == 1 and K > 1:
        # One regime after another along x, as in the teaching design: easy to see.
        # logit_k = -g (x - t_k)^2 up to the common -g x^2: linear in x, regime k around t_k.
        t = np.linspace(-2.0, 2.0, K)
        gates = np.vstack([-gate * t**2, 2.0 * gate * t])
    return MoEParams(gates, experts, np.full(K, float(var)))


@st.cache_data(max_entries=32, show_spinner=False)
def _simulate_cached(params_json: str, n: int, x_dist: str, x_loc: float, x_scale: float, seed: int):
    import json

    params = MoEParams.from_dict(json.loads(params_json))
    return simulate(params, n, x_dist=x_dist, x_loc=x_loc, x_scale=x_scale, random_state=seed)


def simulate_dataset(params: MoEParams, n, *, x_dist, x_loc=0.0, x_scale=1.0, seed=0, name="custom",
                     source="custom") -> Dataset:
    import json

    pj = json.dumps(params.to_dict())
    sim = _simulate_cached(pj, int(n), x_dist, float(x_loc), float(x_scale), int(seed))
    d = params.n_features
    return Dataset(
        sim.X, sim.y, name, [f"x{j + 1}" for j in range(d)], "y", sim.labels, sim.params, source,
        sim=dict(params_json=pj, x_dist=x_dist, x_loc=float(x_loc), x_scale=float(x_scale), seed=int(seed)),
    )


def dataset_from_settings(s: dict | None = None) -> Dataset:
    """Simulated data from the current settings (a named design or the custom knobs)."""
    s = s or settings()
    n = int(s["n"])
    if s["source"] == "custom" and st.session_state.get("custom_truth") is not None:
        params = st.session_state["custom_truth"]
        return simulate_dataset(params, n, x_dist=s["x_dist"], x_scale=s["x_scale"], seed=s["seed"],
                                name=f"exact parameters K={params.n_experts} d={params.n_features}", source="custom")
    if s["source"] == "custom":
        params = custom_params(s["custom_K"], s["custom_d"], s["custom_sep"], s["custom_gate"],
                               s["custom_var"], s["seed"])
        return simulate_dataset(params, n, x_dist=s["x_dist"], x_scale=s["x_scale"], seed=s["seed"],
                                name=f"custom K={s['custom_K']} d={s['custom_d']}", source="custom")
    design = get_design(s["design"])
    return simulate_dataset(design.params, n, x_dist=design.x_dist, x_loc=design.x_loc,
                            x_scale=design.x_scale, seed=s["seed"], name=design.name, source="design")


def heldout(data: Dataset, n_test=5000):
    """(X_test, y_test, labels_test, train_index): fresh draws for simulated data, else a 20 % split."""
    if data.sim:

        s = data.sim
        test = _simulate_cached(s["params_json"], n_test, s["x_dist"], s["x_loc"], s["x_scale"],
                                s["seed"] + 1_000_003)
        return test.X, test.y, test.labels, np.arange(data.n)
    rng = np.random.default_rng(0)
    perm = rng.permutation(data.n)
    n_te = max(1, data.n // 5)
    te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
    return data.X[te], data.y[te], None, tr


# ------------------------------------------------------------------------------- fits
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


def fit_params(s: dict, n: int, *, automatic=False) -> dict:
    """DistributedMoE keyword arguments from the settings; support size None = paper's default.

    ``automatic``: a run nobody asked for with a click (the first page load, a page that fills
    itself): it runs in this process (threading, same numbers for the same seed), so that opening
    a link never starts worker processes nor connects to a cluster.  n_jobs is capped at the
    server's cores in every case.
    """
    backend = s["backend"]
    if automatic and backend in ("loky", "dask"):
        backend = "threading"
    return dict(
        n_experts=int(s["K"]),
        n_machines=int(s["M"]),
        support_size=None if s["support_auto"] else int(s["support"]),
        n_jobs=max(1, min(int(s["n_jobs"]), MAX_JOBS)),
        backend=backend,
        scheduler=(s.get("scheduler") or "").strip() or None if backend == "dask" else None,
        random_state=int(s["fit_seed"]),
        n_init=int(s["restarts"]),
        mm_n_init=int(s["mm_restarts"]),
        variance_update=s["variance_update"],
        gate_targets=s["gate_targets"],
        local_check=s["local_check"],
        refine_rounds=int(s["rounds"]),
        split=s["split"],
        split_alpha=float(s["split_alpha"]),
        split_feature=int(s["split_feature"]),
        machine_weights=s["machine_weights"],
    )


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


def check_fit_settings(kw: dict, n: int, d: int):
    """Refuse what the library would refuse, with the fix in the message (before any work)."""
    K, M = kw["n_experts"], kw["n_machines"]
    per_shard = min_samples(K, d)
    if kw.get("split", "random") == "region" and kw.get("split_feature", 0) >= d:
        raise InputError(f"the region split uses input {kw['split_feature'] + 1}, but the data has {d} input(s): "
                         "choose another input.")
    if M > n:
        raise InputError(f"M = {M} machines is more than the n = {n} samples: use at most {n // per_shard} machines.")
    if n // M < per_shard:
        raise InputError(
            f"K = {K} experts is more than a shard can support: each of the M = {M} machines gets "
            f"{n // M} samples, but K (d + 1) + 1 = {per_shard} are needed. Use fewer machines "
            f"(at most {max(n // per_shard, 1)}) or fewer experts (at most {max((n // M - 1) // (d + 1), 1)})."
        )
    if kw.get("backend") == "dask":
        addr = kw.get("scheduler")
        if not addr:
            raise InputError(
                "the dask backend needs the address of a running scheduler, e.g. tcp://127.0.0.1:8786 "
                "(start one with `dask scheduler` and `dask worker tcp://...`), or choose another backend."
            )
        if not _SCHEDULER_RE.match(addr):
            raise InputError(
                f"{_clip(addr)!r} is not a dask scheduler address: write protocol://host:port, e.g. tcp://127.0.0.1:8786."
            )
        allowed = scheduler_allow_list()
        if not any(fnmatch.fnmatchcase(addr, pat) for pat in allowed):
            raise InputError(
                f"this server only connects to the dask schedulers on its allow-list ({', '.join(allowed)}); "
                f"{_clip(addr)!r} is not on it. Use one of those, or ask the server's administrator to add it "
                f"to the {SCHEDULER_ALLOW_ENV} setting."
            )
    S = kw["support_size"]
    if S is not None:
        if S > n:
            raise InputError(f"the supporting sample size {S} is larger than n = {n}: choose at most {n}.")
        if S < K:
            raise InputError(f"the supporting sample size {S} is smaller than K = {K}: choose at least {K}.")


def scheduler_allow_list() -> list:
    """The scheduler address patterns this server may connect to (server-side setting)."""
    text = os.environ.get(SCHEDULER_ALLOW_ENV, DEFAULT_SCHEDULER_ALLOW)
    return [p.strip() for p in text.split(",") if p.strip()]


@dataclass
class FitResult:
    dm: DistributedMoE
    global_model: MixtureOfExperts
    settings: dict
    data_key: str
    wall: float
    key: str = ""
    train_rpe: dict = field(default_factory=dict)


def figure(name: str, key: tuple, build):
    """A figure built once per (name, key) in this session: a rerun that changes one plot option
    rebuilds only the figure that option belongs to."""
    figs = dict(st.session_state.get("_figs", {}))
    k = (name,) + tuple(key)
    if k not in figs:
        if len(figs) > 60:
            figs.clear()
        figs[k] = build()
        st.session_state["_figs"] = figs
    return figs[k]


@st.cache_data(max_entries=16, show_spinner=False)
def _fit_cached(data_key: str, _X, _y, kw: dict, _progress=None, _labels=None):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(**split_of(kw, _labels)).fit(_X, _y, progress=_progress)
        if _progress is not None:
            _progress("global", 0, 1)
        g = MixtureOfExperts(kw["n_experts"], n_init=kw["n_init"], random_state=kw["random_state"]).fit(_X, _y)
    return dm, g, time.perf_counter() - t0


def run_fit(data: Dataset, s: dict | None = None, progress=None, *, automatic=False) -> FitResult:
    """Distributed fit (and the global EM reference) of ``data`` with the settings; cached."""
    s = dict(s or settings())
    kw = fit_params(s, data.n, automatic=automatic)
    s.update(backend=kw["backend"], n_jobs=kw["n_jobs"])  # what actually ran
    check_fit_settings(kw, data.n, data.d)
    if kw["split"] == "label" and data.labels is None:
        split_of(kw)  # raises the message saying what to change
    dm, g, wall = _fit_cached(data.key, data.X, data.y, kw, _progress=_outside_cache(progress), _labels=data.labels)
    from moecore.metrics import rpe
    from moecore.model import predict_mean

    train_rpe = {"reduction": rpe(data.y, predict_mean(data.X, dm.params_)),
                 "global": rpe(data.y, predict_mean(data.X, g.params_))}
    key = hashlib.sha1(repr((data.key, sorted(kw.items()))).encode()).hexdigest()[:16]
    return FitResult(dm, g, s, data.key, wall, key, train_rpe)


@st.cache_data(max_entries=8, show_spinner=False)
def _compare_cached(data_key: str, _X, _y, _Xt, _yt, _labels, truth_json, kw: dict, _progress=None,
                    _train_labels=None):
    import json

    truth = MoEParams.from_dict(json.loads(truth_json)) if truth_json else None
    kw = split_of(kw, _train_labels)
    K, M, seed = kw.pop("n_experts"), kw.pop("n_machines"), kw.pop("random_state")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_methods(_X, _y, _Xt, _yt, K, M, labels_test=_labels, truth=truth,
                              random_state=seed, progress=_progress, **kw)
    return cmp


def run_compare(data: Dataset, s: dict | None = None, progress=None, *, automatic=False):
    """compare_methods on the data's training part, evaluated on held-out data; cached."""
    import json

    s = dict(s or settings())
    Xt, yt, lt, tr = heldout(data)
    X, y = data.X[tr], data.y[tr]
    kw = fit_params(s, len(y), automatic=automatic)
    check_fit_settings(kw, len(y), data.d)
    truth_json = json.dumps(data.truth.to_dict()) if data.truth is not None else ""
    if data.truth is not None and data.truth.n_experts != kw["n_experts"]:
        truth_json = ""  # parameter metrics need the same K
    train_labels = data.labels[tr] if data.labels is not None else None
    if kw["split"] == "label" and train_labels is None:
        split_of(kw)  # raises the message saying what to change
    return _compare_cached(data.key, X, y, Xt, yt, lt, truth_json, kw, _progress=_outside_cache(progress),
                           _train_labels=train_labels), (Xt, yt, lt)


def default_support(n, M):
    return default_support_size(n, M)


@st.cache_resource(show_spinner=False)
def warm_up():
    """One tiny fit per server process: loads the numba kernels from their cache (compiles them,
    about 2.6 s, on the first run after installing) and starts the thread pools, so the timings
    shown for the first real fit are those of the fit and not of the process warming up."""
    from moecore.simulation import simulate_design

    sim = simulate_design(DEFAULT_DESIGN, 1200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DistributedMoE(3, 2, backend="threading", n_jobs=2, random_state=0).fit(sim.X, sim.y)
        MixtureOfExperts(3, random_state=0).fit(sim.X, sim.y)
    return True


def ensure_data_and_fit():
    """First page load: the session gets its data and a fitted model before any widget is touched.

    The automatic first fit runs in this process (see :func:`fit_params`): a link alone never
    starts worker processes or connects to a cluster.
    """
    ss = st.session_state
    warm_up()
    if "data" not in ss:
        try:
            ss["data"] = dataset_from_settings()
        except (TypeError, ValueError) as exc:
            ss["startup_error"] = f"Could not build the data from the URL settings: {exc}"
            ss["_cfg"] = {k[4:]: v for k, v in DEFAULTS.items()}
            ss["data"] = dataset_from_settings()
    if "fit" not in ss and not ss.get("_auto_fit_tried"):
        ss["_auto_fit_tried"] = True
        try:
            ss["fit"] = run_fit(ss["data"], automatic=True)
        except (TypeError, ValueError, RuntimeError, OSError) as exc:
            ss["startup_error"] = f"The automatic first fit failed: {exc} Change the settings on the Distributed fit page."


def session_data() -> Dataset:
    """The session's data, for a page's first line.

    After a server restart the first request for a deep link (/data, /compare...) runs that page
    script alone, without app.py (Streamlit's pages/ folder convention, until a run of app.py
    calls st.navigation): the page then sets the session up itself, URL settings included.
    """
    ss = st.session_state
    if "data" not in ss:
        init_settings(st.query_params.to_dict())
        ensure_data_and_fit()
    return ss["data"]


def share_url() -> str:
    """The app's address with the current settings as query parameters."""
    from urllib.parse import urlencode

    base = None
    try:
        base = st.context.url
    except Exception:  # outside a browser session (AppTest, bare mode)
        base = None
    base = (base or "http://localhost:8501/").split("?")[0]
    q = urlencode(settings_to_query())
    return base + ("?" + q if q else "")


@st.cache_data(max_entries=8, show_spinner=False)
def learn_example(M: int, seed: int, init: str, n: int = 2000):
    """A small live example for the Learn page: teaching-1d, M local fits, and every MM iterate.

    ``init="local"`` starts MM from K randomly chosen local experts (a poor start, so the steps
    are visible); ``"kmeans"`` from the library's k-means start.
    """
    from moecore.reduction import LargeMixture, ReductionProblem, mm_steps
    from moecore.simulation import simulate_design

    sim = simulate_design(DEFAULT_DESIGN, n, random_state=seed)
    K = sim.params.n_experts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(K, M, backend="sequential", random_state=seed).fit(sim.X, sim.y)
    large = LargeMixture([m.params_ for m in dm.local_models_], dm.weights_)
    problem = ReductionProblem(large, sim.X[dm.support_indices_])
    rng = np.random.default_rng(seed)
    if init == "local":
        idx = rng.choice(large.experts.shape[1], K, replace=False)
        B0 = problem.scaler.coef_to_standard(large.experts[:, idx])
        V0 = large.variances[idx].copy()
    else:
        B0, V0 = problem.initial_experts(K, rng)
    states = list(mm_steps(problem, B0, V0, max_iter=60, tol=1e-10))
    return problem, states, sim, dm


@st.cache_data(max_entries=8, show_spinner=False)
def learn_rounds(M: int, seed: int, rounds: int = 3, n: int = 2000):
    """The Learn example's reduced model refined by distributed EM rounds: the pooled
    log-likelihood per sample and the gate MSE against the truth and against the global EM after
    0..rounds rounds."""
    from moecore.metrics import parameter_mse
    from moecore.model import Standardizer, loglik_per_sample
    from moecore.refine import em_rounds

    problem, _, sim, dm = learn_example(M, seed, "kmeans", n)
    shards = [(sim.X[idx], sim.y[idx]) for idx in dm.shards_]
    scaler = Standardizer.fit(dm.support_X_, dm.support_y_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = MixtureOfExperts(sim.params.n_experts, random_state=seed).fit(sim.X, sim.y).params_
    prm, out = dm.params_, []
    for r in range(rounds + 1):
        if r:
            prm, _ = em_rounds(shards, prm, 1, scaler=scaler)
        out.append(dict(rounds=r, loglik=float(loglik_per_sample(sim.X, sim.y, prm).mean()),
                        gates=parameter_mse(prm, sim.params)["gates"], gates_global=parameter_mse(prm, g)["gates"]))
    return out


def coupling_of(problem, st_assignment, K):
    """(L, K) mean gate mass each local component sends to each reduced expert under a plan."""
    L = problem.mass.shape[1]
    idx = (np.arange(L)[None, :] * K + st_assignment).ravel()
    return np.bincount(idx, weights=problem.mass.ravel(), minlength=L * K).reshape(L, K) / problem.S
