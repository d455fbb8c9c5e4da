"""Every setting of the app, declared once: what it is, its widget, its URL key, its range.

Each :class:`Setting` wraps a parameter declared in :mod:`moecore.params` (type, range, choices,
help text), narrowed to what the app offers (K <= 10, M <= 256, n <= 10^6).  From this one list
come the widgets (:func:`widget`: label, bounds, options, help), the defaults, the URL's query
keys (:func:`parse_query` / :func:`settings_to_query`), and the DistributedMoE keyword arguments
(``explorer.runs.fit_params``).  A value is checked by the library's own rule, so a typed or
linked value out of range gets the library's message.

The values live in one plain dict, ``st.session_state["_cfg"]``, keyed by setting name; a widget
has the key ``"cfg_<name>"`` and writes its value back.  Why not the widget keys themselves:
Streamlit drops a widget's state at the end of a run on a page that does not draw it, so settings
would be lost on page switches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import streamlit as st

from moecore.datasets import dataset_names
from moecore.params import (
    DISTRIBUTED_PARAMETERS as DP,
)
from moecore.params import (
    SIMULATION_PARAMETERS as SP,
)
from moecore.params import (
    SPLIT_PARAMETERS,
    Param,
)
from moecore.simulation import DESIGNS

from .teaching import MM_STARTS

DEFAULT_DESIGN = "teaching-1d"
# Worker processes are capped at the server's cores, whatever a link or a widget asks for:
# /?jobs=1000&backend=loky would start ~430 processes that never return.
MAX_JOBS = max(1, os.cpu_count() or 1)
# Refinement rounds offered in the app: 3 reach the global EM's parameters on every shipped
# design (benchmarks/bench_reduction_params.py); a few more show the curve flatten.
MAX_APP_ROUNDS = 10
# The most machines the app offers (figures summarise beyond 16; 256 fits in a page).
MAX_APP_MACHINES = 256
# Simulated data: up to the paper's n = 10^6 (uploads have their own limit, explorer.io.MAX_ROWS).
MAX_APP_N = 1_000_000
SEED_MAX = 2**31 - 1
# Per-session budget: the most work one session may start, in units of n x (d + 1) x K x
# (2 restarts + rounds + MM restarts / 4) (explorer.runs.fit_work: the local fits and the global
# EM reference each cost about n (d + 1) K per iteration and restart, a round one global
# iteration, the reduction a quarter of the rows per MM restart).  The default fit is 3.3e5; the
# paper's n = 10^6, d = 2, K = 4 is 3.3e7.
MAX_SESSION_WORK = 1e8
# What a link may start by itself (the automatic first fit, a page's first comparison), before
# anyone clicks: a link must not occupy the server (n = 10^6, d = 10, K = 10 is 3e8 and ran 184 s).
MAX_LINK_WORK = 2e6
# The rows a link may simulate by itself when its fit waits for a click: the data it names are then
# on screen, and Run reproduces the link's numbers (the rounds lesson's link, n = 40 000, once fell
# back to 20 000 rows and a comparison of those). Beyond, simulating holds the GIL for a second
# (10^6 rows) that every other session waits, and n falls back to the default.
MAX_LINK_ROWS = 200_000
# Memory one fit may take, estimated before any allocation (moecore.costs.fit_memory_bytes);
# also never more than the server has available at the time.
MAX_SESSION_MEMORY_MB = 1024


def _seed(name, help_text):
    return Param(name, "int", 0, help_text, "seed", low=0, high=SEED_MAX)


@dataclass(frozen=True)
class Setting:
    """One app setting.

    name : key in the settings dict (widget key ``"cfg_" + name``)
    param : the rule (moecore.params.Param): kind, range, choices, default, help
    label : the widget's label
    query : its URL key; None = never taken from or put in a link
    widget : the Streamlit element; "" = chosen from the kind
    step : the step of a number input or slider
    formats : {value: text} for the options of a choice
    group : "data" (chooses the data), "fit" (chooses the fit), or the page it belongs to
    key : the widget's key when not ``"cfg_" + name``
    rule_label : for a number whose None means the library's rule (``param.none``, e.g. the
        paper's support size): the label of the checkbox that chooses the rule
    argument : the keyword argument of DistributedMoE or of a sweep the setting gives
        (:attr:`keyword`)
    """

    name: str
    param: Param
    label: str
    query: str | None
    widget: str = ""
    step: float | None = None
    formats: dict | None = None
    group: str = "fit"
    key: str = ""
    rule_label: str = ""
    argument: str = ""

    @property
    def keyword(self):
        """The keyword argument this setting gives (explorer.runs.fit_params), "" for none: its
        ``argument``, or for a fit setting the name of the library's parameter it narrows."""
        if self.argument:
            return self.argument
        return self.param.name if self.group == "fit" and self.param.name in DP else ""

    @property
    def widget_key(self):
        return self.key or "cfg_" + self.name

    @property
    def kind(self):
        return self.widget or {"int": "number_input", "float": "number_input", "choice": "selectbox",
                               "bool": "checkbox", "text": "text_input"}[self.param.kind]

    @property
    def default(self):
        return self.param.default

    @property
    def help(self):
        h = self.param.help
        if self.param.kind in ("int", "float") and (self.param.low is not None or self.param.high is not None):
            h = f"{h}; {self.param.range_text}"
        return h[0].upper() + h[1:] + "."


