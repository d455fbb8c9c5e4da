"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It declares the pages, sets the session up
(settings from the URL, data, first fit, sidebar) and runs the chosen page; after the page, the
sidebar's summary is drawn again with what the page left (explorer.chrome).

A session's first request puts a title and what is happening on screen before anything heavy
is imported: on a fresh server the compute core (numba, SciPy, scikit-learn, Plotly) takes
seconds to import, and the built-in example seconds to fit.
"""

import streamlit as st

from explorer.startup import IMPORT_LOCK

st.set_page_config(page_title="DMoE Explorer", page_icon=":material/hub:", layout="wide")
# Drawn in every run, empty but in a session's first: the page's elements then keep their
# places from the first run to the next (Streamlit matches elements by place, and a tab or an
# expander whose place moved would be drawn anew, closed or on its first tab).
first_contact = st.empty()
if "data" not in st.session_state:
    with first_contact.container():
        st.title("DMoE Explorer")
        st.info("Starting: loading the compute core, then fitting the built-in example on 8 machines (a few "
                "seconds on a fresh server)...", icon=":material/hourglass_top:")
        # The browser loads its chart code (about 5 MB of JavaScript) when a page first draws a
        # chart, and compiling it took 1.5-2.5 s after the fit on 2 cores. An empty chart in a
        # hidden box makes it load now, while the server imports the compute core and fits
        # (first chart after a server's start: benchmarks/bench_classroom.py, docs/app.md).
        with st.container(key="chart_code_preload"), IMPORT_LOCK:
            st.html("<style>.st-key-chart_code_preload {display: none;}</style>")
            st.plotly_chart({"data": [{"type": "scatter", "x": [], "y": []}]}, key="chart_code_preload_chart")

with IMPORT_LOCK:  # see explorer/startup.py
    from explorer import chrome  # heavy: imported once the title is on screen

chrome.framed_run(chrome.navigation(), first_contact)
