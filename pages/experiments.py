"""Experiments: sweeps with repeats over M, the support size, n, the rounds or K, as in the paper's tables,
on a named design or on the current (uploaded or real) data."""

import pandas as pd
import streamlit as st

from explorer import chrome, explain, figures, runs, settings, tables
from explorer.io import markdown_escape, parse_sweep_values, stem
from moecore import DistributedMoE, costmodel
from moecore.em import SMALL_DATA_ROWS, portfolio_repeats
from moecore.experiments import alpha_sweep, sweep, training_size
from moecore.params import DISTRIBUTED_PARAMETERS, default_support_size
from moecore.selection import choose_k
from moecore.simulation import DESIGNS

N_TEST = 20000
HELD_OUT = settings.SWEEP_HELD_OUT


def _design_changed():
    # K follows the design (its own number of experts) until the user changes it.
    settings.set_setting("exp_K", DESIGNS[st.session_state["exp_design"]].n_experts)


def _data_changed():
    # On the current data, K starts at the Fit page's (a real set's own K once it is loaded).
    if st.session_state["exp_data"] == "current":
        settings.set_setting("exp_K", settings.settings()["K"])


def experiment_settings() -> dict:
    """Draw the Experiments widgets (declared in explorer.settings, keys ``exp_*``, shared in links)
    and return every value a sweep depends on, in one dict."""
    data = st.session_state["data"]
    c1, c2, c3 = st.columns(3)
    if not data.sim and st.session_state.get("_exp_data_key") != data.key:
        # New uploaded or real data: the sweeps start on them (they started on a design, the audit of 2026-12-06).
        st.session_state["_exp_data_key"] = data.key
        settings.set_setting("exp_data", "current")
        settings.set_setting("exp_K", settings.settings()["K"])
    # Uploaded or real rows can be swept as they are; simulated ones are a design's draws already.
    source = settings.widget("exp_data", where=c1, on_change=_data_changed) if not data.sim else "design"
    if source == "current":
        design, d, n_rows = data.name, data.d, training_size(data.n, HELD_OUT)
        c1.caption(f"**{markdown_escape(data.name)}**: {n_rows:,} training rows, d = {d}; each repeat holds out its "
                   f"own random {100 * HELD_OUT:.0f} % of the {data.n:,} rows (drawn from the seed below).")
        chrome.data_warnings(data)
    else:
        design = settings.widget("exp_design", where=c1, on_change=_design_changed)
        d = DESIGNS[design].n_features
    # The alpha sweep splits by true expert labels and region mixing of a design's fresh draws.
    options = [p for p in settings.SWEEPS if source == "design" or p != "alpha"]
    parameter = settings.widget("exp_parameter", where=c2, format_func=tables.label, options=options)
    values = settings.widget(f"exp_values_{parameter}", where=c3, help=None)  # the label says it all
    c1, c2, c3, c4 = chrome.grid("exp_settings", 4)
    if source == "current":  # the data's own training rows, shown (the greyed box showed a design's n)
        n = c1.number_input("Sample size n (training rows of the data)", value=n_rows, disabled=True,
                            key="exp_n_current")
    else:
        n = settings.widget("exp_n", where=c1)
    M = settings.widget("exp_M", where=c1)
    K = settings.widget("exp_K", where=c2, disabled=parameter == "n_experts",
                        help="Set to the design's own number of experts when the design changes.")
    restarts = settings.widget("exp_restarts", where=c2, help="Also the global EM's restarts.")
    own_support = parameter == "support_fraction"  # the sweep sets S itself
    paper_S = default_support_size(int(n), int(M))
    # Greyed out, the box shows the size the runs use.
    support = settings.widget("exp_support_size", where=c3, rule_value=paper_S, disabled=own_support)
    c3.caption(f"floor(n / 4M) = {paper_S:,} for n = {int(n):,}, M = {int(M)}"
               + ("; it follows n and M in every run" if parameter in ("n", "n_machines") else ""))
    seed = settings.widget("exp_seed", where=c3)
    repeats = settings.widget("exp_repeats", where=c4)
    include_global = settings.widget("exp_global", where=c4)
    variance_update = settings.widget("exp_var", where=c4)
    split = settings.widget("exp_split") if parameter == "alpha" else None
    return dict(source=source, design=design, d=d, parameter=parameter, values=values, n=int(n), M=int(M), K=int(K),
                restarts=int(restarts), support_size=None if own_support else support, seed=int(seed),
                repeats=int(repeats), include_global=bool(include_global), variance_update=variance_update,
                split=split)


