"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It declares the pages (the sidebar draws its
own links, explorer.chrome) and runs the chosen one; every page sets the session up itself, so a
deep link works as a session's first request.  After the page, the sidebar's summary is drawn
again with what the page left.
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

nav = st.navigation([st.Page(script, title=title, icon=icon, default=script == chrome.DEFAULT_PAGE)
                     for script, title, icon in chrome.PAGES], position="hidden")
st.session_state["_page_path"] = nav.url_path
try:
    nav.run()
finally:
    chrome.refresh_sidebar(page_path=nav.url_path)
