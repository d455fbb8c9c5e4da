"""Distributed fit: M local EM fits in parallel, then the optimal-transport / MM reduction."""

import time

import streamlit as st

from explorer import chrome, explain, figures, lessons, runs, settings, tables
from explorer.data import apply_saved_model
from explorer.io import MAX_MODEL_MB, MAX_UPLOAD_MB, markdown_escape, model_to_json, stem, table_to_csv
from moecore.distributed import floored_machines
from moecore.em import degenerate_message
from moecore.machine_weights import AUTO_LEVEL
from moecore.model import feature_names
from moecore.params import default_support_size
from moecore.predictions import prediction_frame
from moecore.shard_check import FIT_CHECK_RATIO, LOGLIK_CHECK_FACTOR, check_shards, ratio_text
from moecore.splits import machine_labels

RUNNING = "_fit_running"  # session key: the settings of a fit that has started and not ended

data = chrome.page("Distributed fit")
st.caption(
    f"Split the {data.n:,} samples of **{markdown_escape(data.name)}** over M machines, fit a K-expert MoE by "
    "EM on each (in parallel), then reduce the M K local experts to K by optimal transport."
)
if st.session_state.get("lesson") is None:
    held = st.session_state.get("fit")
    # What the page holds, said as it is: a link too large to fit by itself left none.
    now = ("This page already holds a fit of these data: change any setting below and press Run distributed fit."
           if held is not None and held.data_key == data.key else
           "Choose the settings below and press Run distributed fit.")
    st.markdown(":material/flag: **Start here:** new to the method? Read **Learn** (six short steps and a live "
                "example) or run a **Lesson** in one click (sidebar). " + now)

with st.container(border=True):
    c1, c2, c3, c4 = chrome.grid("fit_settings_1", 4)
    settings.widget("K", where=c1)
    n_machines = int(settings.widget("M", where=c1))
    n_train = data.n
    paper_S = default_support_size(n_train, n_machines)
    support = settings.widget("support_size", where=c2, rule_value=paper_S)
    c2.caption(f"floor(n / 4M) = {paper_S:,} for n = {n_train:,}, M = {n_machines}")
    settings.widget("init", where=c3)
    settings.widget("restarts", where=c3)
    settings.widget("mm_restarts", where=c3)
    settings.widget("backend", where=c4, help="threading: no start-up cost (the default); loky: separate processes, "
               "~1-3 s to start; dask: the workers of a dask.distributed cluster.")
    if settings.settings()["backend"] == "dask":
        settings.widget("scheduler", where=c4, placeholder="tcp://127.0.0.1:8786")
    settings.widget("n_jobs", where=c4)
    c1, c2, c3, c4 = chrome.grid("fit_settings_2", 4)
    settings.widget("fit_seed", where=c1)
    settings.widget("variance_update", where=c1)
    settings.widget("gate_targets", where=c2)
    settings.widget("local_check", where=c2)
    settings.widget("rounds", where=c3)
    c1, c2, c3, c4 = chrome.grid("fit_settings_3", 4)
    split = settings.widget("split", where=c1)
    settings.widget("split_alpha", where=c2, disabled=split == "random")
    if data.d > 1:
        settings.widget("split_feature", where=c3, options=list(range(data.d)), format_func=lambda j: data.x_names[j],
                   disabled=split != "region")
    elif settings.settings()["split_feature"] != 0:
        settings.set_setting("split_feature", 0)  # one input: the regions can only follow it
    settings.widget("machine_weights", where=c4)
    K_now = settings.settings()["K"]
    # Settings no fit can run with (M above the rows, S outside [K, n]) say so before the run: the
    # small-shard advice (for accuracy) beside the library's refusal gave two "at most" numbers.
    # support None is the rule, which both take as the library does (at least K: a rule giving 4 points for
    # K = 5 was refused here as "support_size must be in [5, 150], got 4", a value never typed).
    blocked = runs.settings_error(n_train, data.d, K_now, n_machines, support)
    shard = None if blocked else check_shards(n_train, data.d, K_now, n_machines, support)
    if blocked:
        st.error(f"These settings cannot run: {blocked} The previous results stay on screen.")
    elif shard.ok:
        st.caption(f"{shard.summary}: enough for the reduction.")
    else:
        # One line, as every warning of this page, and the reasons in an expander.
        st.warning(explain.small_shards_line(shard))
        with st.expander("Why this matters"):
            st.markdown(f"{shard.message} The fit still runs, to show what goes wrong.")
    chrome.data_warnings(data)
    b = st.container(horizontal=True)  # buttons as wide as their words: a narrow column cut them to "Run dist…"
    run = b.button("Run distributed fit", type="primary", key="btn_fit")
    retime = b.button("Re-time", key="btn_retime",
                       help="Fit again with the same settings and measure the times anew (a repeated fit is "
                            "otherwise read from the cache, with the times of its first run).")

