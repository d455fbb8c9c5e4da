"""What every page shares: the session set up, the sidebar (pages, data and fit in use, share box).

Every page starts with :func:`page`, so that any page works as the first request of a session
(a deep link after a server restart runs the page file alone, before ``app.py`` has declared the
navigation).  The sidebar's summary is drawn into a placeholder and drawn again after the page
ran (:func:`refresh_sidebar`, called by ``app.py``), so it shows the data and fit the page left,
not those it found.
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from . import io as eio
from . import lessons, runs
from . import settings as cfg

# (script, title, icon): the app's pages in menu order.  The navigation of app.py and the
# sidebar's links both read this list.
PAGES = [
    ("pages/lessons.py", "Lessons", ":material/co_present:"),
    ("pages/data.py", "Data", ":material/scatter_plot:"),
    ("pages/fit.py", "Distributed fit", ":material/hub:"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:"),
    ("pages/experiments.py", "Experiments", ":material/science:"),
    ("pages/learn.py", "Learn", ":material/school:"),
]
DEFAULT_PAGE = "pages/fit.py"


def _leave_folder_mode():
    """A deep link as the very first request of a fresh server: Streamlit runs the page file
    alone (its pages/ folder convention), because app.py has not yet declared the navigation.
    This run draws the page as it is (the folder's raw file list is hidden by the config,
    client.showSidebarNavigation, and the page draws its own links); the next runs go through
    app.py, as st.navigation itself would switch them (a rerun here would drop the click that
    started it)."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        return True
    return False


def page(title: str):
    """Set the session up (URL settings, data, first fit), draw the sidebar; return the data."""
    st.set_page_config(page_title=f"{title} · DMoE Explorer", page_icon=":material/hub:", layout="wide")
    alone = _leave_folder_mode()  # no app.py around this run: the sidebar is drawn whole here
    ss = st.session_state
    ignored = cfg.init_settings(st.query_params.to_dict())
    if ignored:
        st.warning("Ignored URL parameter(s): " + "; ".join(ignored) + ". The defaults are used instead.")
    if "data" not in ss:
        with st.spinner("Simulating the built-in example and fitting it on 8 machines..."):
            runs.ensure_data_and_fit()
    if ss.get("startup_error"):
        st.error(ss.pop("startup_error"))
    with st.sidebar:
        st.markdown("### DMoE Explorer")
        st.caption("Distributed learning of mixtures of experts (Chamroukhi & Pham, arXiv 2312.09877).")
        try:
            for script, name, icon in PAGES:
                st.page_link(script, label=name, icon=icon)
        except StreamlitPageNotFoundError:
            pass  # a page script run as an app of its own (tests): there are no other pages to link
        ss["_sidebar_box"] = st.empty()
    ss["_share_drawn"] = False
    if alone:  # the default page (Distributed fit) has the app's own address, as under app.py
        here = (getattr(st.context, "url", None) or "").split("?")[0].rsplit("/", 1)[-1]
        ss["_page_path"] = "" if here == DEFAULT_PAGE.removeprefix("pages/").removesuffix(".py") else here
    refresh_sidebar(final=alone, page_path=ss.get("_page_path", ""))
    st.title(title)
    lessons.banner()
    return ss["data"]


def stop():
    """End the page here (st.stop), with the sidebar drawn whole first: nothing after st.stop is
    drawn, app.py's redraw included."""
    refresh_sidebar(page_path=st.session_state.get("_page_path", ""))
    st.stop()


def refresh_sidebar(final=True, page_path=""):
    """(Re)draw the sidebar's summary: the data and fit in use now; ``final`` (after the page
    ran) adds the share box and mirrors the settings in the address bar."""
    ss = st.session_state
    box = ss.get("_sidebar_box")
    data = ss.get("data")
    if box is None or data is None or ss.get("_share_drawn"):
        return  # nothing to draw, or drawn whole already (a page run without app.py)
    with box.container():
        st.markdown(f"**Data**: {eio.markdown_escape(data.name)} · n = {data.n:,} · d = {data.d}")
        fit = ss.get("fit")
        if fit is not None:
            s = fit.settings
            state = "current" if fit.matches(data, cfg.settings()) else (
                "of other data" if fit.data_key != data.key else "settings changed since")
            st.markdown(f"**Fit** ({state}): K = {s['K']}, M = {s['M']}, S = {len(fit.dm.support_indices_):,}, "
                        f"{s['backend']}")
        if not final:
            return
        ss["_share_drawn"] = True
        with st.expander("Share"):
            if data.source == "csv":
                st.caption("Uploaded data cannot travel in a link: this link reopens the app with the settings "
                           "but the built-in data. To share everything, download a session file (data + "
                           "settings) and load it on the Data page.")
                # Encoded on the click only (a callable): writing 200 000 rows as text took 0.9 s,
                # which every rerun of every page paid while an upload was the data.
                values = cfg.settings()
                st.download_button("Download the session file", lambda: eio.session_to_json(data, values),
                                   file_name="dmoe_session.json", mime="application/json", key="dl_session")
            else:
                st.caption("This link reopens the app on this page with the current data and settings.")
            st.code(cfg.share_url(page_path), language=None, wrap_lines=True)
    cfg.sync_query_params()
