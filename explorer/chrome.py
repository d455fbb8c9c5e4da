"""What every page shares: the session set up, the sidebar (pages, data and fit in use, share box).

``app.py`` declares the pages (:func:`navigation`) and sets the session up (:func:`frame`) before
it runs the chosen page; the page then draws its own content (:func:`page`).  The sidebar's
summary is drawn into a placeholder and drawn again after the page ran (:func:`refresh_sidebar`,
called by ``app.py``), so it shows the data and fit the page left, not those it found.

A deep link as the very first request of a fresh server does not go through ``app.py``: with a
``pages/`` folder beside the entry script, Streamlit 1.67 starts in its folder mode
(streamlit/runtime/pages_manager.py, ``PagesManager.__init__`` sets ``uses_pages_directory``
when ``pages/`` exists) and its script runner then runs ``_mpa_v1``, which runs the requested
page file alone (streamlit/runtime/scriptrunner/script_runner.py, ``if
PagesManager.uses_pages_directory: _mpa_v1(...)``).  The first ``st.navigation`` call ends that
mode for the process (streamlit/commands/navigation.py, ``PagesManager.uses_pages_directory =
False``).  So a page run alone frames the session itself (:func:`page`) and, at its end
(:func:`done`), calls the documented ``st.navigation`` with the app's pages: the next request
runs ``app.py``.  Not earlier: ``st.navigation`` sets the active page hash to the entry
script's (``ScriptRunContext.set_mpa_v2_page``), so the widgets drawn after it would get other
ids than the same widgets under ``app.py``, and the session's next click would be lost.
(``streamlit.testing`` resets that mode before every run, so under AppTest every run after the
first is a run alone: the tests exercise this path all the time.)

A stable layout: what one run draws and the next does not (a progress bar, even emptied; a spinner;
a note) goes inside a ``st.container()`` that every run draws.  Streamlit places an element by its
position among its siblings; one that comes and goes at a page's top level moves everything below
it, and the browser then draws the expanders below anew, closed.  A model uploaded in the Fit page's
"Apply a saved model" right after a fit vanished that way: its run closed the expander around it
(tests/test_stable_layout.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from . import figures, lessons, runs, settings
from .io import InputError, markdown_escape, params_from_text, params_to_text, session_to_json, stem

ROOT = Path(__file__).resolve().parents[1]
# (script, title, icon): the app's pages in menu order.  The navigation and the sidebar's links
# both read this list.
PAGES = [
    ("pages/lessons.py", "Lessons", ":material/co_present:"),
    ("pages/data.py", "Data", ":material/scatter_plot:"),
    ("pages/fit.py", "Distributed fit", ":material/hub:"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:"),
    ("pages/experiments.py", "Experiments", ":material/science:"),
    ("pages/learn.py", "Learn", ":material/school:"),
]
DEFAULT_PAGE = "pages/fit.py"
# Set by app.py for the length of a run it frames; a page run without it is a run alone.
_FRAMED = "_framed_run"


def _app_pages() -> list:
    """The pages as st.Page objects, by absolute path: the same pages whichever script is the
    entry (app.py, or a page file run alone)."""
    return [st.Page(ROOT / script, title=title, icon=icon, default=script == DEFAULT_PAGE)
            for script, title, icon in PAGES]


# A checkbox's label wraps onto a second line in a narrow column instead of ending in "…": at 1024 px
# "Show the M x K local experts" and "Show the data" both read "Show the…".
# And a table's cells keep their numbers whole, the table scrolling sideways where the page is too narrow: with the
# projector's larger text Compare's block table broke "1.04e-05" over two lines and cut its last column off
# (the audit of 2026-12-06); its scrollbar drawn, so that a cut table shows it goes on.
WRAP_LABELS_CSS = ("<style>[data-testid='stCheckbox'] [data-testid='stMarkdownContainer'], "
                   "[data-testid='stCheckbox'] [data-testid='stMarkdownContainer'] * "
                   "{white-space: normal; text-overflow: clip; overflow-wrap: anywhere;} "
                   # A classic scrollbar, always drawn: Chromium's overlay one showed nothing, and a table cut
                   # at the page's edge read "-0" for "-0.3166" with no sign that it scrolled (2026-12-06).
                   "[data-testid='stTable'] {overflow-x: auto;} "
                   "[data-testid='stTable'], [data-testid='stTable'] > div {scrollbar-width: thin; "
                   "scrollbar-color: #8a8f98 #eceef2;} "
                   # And a shadow at an edge with more columns beyond it (where scrollbars are hidden, as on
                   # touch screens): the white covers fixed to the content hide it once scrolled to that edge.
                   "[data-testid='stTable'] > div {background: "
                   "linear-gradient(to right, #fff 30%, rgba(255,255,255,0)) left / 40px 100% no-repeat local, "
                   "linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) right / 40px 100% no-repeat local, "
                   "radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.3), transparent) left / 16px 100% no-repeat, "
                   "radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.3), transparent) right / 16px 100% "
                   "no-repeat;} "
                   "[data-testid='stTable'] table {width: auto; min-width: 100%;} "
                   "[data-testid='stTable'] tbody td, [data-testid='stTable'] tbody td * "
                   "{white-space: nowrap !important; overflow-wrap: normal !important;}</style>")


def navigation():
    """st.navigation over the app's pages; the page to run (``.run()``), its ``url_path`` the
    address ("" for the default page).  Hidden: the sidebar draws its own links."""
    return st.navigation(_app_pages(), position="hidden")


def frame(page_path: str):
    """Set the session up (URL settings, data, first fit) and draw the sidebar, once per run,
    before the page; the sidebar's summary is drawn whole after the page."""
    st.set_page_config(page_icon=":material/hub:", layout="wide")  # the page adds its title
    st.html(WRAP_LABELS_CSS)  # style only: out of the page's flow
    ss = st.session_state
    ss["_page_path"] = page_path
    settings.new_run()
    first = not ss.get("_settings_ready")
    query = st.query_params.to_dict()
    # to_dict keeps the last of a repeated key: say which one a hand-edited link got.
    repeated = [f"{k} given {len(v)} times ({', '.join(v)}): the last, {v[-1]}, is used"
                for k in st.query_params.keys() if len(v := st.query_params.get_all(k)) > 1] if first else []
    if repeated:
        st.warning("Repeated URL parameter(s): " + "; ".join(repeated) + ".")
    ignored = settings.init_settings(query)
    if ignored:
        st.warning("Ignored URL parameter(s): " + "; ".join(ignored) + ". The defaults are used instead.")
    if first and settings.TRUTH_QUERY in query:
        _typed_truth_from_link(query[settings.TRUTH_QUERY])
    upload = settings.lost_upload(query) if first else None
    if upload:
        st.info(f"This address was made while the uploaded file **{markdown_escape(upload)}** was the data. A reload "
                "or a link cannot bring a file back (the browser sends it once), so the built-in data are shown with "
                "the other settings: upload the file again on the Data page, or load a session file (Share, in the "
                "sidebar, saves one) to restore both.")
    if first and settings.LESSON_QUERY in query:
        lesson = lessons.from_link(query)
        if lesson is not None and _url_path(lesson.page) != page_path:
            st.switch_page(lesson.page)
    if "data" not in ss:
        with st.spinner("Simulating the built-in example and fitting it on 8 machines..."):
            runs.ensure_data_and_fit()
    if ss.get("startup_ignored"):
        st.warning(f"Ignored URL parameter(s): {ss.pop('startup_ignored')}.")
    if ss.get("startup_error"):
        st.error(ss.pop("startup_error"))
    if ss.get("startup_notice"):
        st.info(ss.pop("startup_notice"))
    with st.sidebar:
        st.markdown("### DMoE Explorer")
        st.caption("Distributed learning of mixtures of experts (Chamroukhi & Pham, arXiv 2312.09877).")
        ss["_sidebar_links"] = st.empty()
        _page_links()
        ss["_sidebar_box"] = st.empty()
    ss["_share_drawn"] = False
    refresh_sidebar(final=False, page_path=page_path)