with st.container():  # a stable layout (explorer.chrome): the progress bar and the notes come and go in here
    if (run or retime) and not blocked:
        # Set while the fit runs: leaving the page (or a rerun) stops this script mid-fit, and the next
        # visit says so instead of showing the last finished fit as if nothing had happened.
        now = settings.settings()
        st.session_state[RUNNING] = f"K = {now['K']}, M = {now['M']}, seed {now['fit_seed']}"

        def progress(stage, done, total):
            if stage == "local":
                bar.progress(0.8 * done / total, text=f"local fits done: {done} / {total}")
            elif stage == "mm":
                bar.progress(0.8 + 0.1 * min(done / max(total, 1), 1.0), text=f"MM reduction: iteration {done}")
            elif stage == "round":
                bar.progress(0.9 + 0.05 * done / total, text=f"refinement round {done} / {total}")
            else:
                bar.progress(0.96, text="global EM on all the data (the reference)")

        with chrome.running("fit") as bar:
            new = runs.attempt("The fit", runs.run_fit, data, progress=progress, retime=retime)
        st.session_state.pop(RUNNING, None)
        if new is not None:
            st.session_state["fit"] = new
            if st.session_state.get("lesson"):
                # The lesson's banner, drawn above before this run, explains the fit it found: drawn again, it
                # speaks of this one (it kept "covariate weights" after the lesson's "now try constant").
                st.rerun()
    elif st.session_state.get(RUNNING):
        # Streamlit stops a run when the page is left or any widget changes while it runs.
        st.warning(f"Your last run ({st.session_state.pop(RUNNING)}) did not finish: the page was left, or a setting "
                   "changed, while it ran. "
                   + ("The results below are those of the last fit that ended; p" if st.session_state.get("fit")
                      is not None else "P") + "ress Run distributed fit to run it again.")

    fit = st.session_state.get("fit")
    if fit is None:
        st.info("No fit yet: choose the settings and press Run distributed fit.")
        chrome.stop()
    if fit.data_key != data.key:
        st.warning("These results are for the previous data set (the plots over the data are hidden, the times are "
                   "those of that fit): press Run distributed fit to fit the current data.")
    elif not fit.matches(data, settings.settings()):
        st.info("The settings above changed since this fit: press Run distributed fit to apply them. The results below "
                "are those of the last fit.")

    when = time.strftime("%H:%M:%S", time.localtime(fit.measured_at))
    if fit.cached:
        st.caption(f":material/history: Cached result: these times were measured at {when} when these settings were "
                   "first fitted. Press Re-time to measure them again.")

dm, g, s = fit.dm, fit.global_model, fit.settings
truth = data.truth if fit.data_key == data.key else None
Xd = data.X if fit.data_key == data.key else None
colors = runs.figure("colors", (fit.key, Xd is not None), lambda: figures.reduced_colors(dm.params_, truth, Xd))
# Figures depend on the fit (its times too: a fit computed again after the cache let it go has
# the same key and new times) and on the data drawn behind it.
fkey = (fit.key, fit.measured_at, data.key)
times = dm.timings_

