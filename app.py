"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It declares the pages (the sidebar draws its
own links, explorer.chrome) and runs the chosen one; every page sets the session up itself, so a
deep link works as a session's first request.  After the page, the sidebar's summary is drawn
again with what the page left.
"""

import streamlit as st

from explorer import chrome

nav = st.navigation([st.Page(script, title=title, icon=icon, default=script == chrome.DEFAULT_PAGE)
                     for script, title, icon in chrome.PAGES], position="hidden")
st.session_state["_page_path"] = nav.url_path
try:
    nav.run()
finally:
    chrome.refresh_sidebar(page_path=nav.url_path)