def sweep_hint(exp) -> str:
    """The example sweep over M, promising only what the cost model of this server predicts at n:
    the learning time from M = 2 to 16 at least halves."""
    try:
        cost = costmodel.load()
    except (OSError, ValueError, KeyError):
        return "Example: vary M over 2, 4, 8, 16 and compare the learning time and the RPE with the global EM's."
    try:
        t = [cost.predict(exp["n"], exp["d"], exp["K"], M, restarts=exp["restarts"]).learning_time
             for M in (2, 4, 8, 16)]
    except ValueError:  # too few rows for 16 machines (an upload of 10 rows raised here, on every run)
        return (f"Example: with {exp['n']:,} rows, vary K over 1, 2, 3 and compare the held-out fit and BIC: a "
                "sweep over M needs at least a few rows per parameter on each machine.")
    if t[-1] <= 0.5 * t[0]:  # a smaller fall drowns in the noise of timings on shared cores
        return ("Example: vary M over 2, 4, 8, 16 to see the learning time fall while the RPE stays close to the "
                "global EM's.")
    return (f"Example: vary M over 2, 4, 8, 16 and compare the RPE with the global EM's. At n = {exp['n']:,} the "
            "learning time need not fall with M (the cost model of this server predicts "
            + ", ".join(f"{1000 * v:.0f} ms" for v in t) + "): the local fits are already quick and the reduction "
            "costs about the same at any M, so the fall is lost in the noise of the timings. "
            + ("A design of n = 200 000 shows it fall." if exp["source"] == "current" else "Raise n to 200 000 to see "
               "it fall."))


chrome.page("Experiments")
st.caption("Accuracy and time of the reduction as functions of the number of machines M, the supporting sample "
           "size, the sample size n (consistency), the refinement rounds (accuracy against communication) or the "
           "number of experts K (held-out fit and BIC: which K the data support), with "
           "the global EM as the reference. Each point is the mean ± sd over independent repeats (fresh data and "
           f"seeds), evaluated on held-out data: {N_TEST:,} fresh samples of a design, or a random "
           f"{100 * HELD_OUT:.0f} % of the current data's rows, never fitted.")
exp = experiment_settings()
# Where the fits run: the backend, n_jobs (capped at the cores) and scheduler of the Fit page.
run_on = {k: v for k, v in runs.fit_params(settings.settings()).items() if k in ("backend", "n_jobs", "scheduler")}
st.caption(f"The local fits run on the backend chosen on the Distributed fit page: **{run_on['backend']}**, "
           f"n_jobs = {run_on['n_jobs']}.")

