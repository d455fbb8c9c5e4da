"""Issue 15 case 9 in a real browser: a deep link as the very first request of a fresh server.

Streamlit decides how to run a request before the entry script has ever called st.navigation:
with a pages/ folder beside app.py it runs the requested page script alone.  So /data as the
first request after a restart ran pages/data.py without app.py ("st.session_state has no key
'data'") until someone opened /.  Only a fresh server shows it: this test starts its own.
"""

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_browser import ARGS, CHROMIUM, ARTIFACTS, _free_port, no_errors, settle

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")


def _fresh_server(log):
    port = _free_port()
    streamlit = Path(sys.executable).with_name("streamlit")
    proc = subprocess.Popen(
        [str(streamlit), "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
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
            pytest.fail("streamlit did not start")
        time.sleep(0.2)


def test_case9_deep_link_is_the_first_request_after_a_restart():
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "streamlit_deeplink.log", "w") as log:
        proc, url = _fresh_server(log)
        try:
            with sync_api.sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    pg = b.new_page(viewport={"width": 1400, "height": 900})
                    pg.goto(url + "/data?K=2&n=4000", wait_until="domcontentloaded")
                    settle(pg)
                    no_errors(pg)
                    assert pg.locator("h1").first.inner_text().startswith("Data")
                    assert "n = 4,000" in pg.locator("body").inner_text() or "4,000" in pg.locator(
                        '[data-testid="stMetricValue"]').first.inner_text()
                finally:
                    b.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