n_fit = int(sum(len(idx) for idx in dm.shards_)) if dm.shards_ is not None else data.n  # the fit's rows
m = chrome.cards(6, "fit_cards")
count, left_out = explain.machines_count(len(dm.local_models_), int(s["M"]), dm.params_.n_experts, dm.skipped_)
with m[0], lessons.box("machines"):
    st.metric("machines M / experts K", count)
    if left_out:
        st.caption(left_out)
m[1].metric("supporting sample S", f"{len(dm.support_indices_):,}")
with m[2], lessons.box("learning"):
    st.metric("learning time", explain.seconds(dm.costs_.learning_time),
              help=f"The paper's figure, machines truly in parallel: {dm.costs_.describe()}.")
with m[3], lessons.box("wall"):
    st.metric("wall clock" + (" (cached)" if fit.cached else ", this fit"), explain.seconds(times["wall"]),
              help=f"On the cores actually used, measured at {when}.")
with m[4], lessons.box("global"):
    st.metric("global EM time", explain.seconds(g.fit_time_), help=explain.global_starts(g))
with m[5], lessons.box("speedup"):
    st.metric("speed-up", explain.times(g.fit_time_ / max(times['learning_time'], 1e-9)),
              help="Global EM time / learning time. Below: when distribution pays on this server.")
# When distribution pays: why this run's speed-up is below 1 (if it is), then what this server's
# cost model predicts for these sizes, where the speed-up crosses 1 and what would raise it.
parts = dm.costs_.learning_time_parts()
below_one = g.fit_time_ < sum(parts.values())
pays = [explain.speedup_sentence(parts, g.fit_time_, len(dm.local_models_))] if below_one else []
predicted = explain.cost_model_text(
    n_fit, dm.params_.n_features, dm.params_.n_experts, int(s["M"]), S=len(dm.support_indices_),
    rounds=int(s["rounds"]), restarts=int(s["restarts"]), mm_restarts=int(s["mm_restarts"]), cores=settings.MAX_JOBS,
    measured_global=g.fit_time_)
if predicted:
    pays.append(predicted + " The measured speed-up above also counts threads sharing this server's cores.")
if pays:
    st.caption(":material/speed: **When does distribution pay?** " + " ".join(pays))

screening = dm.screening_
line, details = explain.screening_summary(screening, len(screening.scores))
if line:
    with lessons.box("screening"):
        st.warning(line)
        if details:
            with st.expander(f"Screening details: {len(details)} machines"):
                st.markdown("\n".join(f"- {d}" for d in details))
communication = dm.communication_
rounds_note = (f"; {times['rounds'].size} refinement round(s): {communication['round_up'].mean():,.0f} up and "
               f"{communication['round_down'].mean():,.0f} down per machine per round") if times["rounds"].size else ""
st.caption(f"Communication: {communication['one_shot_up'].mean():,.0f} numbers per machine for the one-shot "
           f"reduction (local model + its share of the supporting sample){rounds_note}; {communication['total']:,.0f} "
           "numbers in all, "
           f"against {n_fit * (dm.params_.n_features + 1):,} to move the data.")

if fit.train_rpe:
    st.caption(f"Training RPE: reduction {explain.rpe_text(fit.train_rpe['reduction'])}, global EM "
               f"{explain.rpe_text(fit.train_rpe['global'])}. Held-out comparisons with every baseline are on the "
               "Compare page.")
    line = explain.accuracy_warning(fit.train_rpe["reduction"], fit.train_rpe["global"], "training")
    check = dm.fit_check_
    if line:
        st.warning(line)
    if check is not None and not check.ok:
        # The library's own check needs no global EM: what a user of moecore sees as an AccuracyWarning.
        st.caption("moecore's check after the fit, without a global EM: the training RPE is "
                   f"{ratio_text(check.ratio)} the local models' own on their rows (it warns above "
                   f"{FIT_CHECK_RATIO:g}x); the log-likelihood there is {check.loglik_gap:.3g} nats per row below "
                   f"theirs (it warns above {check.loglik_allowed:.3g}, {LOGLIK_CHECK_FACTOR:g} q / n_m).")