SPLIT_LABELS = {"random": "random (the paper)", "region": "by region of one input",
                "kmeans": "by k-means clusters of x", "label": "by true expert (label skew)"}

# ---------------------------------------------------------------- Experiments page (widget keys exp_*)
# What a sweep can vary (moecore.experiments.SWEEPABLE, and the split's alpha of alpha_sweep), each
# with its default values and the URL key of those values: one table, read by the widgets below.
SWEEPS = {
    "n_machines": ("2, 4, 8, 16", "xvM"),
    "support_fraction": ("0.1, 0.25, 0.5, 1, 2", "xvS"),
    "n": ("5000, 10000, 20000, 50000", "xvn"),
    "refine_rounds": ("0, 1, 2, 3, 5", "xvr"),
    "n_experts": ("1, 2, 3, 4, 5", "xvK"),
    "alpha": ("0, 0.25, 0.5, 0.75, 1", "xva"),
}
# A sweep on the current (uploaded or real) data: the share of its rows each repeat holds out.
SWEEP_HELD_OUT = 0.2


# The real data sets the Data page offers (moecore.datasets), the large flights first.
REAL_SETS = ("flights", *(name for name in dataset_names() if name != "flights"))


def _data(*args, **kw):
    return Setting(*args, group="data", **kw)


def _exp(name, param, label, query, **kw):
    return Setting(name, replace(param, name=name), label, query, group="experiments", key=name, **kw)


