"""One heavy link beside ordinary sessions (issue 22): do the ordinary ones still get their charts?

On a fresh Streamlit server, in chromium:

1. idle: one ordinary session opens "/" alone; time until its first Plotly chart is drawn;
2. loaded: a heavy link (n = 10^6, d = 10, K = 10, M = 256: unbudgeted, its automatic first fit ran
   184 s and took the server from 548 MB to 1 960 MB) is opened, and at once five ordinary
   sessions; time until each ordinary one's first chart, and the server's peak RSS (with its
   children) sampled meanwhile.

Target: every ordinary session's first chart within 2x the idle one; RSS under 1 GB
(tests/test_hostile_session_browser.py asserts the RSS bound and the heavy link's message, not
times).  The ordinary sessions share the server's cache (same data and settings): the first one
fits, the others reuse it, as a class opening one link does.

Run:  .venv/bin/python benchmarks/bench_budget.py   (about 2 minutes)
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

HEAVY = "/?design=separated-10d&n=1000000&M=256&K=10"
DRAWN = "[...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length"


def main():
    import psutil
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM, start_server

    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    with open(ROOT / "benchmarks" / "results" / "budget_server.log", "w") as log:
        proc, url = start_server(log)
        server = psutil.Process(proc.pid)
        peak, stop = [0.0], threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    rss = sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])
                    peak[0] = max(peak[0], rss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                # A first session warms the server (imports, kernels) as any server is warm in use.
                warm = b.new_context().new_page()
                warm.goto(url + "/")
                warm.wait_for_function(f"() => {DRAWN} >= 1", timeout=180_000)
                idle_rss = peak[0]
                pg = b.new_context().new_page()
                t0 = time.perf_counter()
                pg.goto(url + "/?K=4&M=6", wait_until="commit")
                pg.wait_for_function(f"() => {DRAWN} >= 1", timeout=180_000)
                idle = time.perf_counter() - t0

                pages = [b.new_context().new_page() for _ in range(6)]
                t0 = time.perf_counter()
                pages[0].goto(url + HEAVY, wait_until="commit")
                for q in pages[1:]:
                    q.goto(url + "/?K=4&M=7", wait_until="commit")
                firsts = []
                for q in pages[1:]:
                    q.wait_for_function(f"() => {DRAWN} >= 1", timeout=180_000)
                    firsts.append(time.perf_counter() - t0)
                pages[0].wait_for_selector('[data-testid="stAlertContentError"]', timeout=180_000)
                heavy_msg = time.perf_counter() - t0
                b.close()
        finally:
            stop.set()
            proc.terminate()
            proc.wait(20)
    print(f"idle server, one ordinary session: first chart {idle:.2f} s (server RSS {idle_rss:.0f} MB)")
    print("heavy link + 5 ordinary sessions: first charts " + ", ".join(f"{t:.2f}" for t in firsts)
          + f" s; worst / idle = {max(firsts) / idle:.2f} (target <= 2)")
    print(f"heavy link's refusal shown after {heavy_msg:.2f} s; server peak RSS {peak[0]:.0f} MB (bound 1000 MB)")


if __name__ == "__main__":
    main()