# Predictions can look fine while a rare expert's line and variance are far off: say so on screen.
# Experts are named as on this page (numbered like their colours), not in the model's own order.
line = explain.expert_rows_warning(getattr(dm, "expert_rows_", None), dm.refine_rounds, colors)
if line:
    st.warning(line)
line = explain.expert_spread_warning(getattr(dm, "expert_spread_", None), dm.refine_rounds, colors)
if line:
    st.warning(line)
# An expert on tied responses (a binary y, a mass of zeros): its variance at the floor, the likelihood unbounded.
line = explain.renumbered(degenerate_message(dm.params_, dm.support_X_, dm.support_y_, rows_name="support points"),
                          colors)
if line:
    st.warning(line)
floored = floored_machines(dm)
if floored:  # a near-noiseless response: the app has no var_floor setting, the library has
    st.info(f"On {len(floored)} of {len(dm.machines_)} machines, rows lie closer to their experts' lines than "
            f"moecore's variance floor ({dm.var_floor:g} var(y)) allows: the variances shown are the floor's, larger "
            "than the data's, and the log-likelihoods lower; the lines are right. In code, "
            "DistributedMoE(var_floor=1e-12) fits them.")

st.subheader("Machines: who holds which x, and the weights used")
used = dm.machine_weights_used_
test = dm.machine_weights_test_
why = (f"the rows were split by x ({s['split']}), so the machines hold different inputs by construction (a score "
       f"test of 'the machine does not depend on x' gave p = {test.p_value:.3g})" if test is not None
       and used == "covariate" and test.p_value >= AUTO_LEVEL else
       f"a score test of 'the machine does not depend on x' gave p = {test.p_value:.3g} (T = {test.statistic:.1f}, "
       f"{test.df} df; covariate below {AUTO_LEVEL:g})" if test is not None else
       "the rows were shuffled at random, so every machine sees the same inputs" if used == "constant"
       and s["machine_weights"] == "auto" else f"machine weights = {s['machine_weights']} was chosen")
lessons.box("weights").caption(
    f"The large mixture weighs the machines with **{used}** weights: {why}. Constant weights n_m / n assume every "
    "machine saw the whole input space; a machine that saw only part of it would then speak for x it never saw.")
retired = {int(dm.machines_[i]): m.retired_experts_.tolist() for i, m in enumerate(dm.local_models_)
           if m.retired_experts_.size}
line, details = explain.retired_summary(retired, dm.params_.n_experts, len(dm.local_models_))
if line:
    st.warning(line)
    with st.expander("Which machines retired experts"):
        st.markdown("\n".join(f"- {d}" for d in details))
if Xd is not None and dm.shards_ is not None:
    d_all = data.d
    opts = [*data.x_names, "2-D projection (principal components)"]
    shown = st.selectbox("Show the machines along", opts, key="fit_machine_feature") if d_all > 1 else opts[0]
    machine_axis = opts.index(shown)
    machine_axis = "projection" if machine_axis == d_all else machine_axis
    chrome.chart(runs.figure("machines", (*fkey, machine_axis), lambda: figures.machines_figure(
        data.X, machine_labels(dm.shards_, data.n), feature=machine_axis, x_names=data.x_names, support_X=dm.support_X_,
        support_weights=dm.support_weights_, shares=None)), "fit_machines")

st.subheader("Local experts, reduced experts" + (" and the truth" if truth is not None else ""))
d = dm.params_.n_features
names = feature_names(d, data.x_names if Xd is not None else None)
o = st.container(horizontal=True, vertical_alignment="center", gap="medium")  # options as wide as their words
feature = names.index(o.selectbox("Input on the x axis", names, key="fit_feature", width=220)) if d > 1 else 0
show_local = o.checkbox("Show the M x K local experts", value=True, key="fit_show_local")
show_data = o.checkbox("Show the data", value=True, key="fit_show_data")
full_lines = o.checkbox("Full reduced expert lines", value=False, key="fit_full_lines",
                         help="Off: each reduced expert is drawn where its gate is the largest, where it predicts.")