_EXPERIMENTS = [
    _exp("exp_design", Param("design", "choice", DEFAULT_DESIGN, "the named design every run simulates",
                             choices=tuple(DESIGNS)), "Design", "xd"),
    _exp("exp_data", Param("data", "choice", "design", "what every run fits: fresh draws from a named design, or "
                           f"the current (uploaded or real) data with a random {100 * SWEEP_HELD_OUT:.0f} % held out",
                           choices=("design", "current")),
         "Data of the runs", "xdata", widget="radio",
         formats={"design": "a named design", "current": "the current data"}),
    _exp("exp_parameter", Param("parameter", "choice", "n_machines", "the setting the sweep varies",
                                choices=tuple(SWEEPS)), "Vary", "xp", widget="radio"),
    *(_exp(f"exp_values_{k}", Param("values", "text", v, "comma-separated values of the varied setting"),
           "Values (comma-separated)", query) for k, (v, query) in SWEEPS.items()),
    _exp("exp_n", SP["n"].with_range(500, MAX_APP_N, 20_000), "Sample size n (points, when not varied)", "xn",
         step=5000, argument="n"),
    _exp("exp_M", DP["n_machines"].with_range(1, MAX_APP_MACHINES, 8), "Machines M (when not varied)", "xM",
         argument="n_machines"),
    _exp("exp_K", DP["n_experts"].with_range(1, 10, DESIGNS[DEFAULT_DESIGN].n_experts), "Experts K", "xK",
         argument="n_experts"),
    _exp("exp_restarts", DP["n_init"].with_range(1, 10, 1), "EM restarts per machine", "xr", argument="n_init"),
    _exp("exp_support_size", DP["support_size"].with_range(1, MAX_APP_N), "Supporting sample S (points)", "xS",
         step=100, rule_label="Paper's support size floor(n / 4M)", argument="support_size"),
    _exp("exp_seed", _seed("seed", "seeds the data and the fits of every repeat: the same seed gives the same "
                       "table"), "Seed", "xs", argument="random_state"),
    _exp("exp_repeats", Param("repeats", "int", 2, "independent data sets and seeds per value", low=1, high=20),
         "Repeats", "xrep", argument="repeats"),
    _exp("exp_global", Param("global", "bool", True, "also fit the global EM, once per repeat (per value when n "
                             "is varied): it depends on neither M, S nor the rounds"), "Global EM reference", "xg",
         argument="include_global"),
    _exp("exp_var", DP["variance_update"], "Reduced variances", "xvar", widget="radio", argument="variance_update"),
    _exp("exp_split", SPLIT_PARAMETERS["split"].with_choices(("region", "kmeans", "label")),
         "Split (non-IID machines: constant vs covariate machine weights)", "xsplit",
         formats={"region": "by region of x1", "kmeans": "by k-means clusters of x",
                  "label": "by true expert (label skew)"}),
]

