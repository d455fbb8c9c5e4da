"""The app in a real browser: a Streamlit server on a free port, driven by Playwright in Debian's
chromium.  The app loads with a fitted model, a fit runs from the UI, plots render without error
elements, the CSV upload path works, and two concurrent sessions each get their own results.

Full-page screenshots go to tests/artifacts/ (and to docs/screenshots/ with DMOE_SCREENSHOTS=docs).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SHOTS = ROOT / "docs" / "screenshots"

pytestmark = pytest.mark.browser


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log, root=ROOT):
    """A fresh Streamlit server of ``root``'s app.py (importing ``root``'s moecore and explorer) on
    a free port: (process, url) once it answers."""
    port = _free_port()
    streamlit = Path(sys.executable).with_name("streamlit")
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [str(streamlit), "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": path})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start; see {log.name}")
        time.sleep(0.2)


@contextmanager
def fresh_server_and_browser(log_name):
    """A fresh Streamlit server and a chromium: (url, browser); both stopped afterwards."""
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / log_name, "w") as log:
        proc, url = start_server(log)
        try:
            with sync_api.sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    yield url, b
                finally:
                    b.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server():
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit_server.log", "w")
    proc, url = start_server(log)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), "Debian chromium is needed: apt-get install chromium (make browser)"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser):
    """A page in a context of its own (cookies, session), in the window size every test uses."""
    return browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()


@pytest.fixture()
def page(browser):
    pg = new_page(browser)
    yield pg
    pg.context.close()


# How long a browser step waits for what a script run draws: as long as settle allows. The tests assert no
# speed (benchmarks/ measure it); under two test workers a step took over 30 s once (CI, a CSV upload).
RUN_WAIT = 90_000

# Streamlit writes the state of the session's script run on its root element: "initial" until the
# first run, then "running" / "notRunning" (also "rerunRequested", "stopRequested").
_IDLE = ("() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
         " return app !== null && app.getAttribute('data-test-script-state') === 'notRunning'; }")


def settle(pg, timeout=RUN_WAIT):
    """Wait until the script run is over and the page has drawn its title.

    Call it after a page load, or after the element that an action was expected to bring has appeared:
    between a click and the server starting the rerun the state still reads "notRunning", so right
    after a click this would not wait for the click's run.
    """
    pg.wait_for_selector("h1", timeout=timeout)
    pg.wait_for_function(_IDLE, timeout=timeout)


def upload_in_tab(pg, tab_name, path, timeout=RUN_WAIT):
    """Choose the page's tab ``tab_name`` and drop the file ``path`` on its uploader; return once the
    uploader shows the file's name (the browser has sent it).  What the upload's run draws is the caller's
    to wait for.

    Each step says what did not happen: a click on the tab that did not take (what the upload brings
    would then stay hidden in another tab), or a file the uploader never showed.  A fresh-clone CI run
    under two test workers once timed out waiting for what a CSV upload draws, and could not say which.
    """
    tab = pg.get_by_role("tab", name=tab_name)
    tab.click()
    sync_api.expect(tab, f"the tab {tab_name!r} was clicked but not chosen").to_have_attribute(
        "aria-selected", "true", timeout=timeout)
    uploader = pg.locator('[data-testid="stFileUploader"]').filter(visible=True)
    uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    sync_api.expect(uploader, f"the uploader never showed {Path(path).name}").to_contain_text(
        Path(path).name, timeout=timeout)


def no_errors(pg):
    exceptions = pg.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    assert pg.locator('[data-testid="stAlertContentError"]').count() == 0, \
        pg.locator('[data-testid="stAlertContentError"]').all_inner_texts()


# Charts drawn and visible: the first contact's hidden chart (app.py; it loads the chart code
# early) is not one the user sees.
DRAWN = ("[...document.querySelectorAll('.js-plotly-plot')]"
         ".filter(p => p.querySelector('.main-svg') && p.getClientRects().length > 0).length")


def plots_rendered(pg, at_least):
    """Number of charts Plotly has drawn (an SVG main layer in each), once there are at least this many.

    Counted per chart: each chart holds several .main-svg layers, so counting layers let the wait end
    while charts were still being drawn.
    """
    pg.wait_for_function(f"() => {DRAWN} >= {at_least}", timeout=RUN_WAIT)
    return pg.evaluate(f"() => {DRAWN}")


def metric(pg, label):
    box = pg.locator('[data-testid="stMetric"]', has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


# Resolves after the browser has laid out and painted twice: the frame after a resize is drawn.
_PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def shoot(pg, name):
    """Full-page screenshot: Streamlit scrolls inside its main block, so grow the viewport to it."""
    h = pg.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                    " return m ? m.scrollHeight : 1000; }")
    n_plots = pg.evaluate(f"() => {DRAWN}")
    pg.set_viewport_size({"width": 1500, "height": min(int(h) + 40, 8000)})
    # Plotly redraws its charts for the new width: wait for the layout, then for every chart drawn again.
    pg.wait_for_function(f"() => window.innerHeight === {min(int(h) + 40, 8000)}")
    pg.evaluate(_PAINTED)
    plots_rendered(pg, n_plots)
    pg.evaluate(_PAINTED)
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if os.environ.get("DMOE_SCREENSHOTS") == "docs":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS_SHOTS / f"{name}.png")
    pg.set_viewport_size({"width": 1500, "height": 1000})


def set_number(pg, label, value):
    """Type ``value`` into a number box and commit it.  No wait for the rerun: the widget's value goes
    with every later request (a button's click included), and the caller waits for what it expects."""
    box = pg.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_loads_with_a_fitted_model(server, page):
    page.goto(server + "/")
    settle(page)
    assert page.locator("h1").first.inner_text().strip() == "Distributed fit"
    assert plots_rendered(page, 7) >= 7
    no_errors(page)
    assert metric(page, "machines M / experts K") == "8 / 3"
    shoot(page, "fit")


def fit_from_ui(page, M, K=3):
    """Set M on the fit page, press Run, wait for the "M / K" metric; no error elements."""
    set_number(page, "Machines M", M)
    page.get_by_role("button", name="Run distributed fit").click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                           f".some(e => e.innerText.trim() === '{M} / {K}')", timeout=60_000)
    settle(page)
    no_errors(page)


