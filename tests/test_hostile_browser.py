"""Issue 15 case 9 in a real browser: a deep link as the very first request of a fresh server.

Streamlit decides how to run a request before the entry script has ever called st.navigation:
with a pages/ folder beside app.py it runs the requested page script alone.  So /data as the
first request after a restart ran pages/data.py without app.py ("st.session_state has no key
'data'") until someone opened /.  Only a fresh server shows it: this test starts its own.
"""

import pytest
from test_browser import fresh_server_and_browser, no_errors, settle

pytestmark = pytest.mark.browser


def test_case9_deep_link_is_the_first_request_after_a_restart():
    with fresh_server_and_browser("streamlit_deeplink.log") as (url, b):
        pg = b.new_page(viewport={"width": 1400, "height": 900})
        pg.goto(url + "/data?K=2&n=4000", wait_until="domcontentloaded")
        settle(pg)
        no_errors(pg)
        assert pg.locator("h1").first.inner_text().startswith("Data")
        # The link's settings were applied by the page itself: n = 4000 samples.
        # The cards are drawn one by one: wait for the one that states n rather than read the first.
        pg.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
            ".some(e => e.innerText.trim() === '4,000')", timeout=60_000)
        assert "4,000" in pg.locator('[data-testid="stMetricValue"]').all_inner_texts()
        # The next runs go through app.py: the page's widgets keep their ids, so the first change
        # made after the deep link is not lost, and the page still works.
        box = pg.locator(".st-key-cfg_n input")
        box.fill("5000")
        box.press("Enter")
        settle(pg)
        pg.locator(".st-key-btn_generate button").click()
        pg.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
            ".some(e => e.innerText.trim() === '5,000')", timeout=60_000)
        no_errors(pg)
        assert pg.locator(".st-key-cfg_n input").input_value() == "5000"