with st.expander("Choose K on the current data: BIC and ICL against K", expanded="k_selection" in st.session_state):
    data = st.session_state["data"]
    fit_kw = runs.fit_params(settings.settings())
    st.caption(f"On **{data.name}** (n = {data.n:,}, all rows, as BIC asks): the global EM and the distributed fit "
               f"over the Fit page's M = {fit_kw['n_machines']} machines, for each K. The chosen K has the lowest "
               "criterion. ICL adds twice the entropy of the memberships: it prefers well-separated experts.")
    k1, k2, k3 = st.columns([2, 1, 1])
    ks_text = k1.text_input("Numbers of experts to try", "1, 2, 3, 4", key="k_values")
    criterion = k2.radio("Criterion", ["bic", "icl"], format_func=str.upper, horizontal=True, key="k_criterion")
    k3.write("")
    if k3.button("Compute", key="btn_choose_k"):
        high = settings.SETTINGS["K"].param.high
        try:
            ks = [int(v) if v.isdecimal() else None for v in ks_text.replace(" ", "").split(",") if v]
            if not ks or None in ks or min(ks) < 1 or max(ks) > high or len(set(ks)) < len(ks):
                raise ValueError(f"K values must be distinct whole numbers from 1 to {high}.")
        except ValueError as exc:
            st.error(f"{exc} Type them as 1, 2, 3, 4.")
            ks = []
        else:
            # A K too many for the Fit page's machines is left out, not the whole computation (the audit of
            # 2026-12-06: one such K failed them all, in the Fit page's words).
            M_fit = fit_kw["n_machines"]
            too_many = [k for k in ks if runs.settings_error(data.n, data.d, k, M_fit, fit_kw["support_size"])]
            ks = [k for k in ks if k not in too_many]
            if too_many:
                (st.info if ks else st.error)(
                    f"K = {', '.join(map(str, too_many))} left out: too many experts for {M_fit} machines of about "
                    f"{data.n // M_fit:,} rows (the Distributed fit page's M). Fewer machines there let them be tried.")
        if ks:
            dist = {k: fit_kw[k] for k in ("backend", "n_jobs", "scheduler", "support_size")}
            with st.container(), st.spinner(  # a stable layout (explorer.chrome)
                    f"Fitting K = {', '.join(map(str, ks))}: the global EM and the distributed fit each"):
                sel = runs.attempt("Choosing K", choose_k, data.X, data.y, ks, n_machines=fit_kw["n_machines"],
                                   criterion=criterion, random_state=fit_kw["random_state"],
                                   distributed_params=dist, n_init=fit_kw["n_init"])
            if sel is not None:
                st.session_state["k_selection"] = (data.key, data.name, sel)
    if "k_selection" in st.session_state:
        key, name, sel = st.session_state["k_selection"]
        chrome.chart(figures.k_figure(sel.table, sel.criterion, {"global": sel.chosen_global,
                                                             "distributed": sel.chosen_distributed}), "k_plot")
        st.markdown(f"{sel.criterion.upper()} chooses **K = {sel.chosen_global}** for the global EM and "
                    f"**K = {sel.chosen_distributed}** for the distributed fit on {name}"
                    + ("" if key == data.key else " (not the current data: compute again)") + ".")
        st.dataframe(sel.table.style.format("{:.6g}"), width="stretch")

b = st.container(horizontal=True)  # buttons as wide as their words in a narrow window
start = b.button("Run the sweep", type="primary", key="btn_sweep")
cancel = b.button("Cancel", key="btn_cancel")
ss = st.session_state
if ss.get("sweep_running") and (cancel or not start):
    # Cancel, or another widget, interrupted the previous run. Streamlit starts this run in a new thread
    # at once (runner.fastReruns) while the old one finishes its fit and appends one more row before
    # it stops: this run keeps a copy of the rows gathered so far, and the old run appends to a list
    # nobody reads (a DataFrame built while a row was appended raised "Length of values (2) does
    # not match length of index (3)").
    ss["sweep_rows"] = list(ss.get("sweep_rows", []))
    ss["sweep_running"] = False
    # Another widget: say so instead of pretending the sweep finished.
    ss["sweep_status"] = (f"{'Cancelled' if cancel else 'Interrupted'} after {len(ss['sweep_rows'])} runs; "
                          "the partial results are below.")

def checked_values(exp, sweep_kw) -> list:
    """The sweep's values, once every fit it will run has been checked (ValueError, TypeError)."""
    vals = parse_sweep_values(exp["values"], exp["parameter"], exp["M"], settings.MAX_APP_ROUNDS)
    n_min = min(vals) if exp["parameter"] == "n" else exp["n"]
    M_max = max(vals) if exp["parameter"] == "n_machines" else exp["M"]
    K_max = max(vals) if exp["parameter"] == "n_experts" else exp["K"]  # the most parameters a shard must carry
    probe = DistributedMoE(**{k: v for k, v in dict(sweep_kw, n_machines=M_max, n_experts=K_max).items()
                              if k in DISTRIBUTED_PARAMETERS})
    probe.check_parameters(int(n_min), exp["d"])
    runs.check_sweep_budget(exp["design"], exp["parameter"], sweep_kw, vals)
    if sweep_kw["backend"] == "dask":
        runs.check_scheduler(sweep_kw["scheduler"])
    return vals


