"""Lessons point at their evidence, in a real browser (Streamlit server + Debian chromium): every
figure a lesson's sentence quotes (in bold) is on the page inside a highlighted cell or box (checked
on each lesson's run in tests/test_lessons_browser.py); the Learn page steps to its end without a
negative decrease and disables its step button there."""

import re

import pytest
from test_browser import fresh_server_and_browser, new_page, no_errors, plots_rendered, settle, shoot

from explorer.evidence import HIGHLIGHT
from explorer.lessons import LESSONS

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")

RGB = "rgb({}, {}, {})".format(*(int(HIGHLIGHT[i:i + 2], 16) for i in (1, 3, 5)))

# For each figure: is it inside a highlighted box, or the whole text of a highlighted table cell?
HIGHLIGHTED = f"""(figs) => figs.map(f => {{
  const boxes = [...document.querySelectorAll("[class*='st-key-evidence_']")];
  const inBox = boxes.some(b => b.innerText.includes(f));
  const cells = [...document.querySelectorAll('td, th')].filter(
      c => c.innerText.trim() === f && getComputedStyle(c).backgroundColor === '{RGB}');
  return inBox || cells.length > 0;
}})"""


@pytest.fixture(scope="module")
def fresh():
    with fresh_server_and_browser("streamlit_evidence.log") as out:
        yield out


def check_quoted_figures_are_highlighted(pg, lesson):
    """Every figure the lesson's sentence quotes (in bold) is on its page, in a highlighted cell or
    box; the next-lesson button is there unless it is the last.  Called by the lessons' browser test
    (tests/test_lessons_browser.py) on the page its lesson button opened: one run of each lesson
    serves both checks (each run of the headline lesson takes 15 s of the CI's time)."""
    pg.wait_for_selector(".st-key-lesson_evidence", timeout=120_000)
    settle(pg)
    no_errors(pg)
    quoted = [q.strip() for q in pg.locator(".st-key-lesson_evidence strong").all_inner_texts()]
    figures = [q for q in quoted if re.search(r"\d", q)]
    assert len(figures) >= 2, quoted
    try:  # a rerun still drawing the tables: wait for it rather than read them half drawn
        pg.wait_for_function(f"(figs) => ({HIGHLIGHTED})(figs).every(x => x)", arg=figures, timeout=30_000)
    except sync_api.TimeoutError:
        pass
    found = pg.evaluate(HIGHLIGHTED, figures)
    assert all(found), [f for f, ok in zip(figures, found, strict=True) if not ok]
    assert pg.locator(".st-key-btn_next_lesson").count() == (lesson is not LESSONS[-1])


def test_learn_never_shows_a_negative_decrease_and_stops_at_the_end(fresh):
    url, b = fresh
    pg = new_page(b)
    pg.goto(url + "/learn?lseed=4", wait_until="domcontentloaded")
    pg.wait_for_selector("text=Iteration 0 of", timeout=120_000)
    settle(pg)
    last = int(re.search(r"Iteration 0 of (\d+)", pg.locator("text=Iteration 0 of").first.inner_text()).group(1))
    for i in range(1, last + 1):
        pg.locator(".st-key-learn_next button").click()
        pg.wait_for_function("(t) => (document.querySelector('.st-key-learn_status') || {}).innerText?.startsWith(t)",
                             arg=f"Iteration {i} of {last}", timeout=60_000)
        status = pg.locator(".st-key-learn_status").inner_text()
        assert not re.search(r"down -", status), status
        assert re.search(r"(down \d\.\d\de[+-]\d\d|unchanged from the previous iterate)", status), status
    settle(pg)
    assert pg.locator(".st-key-learn_next button").is_disabled()
    no_errors(pg)
    pg.context.close()


def test_fit_page_at_256_machines_reads_in_one_screen_of_warnings(fresh):
    """M = 256 with K = 10 on a 3-expert design: most machines retire spare experts and the
    screening flags some; each is one line (details in an expander), the machines left out are
    stated next to the count, and the EM curves' axis is not stretched by a few slow fits."""
    url, b = fresh
    pg = new_page(b)
    # n at its default (20 000, 78 rows a machine): within what a link may fit by itself (the
    # per-session budget); n = 10^5 at K = 10 is left to a click.
    pg.goto(url + "/?M=256&K=10", wait_until="domcontentloaded")
    pg.wait_for_selector('[data-testid="stMetric"]', timeout=300_000)
    settle(pg, timeout=300_000)
    no_errors(pg)
    for w in pg.locator('[data-testid="stAlertContentWarning"]').all_inner_texts():
        assert "\n" not in w.strip() and len(w) < 400, w  # one line each, not 230 machine numbers
    count = pg.locator('[data-testid="stMetric"]', has_text="machines M / experts K")
    fitted = int(count.locator('[data-testid="stMetricValue"]').inner_text().split("/")[0])
    if fitted < 256:
        card = pg.locator(".st-key-fit_cards_0")  # the card of the count (explorer.chrome.cards)
        assert f"{256 - fitted} of 256 machines left out" in card.inner_text()
    plots_rendered(pg, 4)
    shoot(pg, "fit-m256")
    pg.context.close()
