"""Compare: the reduction against the global EM, the naive aggregators and a single machine."""

import streamlit as st

from explorer import chrome, evidence, explain, figures, lessons, runs, settings, tables
from explorer.data import heldout
from moecore.shard_check import check_shards

data = chrome.page("Compare")
s = settings.settings()
st.caption(
    "The reduction, the global EM on all the data, the weighted average and the coordinate-wise median of the "
    "aligned local parameters, and machine 1 alone, all evaluated on held-out data "
    + ("(a fresh sample from the same model)." if data.sim else "(a random 20 % of your rows, not used to fit).")
)
st.markdown(f"Settings from the Distributed fit page: **K = {s['K']}, M = {s['M']}**, backend {s['backend']}, "
            f"seed {s['fit_seed']}.")
chrome.data_warnings(data)
# The Fit page's small-shard line, for the rows the comparison fits: on mcycle with M = 8 it showed an RPE of
# 141 % against 25 % with only the generic advice below it.
n_train = len(heldout(data)[3])
line = explain.small_shards_line(check_shards(n_train, data.d, s["K"], s["M"], s["support_size"]))
if line:
    st.warning(line)
row = st.container(horizontal=True, vertical_alignment="center")  # the button keeps its words in a narrow window
run = row.button("Run the comparison", type="primary", key="btn_compare")
settings.widget("cmp_unaligned", where=row)
key = (data.key, tuple(sorted(s.items())))
have = st.session_state.get("compare")
# A first visit fills the page by itself unless the comparison is heavy: then it waits for the button
# (a red "The comparison failed ... press Run on the Distributed fit page" read as an error and sent the
# user to the wrong page).
waiting = "" if run or have is not None else runs.automatic_compare_size(data, n_train)
with st.container():  # a stable layout (explorer.chrome): the progress bar comes and goes in here
    if waiting:
        st.info(f"{waiting}: press **Run the comparison** to start it.")
    elif run or have is None:
        def progress(stage, done, total):
            if stage == "local":
                bar.progress(0.7 * done / total, text=f"local fits done: {done} / {total}")
            else:
                bar.progress(0.75, text=f"MM reduction: iteration {done}; then the global EM and the baselines")

        # A first visit fills the page by itself, in this process (no worker processes, no cluster), and
        # evaluates the Fit page's models when they are of this data with these settings.
        with chrome.running("comparison") as bar:
            out = runs.attempt("The comparison", runs.run_compare, data, progress=progress, automatic=not run,
                               by_link=not run, fit=st.session_state.get("fit"),
                               after=runs.KEPT if have is not None else "")
        if out is not None:
            cmp, test, reused = out
            st.session_state["compare"] = dict(key=key, cmp=cmp, test=test, name=data.name, x_names=data.x_names,
                                               truth=data.truth, reused=reused)

res = st.session_state.get("compare")
if res is None:
    chrome.stop()
if res["key"] != key:
    st.warning("These results are for other data or settings: press Run the comparison to update them.")
elif res.get("reused"):
    st.caption("The reduction and the global EM are the models of the Distributed fit page (not refitted); the "
               "aggregators use its local fits.")
elif data.sim:
    st.caption("The comparison fitted the reduction and the global EM itself, with the settings above: the "
               "Distributed fit page has no finished fit of them.")
else:
    st.caption("The comparison fitted the reduction and the global EM itself, with the settings above, on the 80 % of "
               "your rows it does not hold out (the Distributed fit page fits all of them).")
cmp = res["cmp"]
Xt, yt, _ = res["test"]
table = cmp.table()
shown = table[[c for c in evidence.METRIC_LABELS if c in table]].rename(columns=evidence.METRIC_LABELS)
st.subheader("Metrics on held-out data")
m = chrome.cards(4, "compare_cards")
m[0].metric("held-out RPE, reduction", explain.rpe_text(table.loc["reduction", "rpe"]))
m[1].metric("held-out RPE, global EM", explain.rpe_text(table.loc["global", "rpe"]))
m[2].metric("ARI, reduction", f"{table.loc['reduction', 'ari']:.4f}" if "ari" in table else "-")
m[3].metric("held-out points", f"{len(yt):,}")
line = explain.accuracy_warning(table.loc["reduction", "rpe"], table.loc["global", "rpe"], "held-out")
if line:
    st.warning(line)
# Tables (HTML) rather than data grids: a lesson's highlighted cells are then part of the page's text.
st.table(evidence.highlight(shown, lessons.cells("metrics"), evidence.metric_cell))
err = tables.block_errors(table)
if err is not None:
    st.subheader("Parameter error, block by block (MSE after aligning the experts)")
    st.table(evidence.highlight(err, lessons.cells("blocks"), evidence.block_cell))
    dm = cmp.distributed
    if st.toggle("Plot the block errors (log scale)", key="cmp_plot_blocks"):
        chrome.chart(figures.param_error_figure(table, n_machines=dm.n_machines,
                                                support_size=len(dm.support_indices_)), "cmp_blocks")
    # Said as a tendency, with the exceptions a real data set shows (the flights: variances far off, the
    # median's gates closest), and the scale of the numbers (the data's own units: not comparable across sets).
    st.caption("Predictions can match the global EM while the parameters do not. Often the gates are the hardest "
               "block: a reduced gate is fitted on the small supporting sample to gate masses averaged over "
               "machines, and refinement rounds (Distributed fit page) bring it closer to the global EM's; read "
               "the table for which block is off here. A sharp gate's coefficients are barely determined (any steep "
               "slope makes the same step), so their MSE can be huge between fits that route every point alike: "
               "the gate probabilities column judges the gates by what they do, the MSE of pi_k(x) over held-out "
               "x. The other MSEs are in the data's own units (coefficients of raw inputs), so compare the rows, "
               "not the numbers across data sets."
               + ("" if res["truth"] is not None else " These data have no true model: every column is against "
                  "the global EM."))
st.caption("RPE = sum (y - yhat)^2 / sum y^2 (the cards above give it in %, the table as a fraction). "
           + ("Parameter MSE and transport divergence are against the true model; ARI and clustering error against "
              "the true expert labels. " if res["truth"] is not None else "")
           + "Time: for the reduction and the aggregators the paper's learning time (max local fit + aggregation), "
           "for the global EM its fit time.")
st.subheader("Fitted curves side by side")
feature = 0
chrome.chart(figures.compare_figure(cmp.params, Xt, yt, truth=res["truth"], x_names=res["x_names"]), "cmp_curves")

chrome.done()