def gather(rows, gen, bar, total, parameter):
    """Append the sweep's rows as they come (the rows gathered before an error are kept)."""
    for i, row in enumerate(gen, start=1):
        rows.append(row)
        bar.progress(i / total, text=f"{i} / {total} fits: {row['method']} at {tables.label(parameter)} = "
                                     f"{row['value']}, repeat {row['repeat'] + 1}")
    return len(rows)


def _support_used(df) -> str:
    """The supporting sample each value of a support sweep ran with: a fraction that gives fewer points than
    experts runs with K (0.001 of floor(n / 4M) said nothing of its 3 points: the audit of 2026-12-06)."""
    runs_ = df[df["method"] == "reduction"].groupby("value")[["support", "K"]].first()
    return "S used " + ", ".join(f"{v:g} x floor(n / 4M): {int(r.support):,}" + (" (raised to K)" if r.support == r.K
                                                                                  else "") for v, r in runs_.iterrows())


def sweep_params(exp) -> dict:
    """The sweep's keyword arguments: the settings' (runs.fit_params), with the current data's rows
    and the share each repeat holds out when the runs fit them."""
    kw = runs.fit_params(settings.settings(), sweep=True)
    if exp["source"] == "current":
        data = st.session_state["data"]
        kw.update(data=(data.X, data.y), test_size=HELD_OUT)
    return kw


def sweep_runs(exp, vals, sweep_kw):
    """The sweep's runs (a generator); the library checks its arguments here, before any fit."""
    common = dict(sweep_kw, n_test=N_TEST)
    if exp["parameter"] == "alpha":
        return alpha_sweep(exp["design"], exp["split"], vals, **common)
    return sweep(exp["design"], exp["parameter"], vals, **common)


with st.container():  # a stable layout (explorer.chrome): the progress bar comes and goes in here
    if start:
        parameter = exp["parameter"]
        sweep_kw = sweep_params(exp)
        vals = runs.attempt("Checking the sweep", checked_values, exp, sweep_kw,
                            after="Change the values or settings above.")
        gen = None if vals is None else runs.attempt("Checking the sweep", sweep_runs, exp, vals, sweep_kw,
                                                     after="Change the values or settings above.")
        if gen is not None:
            per = 3 if parameter == "alpha" else 2
            total = len(vals) * exp["repeats"] * (per if exp["include_global"] else per - 1)
            mine = ss["sweep_rows"] = []
            ss["sweep_meta"] = dict(exp)
            ss["sweep_running"] = True
            bar = st.progress(0.0, text=f"0 / {total} fits")
            done = runs.attempt("The sweep", gather, mine, gen, bar, total, parameter,
                                after="The runs finished before the error are below.")
            if ss.get("sweep_rows") is mine:  # else a cancel took over while the last fit ran
                ss["sweep_status"] = (f"Finished: {done} fits." if done is not None
                                      else f"Stopped by an error after {len(mine)} runs.")
                ss["sweep_running"] = False
            # A click on Cancel (or any widget) stops this script mid-loop, leaving sweep_running set:
            # the next run reads that as a cancellation and keeps the rows gathered so far.
    if ss.get("sweep_status"):
        st.info(ss["sweep_status"])

rows = ss.get("sweep_rows")
if not rows:
    st.info("Choose the data and the values, then press Run the sweep. " + sweep_hint(exp))
    chrome.stop()