def _typed_truth_from_link(text):
    """A link's true parameters (:data:`~explorer.settings.TRUTH_QUERY`), typed or uploaded on the Data page by
    whoever made it: the session's custom truth, and the Data page's box ticked and filled with them, so that the
    data are rebuilt from them and not from the knobs; a warning naming what is wrong otherwise."""
    ss = st.session_state
    if settings.settings()["source"] != "custom":
        st.warning("Ignored URL parameter truth: typed true parameters go with custom data (src=custom).")
        return
    try:
        truth = params_from_text(str(text), "the link's truth parameter")
    except InputError as exc:
        st.warning(f"Ignored URL parameter truth: {exc} The custom knobs are used instead.")
        return
    ss["custom_truth"] = truth
    ss["custom_params_text"] = params_to_text(truth, digits=None)
    ss["use_custom_text"] = True


def framed_run(nav, first_contact=None):
    """Run the chosen page inside the frame (app.py): set-up before, the sidebar redrawn after.
    ``first_contact``: app.py's placeholder of a session's first title, emptied once the session
    is set up, before the page draws its own."""
    ss = st.session_state
    frame(nav.url_path)
    if first_contact is not None:
        first_contact.empty()
    ss[_FRAMED] = True
    try:
        nav.run()
    finally:
        ss.pop(_FRAMED, None)
        refresh_sidebar(page_path=nav.url_path)


