"""First contact in chromium: a session's first request shows the app's title and what it is doing
before the compute core is imported and the example fitted; the title then gives way to the page's
own, every page still opens, and the Data page's tabs keep the tab a user chose (the elements
keep their places between a session's first run and the next).  The time to the title is
measured by ``benchmarks/bench_classroom.py --first-contact``, not asserted here.
"""

import pytest
from test_browser import RUN_WAIT, fresh_server_and_browser, new_page, no_errors, settle, upload_in_tab

from explorer.chrome import PAGES

pytestmark = pytest.mark.browser

# Every distinct set of titles (h1) the page shows, in order, recorded from the first byte on.
RECORD_TITLES = """
window.__titles = [];
new MutationObserver(() => {
  const now = [...document.querySelectorAll('h1')].map(h => h.innerText.trim()).filter(Boolean).join(' | ');
  if (now && window.__titles[window.__titles.length - 1] !== now) window.__titles.push(now);
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


# Every visible chart the page draws (its title), in the order they first appear, and whether the
# first contact's hidden chart (it loads the chart code early) was ever drawn.
RECORD_CHARTS = """
window.__charts = [];
window.__preload = false;
new MutationObserver(() => {
  if (document.querySelector('.st-key-chart_code_preload .js-plotly-plot')) window.__preload = true;
  for (const p of document.querySelectorAll('.js-plotly-plot')) {
    if (!p.querySelector('.main-svg') || p.getClientRects().length === 0) continue;
    const t = p.querySelector('.gtitle');
    const text = t ? t.textContent.trim() : '(untitled)';
    if (!window.__charts.includes(text)) window.__charts.push(text);
  }
}).observe(document, {childList: true, subtree: true, characterData: true, attributes: true});
"""


def titles(pg):
    return pg.evaluate("() => window.__titles")


def charts_seen(pg):
    return pg.evaluate("() => window.__charts")


def test_first_contact_title_then_the_pages_and_the_data_tabs(tmp_path):
    with fresh_server_and_browser("first_contact_server.log") as (url, browser):
        pg = new_page(browser)
        pg.add_init_script(RECORD_TITLES)
        pg.add_init_script(RECORD_CHARTS)
        pg.goto(url + "/", wait_until="commit")  # the fresh server's first request
        settle(pg)
        seen = titles(pg)
        assert seen[0] == "DMoE Explorer", seen  # on screen before the page's own title
        assert pg.locator("h1").all_inner_texts() == ["Distributed fit"]  # the first title gave way
        assert pg.get_by_text("Starting: loading the compute core").count() == 0
        # The hidden chart that loads the chart code came with the title, was never visible (every
        # chart seen has a title: the page's own), and went with the title.
        assert pg.evaluate("() => window.__preload")
        drawn = charts_seen(pg)
        assert drawn and "(untitled)" not in drawn, drawn
        assert pg.locator(".st-key-chart_code_preload").count() == 0
        for _, title, _ in PAGES:
            pg.locator('[data-testid="stSidebar"]').get_by_role("link", name=title, exact=True).click()
            pg.wait_for_function("(t) => { const h = document.querySelector('h1');"
                                 " return h && h.innerText.trim().startsWith(t); }", arg=title, timeout=60_000)
            settle(pg)
            no_errors(pg)
            assert pg.get_by_text("Starting: loading the compute core").count() == 0, title

        # Another session whose first run is the Data page (on a warm server its first title may
        # come and go within one frame): the tab chosen stays chosen through the upload's run, the
        # run after the session's first.
        data = new_page(browser)
        data.goto(url + "/data", wait_until="commit")
        settle(data)
        assert data.locator("h1").all_inner_texts() == ["Data"]
        csv = tmp_path / "two.csv"
        csv.write_text("a,b\n" + "\n".join(f"{i / 10},{(i % 7) / 3}" for i in range(200)) + "\n")
        upload_in_tab(data, "Upload a CSV", csv)
        data.get_by_role("button", name="Use these columns").wait_for(timeout=RUN_WAIT)
        settle(data)
        assert data.get_by_role("tab", name="Upload a CSV").get_attribute("aria-selected") == "true"
        no_errors(data)