df = pd.DataFrame(rows)
meta = ss.get("sweep_meta", exp)
parameter, design = meta["parameter"], meta["design"]
metrics = [m for m in tables.SWEEP_METRICS if m in df]
first = df.iloc[0]
on_data = meta.get("source") == "current"
ran = df[df["method"] == "reduction"].groupby("value")["repeat"].nunique()
st.caption(f"Settings of these runs: {'data' if on_data else 'design'} **{markdown_escape(design)}**, "
           f"{tables.label(parameter)} varied; "
           + (f"each repeat holds out its own random {100 * HELD_OUT:.0f} % of the rows (from the seed), "
              if on_data else "")
           + ("" if parameter == "n" else f"n = {meta['n']:,}{' training rows' if on_data else ''}, ")
           + ("" if parameter == "n_machines" else f"M = {meta['M']}, ")
           + ("" if parameter == "n_experts" else f"K = {first['K']}, ")
           + f"{first['restarts']} EM restart(s) per machine, supporting sample "
           + (_support_used(df) if parameter == "support_fraction"
              else "S = the paper's floor(n / 4M)" if meta["support_size"] is None else f"S = {meta['support_size']:,}")
           + f", seed {meta['seed']}, {explain.repeats_text(ran.to_dict(), meta['repeats'], tables.label(parameter))}, "
           f"backend {first['backend']} "
           f"(n_jobs = {first['n_jobs']}). The CSV holds them in every row.")
if {"reduction", "global"} <= set(df["method"]) and (df["M"] == 1).any():
    # The same rows as the global EM, yet "faster": the helper of 2026-12-06 read 0.076 s against 2.08 s as a
    # speed-up. A local fit runs one lighter portfolio; a global EM on few rows runs several.
    n1 = int(df.loc[df["M"] == 1, "n"].min())
    repeats = portfolio_repeats(n1)
    runs = (f"runs {repeats} whole portfolio(s)" if n1 <= SMALL_DATA_ROWS or repeats == 1 else
            f"runs up to {repeats} whole portfolios, until one confirms the best maximum,")
    st.caption(f"At M = 1 the distributed fit is one local fit of the same rows as the global EM, not a speed-up: a "
               f"machine runs one portfolio of starts, keeping each kind's best, where the global EM on {n1:,} rows "
               f"{runs} and continues every kind's best (docs/method.md, section 8).")
c1, c2 = chrome.pair("sweep")
with c1:
    chrome.chart(figures.sweep_figure(df, parameter, "rpe"), "exp_rpe")
with c2:
    chrome.chart(figures.sweep_figure(df, parameter, "time"), "exp_time")
# Across K the question is which K the data support: BIC first; else the gates, the hardest block,
# where a truth knows them (a design), and the held-out log-likelihood on data.
third = "bic" if parameter == "n_experts" else "mse_gates" if "mse_gates" in metrics else "loglik"
metric = st.selectbox("Another metric", metrics, index=metrics.index(third) if third in metrics else 0,
                      format_func=tables.label, key="exp_metric")
chrome.chart(figures.sweep_figure(df, parameter, metric), "exp_other")
summary = df.groupby(["value", "method"])[metrics].mean()
if "rpe" in summary and {"reduction", "global"} <= set(df["method"]):
    means = summary["rpe"].unstack("method")
    line = explain.sweep_accuracy_warning({v: (means.loc[v, "reduction"], means.loc[v, "global"]) for v in means.index
                                           if means.loc[v, ["reduction", "global"]].notna().all()},
                                          tables.label(parameter))
    if line:
        st.warning(line)
summary["repeats"] = df.groupby(["value", "method"])["repeat"].nunique()
summary.index = summary.index.set_names([parameter, "method"])
st.subheader(f"Mean over repeats ({markdown_escape(design)})")
st.dataframe(tables.readable_table(summary).style.format("{:.4g}"), width="stretch")
chrome.download("Download all runs as CSV", df.to_csv(index=False).encode("utf-8"),
                file_name=f"sweep_{stem(design)}_{parameter}.csv", mime="text/csv", key="dl_sweep")

chrome.done()