def test_fit_runs_from_the_ui_and_url_follows(server, page):
    page.goto(server + "/")
    settle(page)
    fit_from_ui(page, 4)
    plots_rendered(page, 7)
    assert "M=4" in page.url  # the settings are in the address bar, ready to share


def test_every_page_renders(server, page):
    page.goto(server + "/")
    settle(page)
    for path, title, n_plots in [("data", "Data", 2), ("compare", "Compare", 1), ("learn", "Learn", 4)]:
        page.get_by_role("link", name=title, exact=True).first.click()
        page.wait_for_function("(t) => { const h = document.querySelector('h1');"
                               " return h && h.innerText.trim().startsWith(t); }", arg=title, timeout=60_000)
        settle(page)
        plots_rendered(page, n_plots)
        no_errors(page)
        if path == "learn":  # step the live MM example twice: the text and plots follow
            for step in (1, 2):
                # One click at a time: a click during the previous click's run would cut that run short.
                page.get_by_role("button", name="Next MM step ▶").click()
                page.wait_for_selector(f"text=Iteration {step} of", timeout=RUN_WAIT)
                settle(page)
            plots_rendered(page, n_plots)
        shoot(page, path)
    page.get_by_role("link", name="Experiments", exact=True).first.click()
    page.wait_for_selector("h1:has-text('Experiments')", timeout=60_000)
    settle(page)
    page.get_by_label("Values (comma-separated)").fill("2, 4, 8")
    page.get_by_label("Values (comma-separated)").press("Enter")
    page.get_by_role("button", name="Run the sweep").click()
    page.wait_for_selector("text=Finished:", timeout=120_000)
    settle(page)
    plots_rendered(page, 3)
    no_errors(page)
    shoot(page, "experiments")


# Elements whose text the browser cut (an ellipsis, or text past the box), in the cards and buttons.
_CUT = """() => [...document.querySelectorAll('[data-testid="stMetric"] *, button *, [data-testid="stCheckbox"] *, '
    + '.katex-display')]
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.innerText.trim()).filter(t => t)"""


