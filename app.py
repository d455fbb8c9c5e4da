"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It declares the pages, sets the session up
(settings from the URL, data, first fit, sidebar) and runs the chosen page; after the page, the
sidebar's summary is drawn again with what the page left (explorer.chrome).
"""

import streamlit as st

if "data" not in st.session_state:
    # A session's first request: on a fresh server the compute core (numba kernels, SciPy,
    # scikit-learn) takes seconds to import and the example seconds to fit; say so at once
    # rather than leave the page blank.
    st.set_page_config(page_title="DMoE Explorer", page_icon=":material/hub:", layout="wide")
    _first = st.empty()
    with _first.container():
        st.title("DMoE Explorer")
        st.info("Starting: loading the compute core, then fitting the built-in example on 8 machines "
                "(a few seconds on a fresh server)...", icon=":material/hourglass_top:")
else:
    _first = None

from explorer import chrome  # heavy: imported after the first message is on screen

if _first is not None:
    _first.empty()

chrome.framed_run(chrome.navigation())
