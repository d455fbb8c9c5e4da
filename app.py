"""DMoE Explorer: distributed learning of mixtures of experts, interactively.

Entry point (`make run` / `streamlit run app.py`).  It declares the pages, sets the session up
(settings from the URL, data, first fit, sidebar) and runs the chosen page; after the page, the
sidebar's summary is drawn again with what the page left (explorer.chrome).
"""

from explorer import chrome

chrome.framed_run(chrome.navigation())