_CHART_WIDTHS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(e => e.offsetParent !== null)
    .map(e => Math.round(e.getBoundingClientRect().width))"""


def stable_reading(pg, script, every_ms=400, times=3, most_ms=15_000):
    """``script``'s value once it read the same ``times`` times in a row: the browser lays the page out and
    sizes its fonts after the run is over (the cards read uncut right after it, cut a second later)."""
    seen, waited = [], 0
    while waited < most_ms:
        seen.append(pg.evaluate(script))
        if len(seen) >= times and all(v == seen[-1] for v in seen[-times:]):
            return seen[-1]
        pg.wait_for_timeout(every_ms)
        waited += every_ms
    return seen[-1]


def test_a_narrow_window_cuts_no_card_and_no_button(server, browser):
    """At 900 px (a laptop's half screen, a projector's), the metric cards, buttons and checkboxes keep their
    words, no formula runs past its column and no chart is squeezed beside another: in st.columns the Fit
    page's six cards read "0…", its Run button "Run dist…", two checkboxes "Show the…", its charts were
    170-270 px wide, and Learn's model ended at "f(y | x) =". """
    pg = browser.new_context(viewport={"width": 900, "height": 1000}).new_page()
    try:
        for path, title in [("", "Distributed fit"), ("compare", "Compare"), ("data", "Data"),
                            ("experiments", "Experiments"), ("lessons", "Lessons"), ("learn", "Learn")]:
            pg.goto(f"{server}/{path}")
            pg.wait_for_selector(f"h1:has-text('{title}')", timeout=RUN_WAIT)
            settle(pg)
            no_errors(pg)
            assert stable_reading(pg, _CUT) == [], f"{title}: cut at 900 px"
            # Charts side by side would get 170-270 px (a 64 px plotting area under the legend): one above the
            # other they get the main column's width, about 440 px here.
            widths = stable_reading(pg, _CHART_WIDTHS)
            assert not widths or min(widths) >= 400, f"{title}: charts {widths} px wide at 900 px"
        shoot(pg, "narrow-900")
    finally:
        pg.context.close()


_TICK_PX = """() => Array.from(document.querySelectorAll('.js-plotly-plot .xtick text'))
    .map(t => parseFloat(t.style.fontSize))"""


def test_the_projector_toggle_enlarges_the_charts_on_screen(server, page):
    """The larger text (projector) reaches the charts already drawn, and leaves with the toggle: Streamlit
    sized their labels from the root font when it first drew them and kept them at 12 px beside 20 px text
    until the page was left (explorer.chrome.chart)."""
    page.goto(server)
    settle(page)
    plots_rendered(page, 4)
    small = stable_reading(page, _TICK_PX)
    assert small and max(small) <= 13, set(small)
    toggle = page.get_by_text("Larger text (projector)")
    for on in (True, False):
        toggle.click()
        page.wait_for_function("(big) => getComputedStyle(document.documentElement).fontSize === (big ? '20px' : "
                               "'16px')", arg=on, timeout=RUN_WAIT)
        settle(page)
        # Every label of every chart 1.25 times its size (the taller charts may show more ticks).
        sizes = sorted(set(stable_reading(page, _TICK_PX)))
        assert sizes == ([pytest.approx(1.25 * t, abs=0.01) for t in sorted(set(small))] if on
                         else sorted(set(small))), (on, sizes, set(small))
    no_errors(page)


def test_settings_loaded_on_the_data_page_show_on_the_fit_page(server, page):
    """Streamlit drops a keyed widget's state when another page runs, and the value the Data page held for
    the Fit page's boxes was drawn as their own default: after a real data set (or a session file) was
    loaded there, K and M read 0 on the Fit page, and Run refused them (explorer.settings.widget)."""
    page.goto(server)
    settle(page)
    assert page.get_by_label("Experts K", exact=True).input_value() == "3"
    page.get_by_role("link", name="Data", exact=True).first.click()
    page.wait_for_selector("h1:has-text('Data')", timeout=RUN_WAIT)
    settle(page)
    page.get_by_text("real data set", exact=True).click()
    page.get_by_role("button", name="Load this data set").wait_for(timeout=RUN_WAIT)
    settle(page)
    page.get_by_role("combobox", name="Real data set").click()
    page.get_by_role("option", name="faithful").click()
    sync_api.expect(page.get_by_role("combobox", name="Real data set")).to_have_value("faithful", timeout=RUN_WAIT)
    settle(page)
    page.get_by_role("button", name="Load this data set").click()
    page.wait_for_selector("text=Loaded faithful", timeout=RUN_WAIT)
    settle(page)
    page.get_by_role("link", name="Distributed fit", exact=True).first.click()
    page.wait_for_selector("h1:has-text('Distributed fit')", timeout=RUN_WAIT)
    settle(page)
    assert page.get_by_label("Experts K", exact=True).input_value() == "2"  # faithful's K; 0 before
    assert page.get_by_label("Machines M", exact=True).input_value() == "8"
    assert page.get_by_label("EM restarts per machine", exact=True).input_value() == "1"
    no_errors(page)