_SETTINGS = [
    # ---------------------------------------------------------------- data (Data page)
    _data("source", Param("source", "choice", "design", "where the data come from",
                            choices=("design", "custom", "real")), "Source", "src", widget="radio",
            formats={"design": "named design", "custom": "custom parameters", "real": "real data set"}),
    _data("design", Param("design", "choice", DEFAULT_DESIGN, "a named synthetic design",
                            choices=tuple(DESIGNS)), "Design", "design"),
    _data("real_set", Param("real_set", "choice", REAL_SETS[0], "a real data set shipped with moecore",
                            choices=REAL_SETS), "Real data set", "real"),
    _data("n", SP["n"].with_range(50, MAX_APP_N, 20_000), "Sample size n", "n", step=1000),
    _data("seed", _seed("seed", "the seed of the simulated data"), "Seed", "seed"),
    _data("x_dist", replace(SP["x_dist"], default="uniform"), "x distribution", "xdist"),
    _data("x_scale", SP["x_scale"].with_range(0.1, 100.0, 3.0), "x scale (half-width or sd)", "xscale", step=0.5),
    _data("custom_K", DP["n_experts"].with_range(1, 8, 3), "Experts K", "cK"),
    _data("custom_d", Param("custom_d", "int", 1, "the number of inputs d", low=1, high=10), "Inputs d", "cd"),
    _data("custom_sep", Param("custom_sep", "float", 2.0, "the distance between neighbouring expert intercepts",
                                low=0.0, high=10.0), "Expert spread (distance between intercepts)", "csep",
            widget="slider", step=0.5),
    _data("custom_gate", Param("custom_gate", "float", 3.0, "how sharply the gates switch between experts",
                                 low=0.0, high=10.0), "Gate sharpness", "cgate", widget="slider", step=0.5),
    _data("custom_var", Param("custom_var", "float", 0.1, "the noise variance of every expert",
                                low=0.01, high=2.0), "Noise variance of every expert", "cvar", widget="slider",
            step=0.01),
    # ---------------------------------------------------------------- fit (Distributed fit page)
    Setting("K", DP["n_experts"].with_range(1, 10, 3), "Experts K", "K"),
    Setting("M", DP["n_machines"].with_range(1, MAX_APP_MACHINES, 8), "Machines M", "M"),
    Setting("support_size", DP["support_size"].with_range(1, MAX_APP_N), "Supporting sample size S", "S", step=100,
            rule_label="Use the paper's support size"),
    Setting("init", DP["init"], "EM start", "init", widget="radio"),
    Setting("restarts", DP["n_init"].with_range(1, 10, 1), "EM restarts per machine", "restarts"),
    Setting("mm_restarts", DP["mm_n_init"].with_range(1, 10, 3), "MM restarts", "mmrestarts"),
    Setting("fit_seed", _seed("random_state", "the seed of the fit"), "Seed", "fseed"),
    # threading first: no start-up cost; loky pays ~1-3 s to start its processes on a first fit.
    Setting("backend", replace(DP["backend"].with_choices(("threading", "loky", "sequential", "dask")),
                               default="threading"), "joblib backend", "backend"),
    # No URL key: an address in a link would make the server connect wherever the link's author
    # wants; it is typed on the page (and checked against the allow-list) instead.
    Setting("scheduler", Param("scheduler", "text", "", "the address of a running dask scheduler, "
                               "e.g. tcp://127.0.0.1:8786"), "Dask scheduler address", None),
    # One by default: threads share one interpreter, and local fits are many small NumPy steps that
    # hold its lock, so two threads took longer than one on every size measured (teaching-1d,
    # n = 20 000, M = 8: 0.47-0.56 s against 0.27 s; separated-2d, 2e5 rows, M = 32: 2.3-2.5 s against
    # 1.4 s; separated-10d, 10^6 rows, M = 16: 3.2-3.4 s against 2.9-3.3 s) and each fit's own time,
    # which the learning time counts, doubled. loky's processes do run side by side.
    Setting("n_jobs", replace(DP["n_jobs"].with_range(1, MAX_JOBS, 1), none="",
                              help="the number of local fits run at once. With threading, keep 1: threads share one "
                                   "Python interpreter and these fits hold it, so two threads take longer than one "
                                   "(and each fit's time, the learning time, looks longer); loky runs processes side "
                                   "by side"),
            "n_jobs (parallel fits)", "jobs"),
    Setting("variance_update", DP["variance_update"], "Reduced variances", "var", widget="radio"),
    Setting("gate_targets", DP["gate_targets"], "Reduced gate", "gt"),
    Setting("local_check", DP["local_check"], "Screen the local fits", "check"),
    Setting("rounds", DP["refine_rounds"].with_range(0, MAX_APP_ROUNDS, 0), "Refinement rounds", "rounds"),
    Setting("split", SPLIT_PARAMETERS["split"], "Split over the machines", "split", formats=SPLIT_LABELS),
    Setting("split_alpha", SPLIT_PARAMETERS["alpha"], "Mixing alpha (0 = separated, 1 = random)", "alpha",
            widget="slider", step=0.05),
    Setting("split_feature", SPLIT_PARAMETERS["feature"].with_range(0, 9, 0), "Input of the regions", "sfeat",
            widget="selectbox"),
    Setting("machine_weights", DP["machine_weights"], "Machine weights", "mw", widget="radio"),
    # ---------------------------------------------------------------- Compare page
    Setting("cmp_unaligned", Param("cmp_unaligned", "bool", False, "also evaluate the naive average of the local "
                                   "parameters as each machine numbered its experts, which label switching ruins"),
            "Show the unaligned average (label switching)", "unal", group="compare"),
    # ---------------------------------------------------------------- Learn page's live example
    Setting("learn_M", DP["n_machines"].with_range(2, 8, 4), "Machines M", "lM", widget="slider", group="learn"),
    Setting("learn_init", Param("learn_init", "choice", "local", "where MM starts",
                                choices=MM_STARTS), "MM start", "linit", widget="radio", group="learn",
            formats={"local": "3 random local experts (more to see)", "kmeans": "k-means (as the library)"}),
    Setting("learn_seed", _seed("learn_seed", "the seed of the example").with_range(0, 10_000, 1), "Seed",
            "lseed", group="learn"),
    *_EXPERIMENTS,
]
SETTINGS = {s.name: s for s in _SETTINGS}
DEFAULTS = {"cfg_" + s.name: s.default for s in _SETTINGS}
# URL name -> setting name.
QUERY_KEYS = {s.query: s.name for s in _SETTINGS if s.query}
# URL parameters refused outright, with why.
REFUSED_QUERY = {
    "scheduler": "a dask scheduler address is never taken from a link: type it on the Distributed fit page",
}
# The settings that choose the fit: a fit is current when they, and the data, are those it was
# made with.
FIT_SETTINGS = tuple(s.name for s in _SETTINGS if s.group == "fit")
DATA_SETTINGS = tuple(s.name for s in _SETTINGS if s.group == "data")
EXPERIMENT_SETTINGS = tuple(s.name for s in _SETTINGS if s.group == "experiments")