def _url_path(script: str) -> str:
    """The URL path of the page ``script`` (one of PAGES: "pages/fit.py"), "" for the default page."""
    return "" if script == DEFAULT_PAGE else Path(script).stem


def _address_here() -> str:
    """The URL path of the page running alone ("" for the default page, as under app.py)."""
    here = (getattr(st.context, "url", None) or "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return "" if here == Path(DEFAULT_PAGE).stem else here


def page(title: str):
    """A page's start: its title (browser tab and heading) and the lesson banner; the session
    framed first when the page runs alone (see the module's docstring).  Returns the data."""
    if not st.session_state.get(_FRAMED):
        st.empty()  # the place of app.py's first-contact title: the elements below keep theirs
        frame(_address_here())
    st.set_page_config(page_title=f"{title} · DMoE Explorer")
    st.title(title)
    lessons.banner()
    return st.session_state["data"]


def done():
    """A page's end.  Alone (no app.py around this run): the sidebar drawn whole, as app.py
    would after the page, and the app's navigation declared, which ends Streamlit's folder mode."""
    if not st.session_state.get(_FRAMED):
        refresh_sidebar(page_path=st.session_state.get("_page_path", ""))
        navigation()


def stop():
    """End the page here (st.stop), with the sidebar drawn whole first: nothing after st.stop is
    drawn, app.py's redraw included."""
    refresh_sidebar(page_path=st.session_state.get("_page_path", ""))
    done()
    st.stop()


@contextmanager
def running(what: str):
    """A run's progress bar (yielded, for its callback) and, under it, that leaving the page stops the run;
    both go once the run ends.  Draw it inside a container every run draws (a stable layout, above)."""
    bar = st.progress(0.0, text="starting")
    note = st.caption(f"Stay on this page until it ends: leaving it, or changing a setting, stops the {what}.")
    yield bar
    bar.empty()
    note.empty()


def download(label: str, data, **kwargs):
    """``st.download_button`` that leaves the page as it is.

    A download changes nothing, so the click does not rerun the page (``on_click="ignore"``).  With
    the default rerun, a file written on the click (``data`` a callable) was sometimes never sent:
    Streamlit 1.67 empties the session's unsent messages when a run starts
    (streamlit/runtime/app_session.py, ``_clear_queue``), and the click's rerun could start after
    the file's reply was queued and before it was sent; the button then spun until its timeout.
    Measured on the Data page under CPU load: 7 clicks of 70 brought no file before, 0 of 100 after.
    """
    return st.download_button(label, data, on_click="ignore", **kwargs)


def cards(n: int, key: str) -> list:
    """``n`` containers for metric cards, each as wide as its words, spread over the row where they fit and
    on further rows where they do not: in ``st.columns(n)`` each card kept 1/n of the width, and a 900 px
    window cut the Fit page's six values to "0…" (a card of stretched width was cut the same way).  Card i
    is keyed ``{key}_{i}`` (its CSS class ``st-key-{key}_{i}``)."""
    row = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")
    return [row.container(width="content", key=f"{key}_{i}") for i in range(n)]


# A chart narrower than this is no longer read: at 1024 px with the sidebar open, two charts side by side
# left Plotly a plotting area of 64 px under its legend.  In rem, so the projector's larger text (a larger
# root font) stacks the pairs sooner.
PAIR_MIN_REM = 27
# A settings widget narrower than this cut its value ("threac" for threading at 1024 px, larger text).
WIDGET_MIN_REM = 12


def pair(key: str, weights=(1, 1)) -> tuple:
    """Two charts' containers: side by side where each gets ``PAIR_MIN_REM`` of width, one above the other
    where not (``st.columns`` kept them side by side down to a 640 px window, however narrow each became).
    ``weights``: their shares of the width a row has beyond that.  In rem, so the projector's larger text
    (a larger root font) stacks them sooner.  Container i is keyed ``pair_{key}_{i}``."""
    # Each starts from PAIR_MIN_REM and the row wraps when two do not fit; the weights share what is left.
    # The row's items are the boxes Streamlit wraps each container in, so the rule is on the key's parent.
    css = " ".join(f"div:has(> .st-key-pair_{key}_{i}) {{flex: {w} 1 {PAIR_MIN_REM}rem;}}"
                   for i, w in enumerate(weights))
    st.html(f"<style>{css}</style>")  # style only: Streamlit puts it out of the page's flow
    row = st.container(horizontal=True, gap="medium")
    return tuple(row.container(width="stretch", key=f"pair_{key}_{i}") for i in range(len(weights)))


def chart(fig, key: str, where=None):
    """Draw the Plotly figure ``fig`` at its container's width (``where``: a container, the page's flow by
    default), keyed ``key``; under the projector's larger text with its text as much larger.

    Streamlit sizes a chart's text from the root font when it draws the chart and keeps a drawn chart while
    its figure is unchanged: the charts on screen when the toggle changed kept their 12 px labels beside
    20 px text (the audit of 2026-12-06), and those drawn in the same run sometimes did too.  So the sizes
    are written into the figure, which changes with the toggle and is drawn anew."""
    if st.session_state.get(lessons.BIG_TEXT_KEY, False):
        fig = figures.scale_text(fig, lessons.BIG_TEXT_SCALE)
    (where or st).plotly_chart(fig, width="stretch", key=key)


def grid(key: str, n: int) -> tuple:
    """``n`` containers for a row of settings widgets: ``n`` equal columns where each gets
    ``WIDGET_MIN_REM``, else as many as fit, on further rows.  A CSS grid rather than :func:`pair`'s row, so
    rows stay aligned when a container is left empty (Streamlit draws no empty container)."""
    track = f"max({WIDGET_MIN_REM}rem, calc((100% - {n - 1}rem) / {n}))"
    st.html(f"<style>.st-key-grid_{key} {{display: grid; gap: 1rem; "
            f"grid-template-columns: repeat(auto-fill, minmax(min({track}, 100%), 1fr));}}</style>")
    row = st.container(key=f"grid_{key}")
    return tuple(row.container(width="stretch") for _ in range(n))


def data_warnings(data):
    """Before a page fits: the data's outlying rows and tied inputs, one line each (the Data page has the
    details and leaves the rows out)."""
    from . import explain
    from .data import outlying_rows, tied_inputs

    line, _ = explain.outliers_warning(outlying_rows(data))
    if line:
        st.warning(line + explain.OUTLIERS_ON_DATA_PAGE)
    line = explain.tied_inputs_warning(tied_inputs(data), data.x_names)
    if line:
        st.warning(line)


def _page_links():
    """The sidebar's links to the pages, with the settings in their addresses: a link without them made
    two history entries per page visited (the page's address, then the settings synced onto it), and the
    browser's Back seemed to do nothing every other press (the audit of 2026-12-06).  Drawn again after
    the page, whose widgets may have changed the settings."""
    query = settings.settings_to_query()
    with st.session_state["_sidebar_links"].container():
        for link, (_, name, icon) in zip(_app_pages(), PAGES, strict=True):
            st.page_link(link, label=name, icon=icon, query_params=query)


def refresh_sidebar(final=True, page_path=""):
    """(Re)draw the sidebar's summary: the data and fit in use now; ``final`` (after the page
    ran) adds the share box and mirrors the settings in the address bar."""
    ss = st.session_state
    box = ss.get("_sidebar_box")
    data = ss.get("data")
    if box is None or data is None or ss.get("_share_drawn"):
        return  # nothing to draw, or drawn whole already (a page run without app.py)
    with box.container():
        st.markdown(f"**Data**: {markdown_escape(data.name)} · n = {data.n:,} · d = {data.d}")
        fit = ss.get("fit")
        if fit is not None:
            s = fit.settings
            state = "current" if fit.matches(data, settings.settings()) else (
                "of other data" if fit.data_key != data.key else "settings changed since")
            st.markdown(f"**Fit** ({state}): K = {s['K']}, M = {s['M']}, S = {len(fit.dm.support_indices_):,}, "
                        f"{s['backend']}")
        if not final:
            return
        ss["_share_drawn"] = True
        _page_links()
        with st.expander("Share"):
            if data.source == "csv":
                st.caption("Uploaded data cannot travel in a link: this link reopens the app with the settings "
                           "but the built-in data. To share everything, download a session file (data + "
                           "settings) and load it on the Data page.")
                # Encoded on the click only (a callable): writing 200 000 rows as text takes 0.9 s,
                # which every rerun of every page would pay while an upload is the data.
                values = settings.settings()
                download("Download the session file", lambda: session_to_json(data, values),
                         file_name=f"dmoe_session_{stem(data.name)}.json", mime="application/json",
                         key="dl_session")
                st.code(settings.share_url(page_path), language=None, wrap_lines=True)
            elif ss.get("lesson") in lessons.BY_KEY:
                _share_lesson(lessons.BY_KEY[ss["lesson"]], page_path)
            else:
                st.caption("This link reopens the app on this page with the current data and settings.")
                st.code(settings.share_url(page_path), language=None, wrap_lines=True)
    settings.sync_query_params()


def lesson_url(lesson) -> str:
    """The address that runs ``lesson`` (an explorer.lessons.Lesson) and opens its page."""
    return settings.share_url(_url_path(lesson.page), {settings.LESSON_QUERY: lesson.key})


def _share_lesson(lesson, page_path):
    """The share box during a lesson: the lesson's own link, and the settings' link once they changed."""
    # A link of the lesson's settings alone once opened on a small-shard warning and no fit (its n = 10^6 is
    # beyond a link's budget; the audit of 2026-12-06): the lesson's link runs the lesson itself.
    st.caption(f"This link opens the lesson **{markdown_escape(lesson.title)}** for whoever follows it: it runs the "
               "lesson's data and fit (a few seconds) and shows its narration.")
    st.code(lesson_url(lesson), language=None, wrap_lines=True)
    if settings.lesson_on_screen() is None:
        st.caption("Your settings have changed since the lesson set them; this link reopens them, without the "
                   "lesson's narration:")
        st.code(settings.share_url(page_path), language=None, wrap_lines=True)