def test_back_returns_to_the_previous_page_in_one_press(server, page):
    """Once a setting left its default, each page visited made two history entries (the page's address,
    then the settings synced onto it): Back stayed on the page every other press (explorer.chrome's links
    carry the settings, and the sync sends them in one message)."""
    page.goto(server)
    settle(page)
    set_number(page, "Machines M", 4)
    page.wait_for_url("**/?M=4", timeout=RUN_WAIT)
    settle(page)
    for name in ("Data", "Compare"):
        page.get_by_role("link", name=name, exact=True).first.click()
        page.wait_for_selector(f"h1:has-text('{name}')", timeout=RUN_WAIT)
        settle(page)
    assert page.url.endswith("/compare?M=4")
    for path, title in (("/data?M=4", "Data"), ("/?M=4", "Distributed fit")):
        page.go_back()
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=RUN_WAIT)
        settle(page)
        assert page.url.endswith(path), (page.url, path)
    no_errors(page)


_TABLE_CELLS = """() => Array.from(document.querySelectorAll('[data-testid="stTable"] tbody td')).map(td => {
    const lines = new Set(); const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
        const range = document.createRange(); range.selectNodeContents(t);
        for (const r of range.getClientRects()) lines.add(Math.round(r.top));
    }
    const box = td.closest('[data-testid="stTable"]'); const inner = box.querySelector('div') || box;
    const over = Math.max(box.scrollWidth - box.clientWidth, inner.scrollWidth - inner.clientWidth);
    return [td.innerText, lines.size, over];
})"""


def test_table_numbers_stay_whole_with_the_projector_s_text(server, browser):
    """With the projector's larger text at 1280 px, Compare's block table broke "1.04e-05" over two lines and cut
    its last column off: its cells keep their numbers on one line and the table scrolls sideways."""
    pg = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    try:
        pg.goto(f"{server}/compare")
        settle(pg)
        pg.get_by_text("Larger text (projector)").click()
        pg.wait_for_function("() => getComputedStyle(document.documentElement).fontSize === '20px'", timeout=RUN_WAIT)
        settle(pg)
        cells = stable_reading(pg, _TABLE_CELLS)
        assert cells and all(lines == 1 for _, lines, _ in cells), [c for c in cells if c[1] != 1]
        assert max(over for _, _, over in cells) > 0  # the widest table scrolls instead of cutting its columns
        no_errors(pg)
    finally:
        pg.context.close()


def _csv(tmp_path, n=600):
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, n)
    y = np.where(x < 0, 1 + 2 * x, 2 - x) + 0.2 * rng.normal(size=n)
    p = tmp_path / "my_data.csv"
    p.write_text("input,response\n" + "\n".join(f"{a:.5f},{b:.5f}" for a, b in zip(x, y, strict=True)))
    return p


def _upload_on_data_page(server, page, path):
    """Open the Data page, upload ``path`` in its CSV tab and wait for the column pickers' run."""
    page.goto(server + "/data")
    settle(page)
    upload_in_tab(page, "Upload a CSV", path)
    page.get_by_role("button", name="Use these columns").wait_for(timeout=RUN_WAIT)
    settle(page)


def test_csv_upload_path(server, page, tmp_path):
    _upload_on_data_page(server, page, _csv(tmp_path))
    page.get_by_role("button", name="Use these columns").click()
    page.wait_for_selector("text=Loaded 600 rows", timeout=RUN_WAIT)
    settle(page)
    assert page.get_by_role("heading", name="Current data: my_data.csv").count() == 1
    no_errors(page)
    # ... and the uploaded data can be fitted from the fit page.
    page.get_by_role("link", name="Distributed fit", exact=True).first.click()
    page.wait_for_selector("h1:has-text('Distributed fit')", timeout=60_000)
    settle(page)
    fit_from_ui(page, 3)
    plots_rendered(page, 6)