def clip(text, limit=40):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


# The older format of links and session files: the support size as two settings, a flag (the
# paper's rule on or off) and a size that counted only with the flag off.  Old flag -> (its URL
# key, the old size's name, the one setting, the old size's default).
LEGACY_SUPPORT = {
    "support_auto": ("Sauto", "support", "support_size", 1000),
    "exp_support_auto": ("xSa", "exp_support", "exp_support_size", 625),
}
_LEGACY_FLAG = Param("support_auto", "bool", True, "use the paper's support size floor(n / (4 M))")


def upgrade_legacy(values: dict) -> dict:
    """Settings by name in the older format of the support size (a flag ``support_auto``
    and ``support``), as the one setting with the same meaning: the flag on gives None (the
    paper's rule), off the size written (its old default when none was).  Raises TypeError for
    a flag that is not true or false."""
    out = dict(values)
    for flag, (_, old, new, old_default) in LEGACY_SUPPORT.items():
        size = out.pop(old, None)
        if flag in out:
            use_rule = _LEGACY_FLAG.check(out.pop(flag))
            out[new] = None if use_rule else (size if size is not None else out.get(new, old_default))
    return out


def query_value(value) -> str:
    """A URL parameter's text: the last of a repeated key (a list), "" for none."""
    return value if isinstance(value, str) else (list(value or []) or [""])[-1]


def parse_query(query) -> tuple[dict, list]:
    """The one parser of URL settings, which are untrusted input.

    Returns (settings by name, ignored parameters with why).  Every value is parsed and checked
    by its setting's rule (the library's, within the app's range); none can name a host to
    connect to.  Links of the old support settings mean what they meant (:func:`upgrade_legacy`).
    Never raises.
    """
    out, ignored = {}, []
    legacy_keys = {query_key: flag for flag, (query_key, *_) in LEGACY_SUPPORT.items()}
    for name, value in dict(query or {}).items():
        if name in REFUSED_QUERY:
            ignored.append(f"{name} ({REFUSED_QUERY[name]})")
            continue
        if name not in QUERY_KEYS and name not in legacy_keys:
            continue
        param = SETTINGS[QUERY_KEYS[name]].param if name in QUERY_KEYS else _LEGACY_FLAG
        text = query_value(value)
        try:
            out[QUERY_KEYS.get(name) or legacy_keys[name]] = param.parse(str(text)[:1000])
        except (TypeError, ValueError, OverflowError):
            want = (f"one of {list(param.choices)}" if param.kind == "choice"
                    else "true or false" if param.kind == "bool"
                    else "text" if param.kind == "text"
                    else f"{'an integer' if param.kind in ('int', 'seed') else 'a number'} in {param.range_text}")
            if param.none:
                want += f", or auto for {param.none}"
            ignored.append(f"{name}={clip(text)!r} (must be {want})")
    return upgrade_legacy(out), ignored


# ------------------------------------------------------------------------------- the values
def _cfg() -> dict:
    if "_cfg" not in st.session_state:
        st.session_state["_cfg"] = {s.name: s.default for s in _SETTINGS}
    return st.session_state["_cfg"]


def init_settings(query=None):
    """On a session's first run, fill the settings from the URL (else the defaults).

    Returns the list of URL parameters that were ignored, with why, for a warning.
    """
    ss = st.session_state
    if ss.get("_settings_ready"):
        return []
    cfg = dict(_cfg())
    values, ignored = parse_query(query)
    cfg.update(values)
    ss["_cfg"] = cfg
    ss["_settings_ready"] = True
    return ignored


def reset_settings():
    st.session_state["_cfg"] = {s.name: s.default for s in _SETTINGS}


