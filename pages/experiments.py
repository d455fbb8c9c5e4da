"""Experiments: sweeps with repeats over M, the support size and n, as in the paper's tables."""

import pandas as pd
import streamlit as st

from explorer import chrome
from explorer import figures as fg
from explorer import io as eio
from explorer import settings as cfg
from moecore import DistributedMoE
from moecore.experiments import alpha_sweep, sweep
from moecore.simulation import DESIGNS

chrome.page("Experiments")
st.caption("Accuracy and time of the reduction as functions of the number of machines M, the supporting sample "
           "size, the sample size n (consistency) or the refinement rounds (accuracy against communication), with "
           "the global EM as the reference. Each point is "
           "the mean ± sd over independent repeats (fresh data and seeds), evaluated on 20 000 held-out samples.")

DEFAULT_VALUES = {"n_machines": "2, 4, 8, 16", "support_fraction": "0.1, 0.25, 0.5, 1, 2",
                  "n": "5000, 10000, 20000, 50000", "refine_rounds": "0, 1, 2, 3, 5",
                  "alpha": "0, 0.25, 0.5, 0.75, 1"}
SPLIT_LABELS = {"region": "by region of x1", "kmeans": "by k-means clusters of x", "label": "by true expert (label skew)"}

c1, c2, c3 = st.columns(3)
design = c1.selectbox("Design", list(DESIGNS), key="exp_design")
parameter = c2.radio("Vary", list(DEFAULT_VALUES), key="exp_parameter", horizontal=True,
                     format_func=fg.PARAM_LABELS.get)
values_text = c3.text_input("Values (comma-separated)", value=DEFAULT_VALUES[parameter], key=f"exp_values_{parameter}")
c1, c2, c3, c4 = st.columns(4)
n = c1.number_input("n (when not varied)", 500, 1_000_000, value=20_000, step=5000, key="exp_n")
M = c2.number_input("M (when not varied)", 1, 256, value=8, key="exp_M")
repeats = c3.number_input("Repeats", 1, 20, value=2, key="exp_repeats")
include_global = c4.checkbox("Global EM reference", value=True, key="exp_global")
variance_update = c4.radio("Reduced variances", ["exact", "authors"], key="exp_var", horizontal=True)
if parameter == "alpha":
    split = st.selectbox("Split (non-IID machines: constant vs covariate machine weights)", list(SPLIT_LABELS),
                         format_func=SPLIT_LABELS.get, key="exp_split")


b1, b2, _ = st.columns([1, 1, 4])
start = b1.button("Run the sweep", type="primary", key="btn_sweep")
cancel = b2.button("Cancel", key="btn_cancel")
ss = st.session_state
if cancel and ss.get("sweep_running"):
    ss["sweep_running"] = False
    ss["sweep_status"] = f"Cancelled after {len(ss.get('sweep_rows', []))} runs; the partial results are below."
elif ss.get("sweep_running") and not start:
    # The previous run was interrupted by another widget: say so instead of pretending it finished.
    ss["sweep_running"] = False
    ss["sweep_status"] = f"Interrupted after {len(ss.get('sweep_rows', []))} runs; the partial results are below."

if start:
    try:
        vals = eio.parse_sweep_values(values_text, parameter, int(M), cfg.MAX_APP_ROUNDS)
        K = DESIGNS[design].n_experts
        n_min = min(vals) if parameter == "n" else n
        M_max = max(vals) if parameter == "n_machines" else M
        DistributedMoE(K, M_max).check_parameters(int(n_min), DESIGNS[design].n_features)
    except ValueError as exc:
        st.error(f"Cannot run this sweep: {exc}")
    else:
        per = 3 if parameter == "alpha" else 2
        total = len(vals) * repeats * (per if include_global else per - 1)
        ss["sweep_rows"] = []
        ss["sweep_meta"] = dict(design=design, parameter=parameter)
        ss["sweep_running"] = True
        bar = st.progress(0.0, text=f"0 / {total} fits")
        try:
            common = dict(n=int(n), n_machines=int(M), repeats=int(repeats), include_global=include_global,
                          backend="threading", n_jobs=min(2, cfg.MAX_JOBS), variance_update=variance_update,
                          n_test=20000)
            gen = (alpha_sweep(design, split, vals, **common) if parameter == "alpha"
                   else sweep(design, parameter, vals, **common))
            for i, row in enumerate(gen, start=1):
                ss["sweep_rows"].append(row)
                bar.progress(i / total, text=f"{i} / {total} fits: {row['method']} at {parameter} = {row['value']}, "
                                             f"repeat {row['repeat'] + 1}")
            ss["sweep_status"] = f"Finished: {len(ss['sweep_rows'])} fits."
            ss["sweep_running"] = False
        except (TypeError, ValueError, RuntimeError) as exc:
            st.error(f"The sweep stopped: {exc}")
            ss["sweep_status"] = f"Stopped by an error after {len(ss['sweep_rows'])} runs."
            ss["sweep_running"] = False
        # A click on Cancel (or any widget) stops this script mid-loop, leaving sweep_running set:
        # the next run reads that as a cancellation and keeps the rows gathered so far.

rows = ss.get("sweep_rows")
if ss.get("sweep_status"):
    st.info(ss["sweep_status"])
if not rows:
    st.info("Choose a design and the values, then press Run the sweep. Example: vary M over 2, 4, 8, 16 to see "
            "the learning time fall while the RPE stays close to the global EM's.")
    st.stop()
df = pd.DataFrame(rows)
meta = ss.get("sweep_meta", {})
metrics = [m for m in ["rpe", "time", "mse_gates", "mse_experts", "mse_variances", "mse_all", "ari",
                       "clustering_error", "transport_divergence", "loglik", "wall"] if m in df]
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(fg.sweep_figure(df, meta.get("parameter", parameter), "rpe"), width="stretch",
                    key="exp_rpe")
with c2:
    st.plotly_chart(fg.sweep_figure(df, meta.get("parameter", parameter), "time"), width="stretch",
                    key="exp_time")
metric = st.selectbox("Another metric", metrics, index=metrics.index("mse_gates") if "mse_gates" in metrics else 0,
                      format_func=lambda m: fg.METRIC_LABELS.get(m, m), key="exp_metric")
st.plotly_chart(fg.sweep_figure(df, meta.get("parameter", parameter), metric), width="stretch",
                key="exp_other")
summary = df.groupby(["value", "method"])[metrics].mean()
st.subheader(f"Mean over repeats ({meta.get('design', design)})")
st.dataframe(summary.style.format("{:.4g}"), width="stretch")
st.download_button("Download all runs as CSV", df.to_csv(index=False).encode("utf-8"),
                   file_name=f"sweep_{meta.get('design', design)}_{meta.get('parameter', parameter)}.csv",
                   mime="text/csv", key="dl_sweep")