def test_bad_csv_shows_an_error_and_keeps_the_data(server, page, tmp_path):
    page.goto(server + "/data")
    settle(page)
    bad = tmp_path / "ragged.csv"
    bad.write_text("x,y\n1,2\n3,4,5\n")
    upload_in_tab(page, "Upload a CSV", bad)
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=RUN_WAIT)
    settle(page)
    text = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert "different number of fields" in text and "unchanged" in text
    assert page.get_by_role("heading", name="Current data: teaching-1d").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_second_file_gets_its_own_column_defaults(server, page, tmp_path):
    # A browser audit saw the input box empty for a good file uploaded after another one: the box kept
    # the first file's picks, which the second file does not have.
    _upload_on_data_page(server, page, _csv(tmp_path))
    other = tmp_path / "other.csv"
    rng = np.random.default_rng(5)
    other.write_text("a,b,c\n" + "\n".join(f"{u:.4f},{v:.4f},{u - v:.4f}" for u, v in rng.normal(size=(300, 2))))
    upload_in_tab(page, "Upload a CSV", other)
    picks = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Input columns (x)")
    sync_api.expect(picks, "the second file's inputs a and b are not picked").to_contain_text("a", timeout=RUN_WAIT)
    sync_api.expect(picks).to_contain_text("b")
    page.get_by_role("button", name="Use these columns").click()
    page.wait_for_selector("text=Loaded 300 rows with 2 input(s)", timeout=RUN_WAIT)
    # Decimal commas in a semicolon file (a European export): read as numbers, and the page says so.
    commas = tmp_path / "commas.csv"
    commas.write_text("x;y\n" + "\n".join(f"{i},5;{2 * i},25" for i in range(30)))
    upload_in_tab(page, "Upload a CSV", commas)
    page.wait_for_selector("text=Read with decimal commas (5,88 as 5.88): x, y.", timeout=RUN_WAIT)
    settle(page)
    page.get_by_role("button", name="Use these columns").click()
    page.wait_for_selector("text=Loaded 30 rows with 1 input(s)", timeout=RUN_WAIT)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_two_concurrent_sessions_get_their_own_results(server, browser):
    ctxs = [browser.new_context(viewport={"width": 1500, "height": 1000}) for _ in range(2)]
    pages = [c.new_page() for c in ctxs]
    try:
        for pg, m in zip(pages, (2, 5), strict=True):
            pg.goto(server + "/")
            settle(pg)
            set_number(pg, "Machines M", m)
            set_number(pg, "Seed", 77 + m)  # distinct seeds: no shared cache entry, both really fit
        # Start both fits before waiting for either.
        for pg in pages:
            pg.get_by_role("button", name="Run distributed fit").click()
        for pg, m in zip(pages, (2, 5), strict=True):
            pg.wait_for_function("(want) => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                                 ".some(e => e.innerText.trim() === want)", arg=f"{m} / 3", timeout=60_000)
            settle(pg)
            no_errors(pg)
        assert metric(pages[0], "machines M / experts K") == "2 / 3"
        assert metric(pages[1], "machines M / experts K") == "5 / 3"
    finally:
        for c in ctxs:
            c.close()


def test_a_running_sweep_can_be_cancelled(server, page):
    page.goto(server + "/experiments")
    settle(page)
    page.get_by_label("Values (comma-separated)").fill("2, 4, 8, 16, 32, 64")
    page.get_by_label("Values (comma-separated)").press("Enter")
    set_number(page, "Repeats", 10)
    page.get_by_role("button", name="Run the sweep").click()
    page.wait_for_selector("text=/[1-9][0-9]* \\/ 120 fits/", timeout=60_000)  # some fits are done
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("text=Cancelled after", timeout=30_000)  # Cancel must act promptly: not RUN_WAIT
    settle(page)
    info = page.locator("text=Cancelled after").first.inner_text()
    done = int(info.split("Cancelled after")[1].split()[0])
    assert 1 <= done < 120
    no_errors(page)
    plots_rendered(page, 3)  # the partial results are shown
    page.get_by_role("button", name="Download all runs as CSV").wait_for(timeout=RUN_WAIT)