def settings() -> dict:
    """The current value of every setting, by name."""
    cfg = _cfg()
    return {s.name: cfg.get(s.name, s.default) for s in _SETTINGS}


def set_setting(name, value):
    """Change one setting outside its widget (a lesson, data that no longer offers the old value)."""
    s = SETTINGS[name]
    s.param.check(value)
    cfg = dict(_cfg())
    cfg[name] = value
    st.session_state["_cfg"] = cfg
    _show(s, value)


def _show(s: Setting, value):
    """Make the widget of ``s`` show ``value`` on its next draw.  Dropping its state is not enough
    while the widget stays on screen: the browser keeps what it shows and sends it back with the
    next run ("End the lesson" on the Fit page left the lesson's K = 4 in the box, and Run fitted
    it).  A value written to the state is sent to the browser; Streamlit allows that only before the
    widget is drawn in this run, so after it the state is dropped (the widget is not on the page
    that made the change, or the run ends with a rerun that draws it anew)."""
    ss = st.session_state
    if s.rule_label:  # _rule_or_number writes both of its widgets' states on every draw
        return
    if s.widget_key in ss.get(_DRAWN, ()) or not _on_this_page(s.widget_key):
        # On another page the widget is not on screen: it is drawn from the setting when that page runs.
        ss.pop(s.widget_key, None)
    else:
        ss[s.widget_key] = _shown_value(s, value)


_DRAWN = "_drawn_setting_widgets"  # the setting widgets drawn in this run (see new_run)
_PAGE_OF = "_setting_widget_pages"  # {widget key: the address of the page that last drew it}


def _on_this_page(key) -> bool:
    """Whether the page running now is the one that last drew the widget ``key``."""
    return st.session_state.get(_PAGE_OF, {}).get(key) == st.session_state.get("_page_path")


_LAST_PAGE = "_last_run_page"  # the address of the page the previous run drew


def new_run():
    """A script run begins (chrome.frame): no setting widget is drawn yet.  On arriving from another
    page, every widget of this one is drawn from its setting: "Next lesson" from a lesson on the Fit
    page wrote the next lesson's values to the Fit page's widgets (:func:`_show`, on screen then) and
    opened Compare; back on the Fit page its boxes showed K = 0, M = 0 (Streamlit had dropped the states
    of widgets the run did not draw), and a change of the seed there set rounds to 0 and the machine
    weights to constant without a word."""
    ss = st.session_state
    ss[_DRAWN] = set()
    here = ss.get("_page_path")
    if ss.get(_LAST_PAGE, here) != here:
        ss[_PAGE_OF] = {}
    ss[_LAST_PAGE] = here


def _shown_value(s: Setting, value):
    """``value`` of setting ``s`` as its widget holds it (a number box's type, text for None)."""
    if s.kind == "number_input":
        return float(value) if s.param.kind == "float" else int(value)
    if s.kind == "text_input":
        return value or ""
    return value


RULE = "_rule"  # the widget key's suffix of a rule-or-number setting's checkbox


def _rule_changed(s: Setting, rule_value):
    # Unticked: the box starts from the value the rule gave, which it was showing.
    cfg = dict(_cfg())
    cfg[s.name] = None if st.session_state[s.widget_key + RULE] else int(rule_value)
    st.session_state["_cfg"] = cfg


def _number_changed(s: Setting):
    cfg = dict(_cfg())
    try:
        cfg[s.name] = s.param.check(st.session_state[s.widget_key])
    except (TypeError, ValueError) as exc:
        st.session_state["_refused_" + s.name] = f"{s.label}: {exc}. Still using {cfg.get(s.name)}."
        return
    st.session_state["_cfg"] = cfg


