"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It restores the settings (URL query
parameters on a session's first run), makes sure the session has data and a fitted
distributed model before any page draws, then runs the chosen page.
"""

import streamlit as st

from explorer import state

st.set_page_config(page_title="DMoE Explorer", page_icon=":material/hub:", layout="wide")

ignored = state.init_settings(st.query_params.to_dict())
state.keep_settings()

pages = [
    st.Page("pages/data.py", title="Data", icon=":material/scatter_plot:"),
    st.Page("pages/fit.py", title="Distributed fit", icon=":material/hub:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
]
nav = st.navigation(pages)

with st.spinner("Simulating the built-in example and fitting it on 8 machines..."):
    state.ensure_data_and_fit()

with st.sidebar:
    st.markdown("### DMoE Explorer")
    st.caption("Distributed learning of mixtures of experts (Chamroukhi & Pham, arXiv 2312.09877).")
    data = st.session_state["data"]
    st.markdown(f"**Data**: {data.name} · n = {data.n:,} · d = {data.d}")
    fit = st.session_state.get("fit")
    if fit is not None:
        stale = "" if fit.data_key == data.key else " (previous data)"
        st.markdown(f"**Fit**: K = {fit.settings['K']}, M = {fit.settings['M']}{stale}")
    with st.expander("Share these settings"):
        st.caption("This link reopens the app with the current data and fit settings.")
        st.code(state.share_url(), language=None, wrap_lines=True)

if ignored:
    st.warning("Ignored URL parameter(s): " + "; ".join(ignored) + ". The defaults are used instead.")
if st.session_state.get("startup_error"):
    st.error(st.session_state.pop("startup_error"))

nav.run()
state.sync_query_params()