left, right = chrome.pair("fit_experts")
Xplot = data.X if data.d == d else None  # a stale fit of data with another d cannot be drawn over this data
with left:
    if Xplot is not None:
        chrome.chart(runs.figure("experts", (*fkey, feature, show_data, show_local, full_lines),
                                 lambda: figures.experts_figure(
            dm, Xplot, data.y if Xd is not None else None, truth, feature=feature, x_names=names, colors=colors,
            show_data=show_data, show_local=show_local, full_lines=full_lines)), "fit_experts")
with right:
    coef_options = figures.coef_names(d, names)
    a1, a2 = st.columns(2)
    # The options are the names themselves: with index options a new CSV's names ("slope temp")
    # would leave the browser showing the old label ("slope x1") over the new axis.
    coef_x = coef_options.index(a1.selectbox("Coefficient on the x axis", coef_options, index=0,
                                             key="fit_coef_a"))
    coef_y = coef_options.index(a2.selectbox("Coefficient on the y axis", coef_options, index=min(1, d),
                                             key="fit_coef_b"))
    chrome.chart(runs.figure("coef", (*fkey, coef_x, coef_y), lambda: figures.coefficient_figure(
        dm, truth, a=coef_x, b=coef_y, x_names=names, colors=colors)), "fit_coef")

st.subheader("Gates and transport plan")
n_fitted = len(dm.local_models_)
many = n_fitted > figures.MANY_MACHINES  # per-machine views become summaries (they would be pages tall)
left, right = chrome.pair("fit_gates")
with left:
    models = {"reduced": dm.params_}
    cols = {"reduced": colors}
    if truth is not None:
        models["truth"] = truth
    models["global EM"] = g.params_
    cols["global EM"] = figures.gate_colors(dm.params_, g.params_, colors, truth, Xd)
    if Xplot is not None:
        chrome.chart(runs.figure("gates", (*fkey, feature), lambda: figures.gates_figure(
            models, Xplot, feature=feature, x_names=names, colors=cols)), "fit_gates")
with right:
    # One heatmap row per local expert: at K = 10 and M = 16 its 160 rows had 6 px labels.
    if many or len(dm.transport_plan_.expert) > figures.MANY_PLAN_ROWS:
        chrome.chart(runs.figure("plan_m", fkey, lambda: figures.plan_machines_figure(dm, colors=colors)), "fit_plan")
        st.caption(f"One bar per machine: the share of its gate mass the plan sends to each reduced expert, in that "
                   f"expert's colour. With {n_fitted} machines the plan has {len(dm.transport_plan_.expert):,} rows; "
                   "they are in the table below.")
    else:
        chrome.chart(runs.figure("plan", fkey, lambda: figures.plan_figure(dm, colors=colors)), "fit_plan")
        st.caption("Row m·e: expert e of machine m. Each row's mass goes (mostly) to one reduced expert; column k "
                   "is shaded from white to reduced expert k's colour (darker = more mass).")
    with st.expander(f"The whole transport plan: one row per local expert ({len(dm.transport_plan_.expert):,} rows)"):
        st.dataframe(runs.figure("plan_table", fkey, lambda: tables.plan_table(dm, colors=colors)).style.format(
            precision=3), width="stretch", hide_index=True, key="fit_plan_table")

st.subheader("Convergence")
left, right = chrome.pair("fit_convergence")
chrome.chart(runs.figure("loglik", fkey, lambda: figures.loglik_figure(dm, g)), "fit_loglik", where=left)
chrome.chart(runs.figure("mm", fkey, lambda: figures.mm_figure(dm.mm_history_, dm.reduction_.init_objectives,
                                                              n_kmeans=dm.mm_n_init)), "fit_mm", where=right)

st.subheader("Timing")
timing = runs.figure("timing", fkey, lambda: figures.timing_figure(dm, g.fit_time_))
if many:  # two panels: the distribution of the local fits needs the page's width
    chrome.chart(timing, "fit_timing")
    left, right = chrome.pair("fit_timing", (3, 2))