def _rule_or_number(s: Setting, where, rule_value, kw):
    """A setting whose None means the library's rule (``param.none``): a checkbox for the rule and
    the number box, greyed out and showing ``rule_value`` (what the rule gives here) while the
    rule is on.  The setting is the truth and both widgets show it: their callbacks write it
    before the run, so a lesson or a session file that changes it needs no widget state reset."""
    ss = st.session_state
    box = where if where is not None else st
    disabled = kw.pop("disabled", False)
    current = _cfg().get(s.name, s.default)
    ss[s.widget_key + RULE] = current is None
    ss[s.widget_key] = int(rule_value if current is None or disabled else current)
    box.checkbox(s.rule_label, key=s.widget_key + RULE, disabled=disabled, on_change=_rule_changed,
                 args=(s, rule_value), help=f"Use {s.param.none} (here {int(rule_value):,}); untick to type another.")
    box.number_input(s.label, step=int(s.step or 1), key=s.widget_key, disabled=disabled or current is None,
                     on_change=_number_changed, args=(s,), **kw)
    if ss.get("_refused_" + s.name):
        box.error(ss.pop("_refused_" + s.name))
    return current


def update_settings(values: dict):
    """Change several settings at once (a lesson, a loaded session file); each is checked."""
    for name, value in values.items():
        set_setting(name, value)


def update_settings_from(values: dict) -> list:
    """Apply the settings of a session file, each checked by its declaration; returns what was
    ignored, with why (unknown names, values out of range)."""
    refused = []
    try:
        values = upgrade_legacy(values)
    except TypeError as exc:
        refused.append(clip(exc, 120))
        values = {k: v for k, v in values.items() if k not in LEGACY_SUPPORT}
    for name, value in dict(values).items():
        if name not in SETTINGS:
            continue
        try:
            set_setting(name, value)
        except (TypeError, ValueError) as exc:
            refused.append(f"{clip(name)}: {clip(exc, 120)}")
    return refused


def widget(name, where=None, **kw):
    """Draw setting ``name`` (in ``where``) from its declaration and remember a valid value.

    Number inputs have no bounds in the browser: a value out of range is refused here with the
    library's message (an st.error) and the last valid value is kept, rather than a red box that
    silently keeps the old value.  ``kw`` goes to the Streamlit element (``disabled``,
    ``format_func``, ``options`` to offer fewer choices, ``where``...).  A setting whose None
    means a rule (its ``rule_label``) takes ``rule_value``: what the rule gives with the data and
    settings in use, shown while the rule is on.
    """
    s = SETTINGS[name]
    p = s.param
    if s.rule_label:
        return _rule_or_number(s, where, kw.pop("rule_value"), kw)
    cfg = _cfg()
    fn = getattr(where if where is not None else st, s.kind)
    key = s.widget_key
    kw.setdefault("help", s.help)
    current = cfg.get(name, s.default)
    # A value written to the widget's state (_show) is what it shows: a default beside it would be
    # ignored, and Streamlit logs a warning with a stack trace for it. Streamlit drops a keyed widget's
    # state when another page runs, and drew a value held from there as its own default, 0: a session file
    # or a real data set loaded on the Data page showed K = 0 and M = 0 on the Fit page, and Run refused
    # them (the audit of 2026-12-06). A widget first drawn on this page starts from the setting.
    if not _on_this_page(key):
        st.session_state.pop(key, None)
    held = key in st.session_state
    st.session_state.setdefault(_DRAWN, set()).add(key)
    st.session_state.setdefault(_PAGE_OF, {})[key] = st.session_state.get("_page_path")
    if s.kind in ("selectbox", "radio"):
        options = list(kw.pop("options", p.choices or range(int(p.low), int(p.high) + 1)))
        if s.formats and "format_func" not in kw:
            kw["format_func"] = lambda v: s.formats.get(v, v)
        if s.kind == "radio":
            kw.setdefault("horizontal", True)
        if held and st.session_state[key] not in options:  # data that no longer offer it
            st.session_state.pop(key)
            held = False
        index = {} if held else {"index": options.index(current) if current in options else 0}
        out = fn(s.label, options, key=key, **index, **kw)
    else:
        value = {} if held else {"value": _shown_value(s, current)}
        if s.kind == "slider":
            out = fn(s.label, min_value=p.low, max_value=p.high, step=s.step, key=key, **value, **kw)
        elif s.kind == "number_input":
            step = float(s.step or 0.1) if p.kind == "float" else int(s.step or 1)
            out = fn(s.label, step=step, key=key, **value, **kw)
        else:
            out = fn(s.label, key=key, **value, **kw)
    try:
        out = p.check(out)
    except (TypeError, ValueError) as exc:
        (where if where is not None else st).error(f"{s.label}: {exc}. Still using {current}.")
        return current
    if cfg.get(name) != out:
        cfg = dict(cfg)
        cfg[name] = out
        st.session_state["_cfg"] = cfg
    return out