else:
    left, right = chrome.pair("fit_timing", (3, 2))
    chrome.chart(timing, "fit_timing", where=left)
with (left if many else right), lessons.box("timing"):
    st.markdown(
        f"- **learning time** (the paper's figure, machines truly in parallel): {dm.costs_.describe()}\n"
        f"- **wall clock** of this fit on the cores used ({s['backend']}, n_jobs = {s['n_jobs']}): "
        f"{times['wall']:.3f} s\n"
        f"- sum of local fit times (one machine doing all shards): {times['local_sum']:.3f} s\n"
        f"- **global EM** on all {n_fit:,} samples: {g.fit_time_:.3f} s"
        f"\n- CPU time of the same steps (not inflated by other work on the host): {dm.costs_.describe(cpu=True)}"
    )
with right:
    # The reduced experts in the page's order (numbered like their colours): the table, the model JSON and the
    # predictions' gate columns agree with the figures and the warnings above.
    prm = dm.params_.permute(colors.argsort())
    st.caption("Reduced model parameters (numbered like their colours; so are the downloads)")
    st.dataframe(tables.params_table(prm, names, name="reduced", gates=False).round(4), width="stretch")
meta = {"method": "distributed reduction (Chamroukhi & Pham)", "data": data.name,
        "n": int(sum(len(idx) for idx in dm.shards_)), "S": len(dm.support_indices_),
        "settings": {k: s[k] for k in settings.FIT_SETTINGS if k in s}, "x_names": list(names),
        "y_name": data.y_name if Xd is not None else "y",
        "preprocessing": "none: the parameters act on the raw inputs and response (EM standardises "
                         "internally and maps its coefficients back)",
        "learning_time": times["learning_time"]}
with st.container(horizontal=True):  # below the columns: a narrow column cut their words
    chrome.download("Download the reduced model (JSON)", model_to_json(prm, meta),
                    file_name=f"reduced_model_{stem(data.name)}.json", mime="application/json", key="dl_model")
    if Xd is not None:
        # Written on the click: a table of n rows and K + d + 4 columns.
        chrome.download("Download predictions on the data (CSV)",
                        lambda: prediction_frame(prm, data.X, y=data.y, x_names=data.x_names,
                                                 y_name=data.y_name).pipe(table_to_csv),
                        file_name=f"predictions_{stem(data.name)}.csv", mime="text/csv", key="dl_predictions",
                        help="Per row: the inputs, the response, the prediction E[y | x], the gate probabilities, "
                             "the most likely expert (largest gate) and the posterior expert given y.")

with st.expander("Apply a saved model to the current data or to new inputs"):
    st.caption("A model JSON downloaded from this page, applied to the current data, or to a CSV of new inputs: "
               "the model's input columns (x_names) by name, in any order; a response column is optional (with it, "
               "the table also gives each row's most likely expert given its y; empty cells are unknown). Other "
               "columns, such as an id, come first in the table.")
    saved = st.file_uploader(f"Model JSON (at most {MAX_MODEL_MB} MB)", key="apply_model_upload",
                             max_upload_size=MAX_MODEL_MB)
    new_x = st.file_uploader(f"New inputs (CSV, optional; at most {MAX_UPLOAD_MB} MB)", key="apply_inputs_upload",
                             max_upload_size=MAX_UPLOAD_MB)
    table = None if saved is None else runs.attempt(
        "Applying the model", apply_saved_model, data, saved.getvalue(), saved.name,
        *(() if new_x is None else (new_x.getvalue(), new_x.name)),
        after=("Choose a model fitted on data with these columns, or inputs with its columns; the current results "
               "are unchanged."))
    if table is not None:
        on = data.name if new_x is None else new_x.name
        st.caption(f"Applied to {markdown_escape(on)}: {len(table):,} rows.")
        st.dataframe(table.head(8), width="stretch")
        chrome.download("Download its predictions (CSV)", table_to_csv(table),
                        file_name=f"predictions_{stem(saved.name)}_on_{stem(on)}.csv",
                        mime="text/csv", key="dl_applied")

chrome.done()