def applied_settings() -> dict:
    """The settings as applied: the data settings of the data in use (a value typed on the Data
    page but not generated yet would give the receiver of a link other data), the others as set."""
    values = settings()
    data = st.session_state.get("data")
    values.update(getattr(data, "settings", None) or {})
    return values


# The query key naming an uploaded file in use. A link or a reload cannot bring the file back (the
# browser sends it once), but it can say so: the page then tells which file is missing.
UPLOAD_QUERY = "upload"


# The query key holding the true parameters typed or uploaded on the Data page, which the knobs cannot give back:
# a reload or a link rebuilt the data from the knobs without a word (the audit of 2026-12-06).
TRUTH_QUERY = "truth"


# The query key naming a lesson (explorer.lessons): a link of it opens and runs the lesson. The address
# bar holds it alone while the lesson's settings are on screen as the lesson set them, so that a reload
# brings the lesson and its narration back; its key in the session state holds those settings.
LESSON_QUERY = "lesson"
LESSON_SETTINGS = "_lesson_settings"


def lesson_on_screen() -> str | None:
    """The key of the lesson whose settings are all as it set them (None: no lesson, or a setting changed
    since): what the address bar and the share box then give is the lesson's link."""
    ss = st.session_state
    key, started = ss.get("lesson"), ss.get(LESSON_SETTINGS)
    if not key or started is None:
        return None
    return key if settings_to_query(applied_settings()) == settings_to_query(started) else None


def settings_to_query(values: dict | None = None) -> dict:
    """The settings as URL query parameters (only those that differ from the defaults); by
    default the applied settings (:func:`applied_settings`) and, while an uploaded file is the
    data, its name (:data:`UPLOAD_QUERY`), or the lesson's key alone while a lesson is on screen as
    it started (:func:`lesson_on_screen`)."""
    if values is None and (lesson := lesson_on_screen()):
        return {LESSON_QUERY: lesson}
    data = st.session_state.get("data") if values is None else None
    values = applied_settings() if values is None else values
    out = {}
    for q, name in QUERY_KEYS.items():
        v = values.get(name, SETTINGS[name].default)
        if v != SETTINGS[name].default:
            out[q] = str(v).lower() if isinstance(v, bool) else str(v)
    if getattr(data, "source", None) == "csv":
        out[UPLOAD_QUERY] = clip(data.name, 80)
    if getattr(data, "typed_truth", ""):
        out[TRUTH_QUERY] = " ".join(data.typed_truth.split())
    return out


def lost_upload(query) -> str | None:
    """The name of the uploaded file a link or a reloaded page was made with (None: none), clipped."""
    name = query_value(dict(query or {}).get(UPLOAD_QUERY))
    return clip(name, 80) if name else None


def sync_query_params():
    """Mirror the settings of every page in the address bar, so it can be shared as is."""
    want = settings_to_query()
    have = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if want != have:
        # One message to the browser, one history entry: clear() and update() sent one each, and the
        # browser's Back then stayed on the page once for every page visited (the audit of 2026-12-06).
        st.query_params.from_dict(want)


def share_url(page: str = "", query: dict | None = None) -> str:
    """The app's address on ``page`` (its URL path, "" for the default page) with ``query`` (by default the
    current settings, :func:`settings_to_query`) as query parameters."""
    from urllib.parse import urlencode, urlsplit

    try:
        base = st.context.url
    except Exception:  # outside a browser session (AppTest, bare mode)
        base = None
    parts = urlsplit(base or "http://localhost:8501/")
    q = urlencode(settings_to_query() if query is None else query)
    return f"{parts.scheme}://{parts.netloc}/{page}" + ("?" + q if q else "")
