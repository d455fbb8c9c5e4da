"""The app in a classroom (issue 13): how long a teacher and a class wait.

* first paint: a fresh server's first request, "/" opened in chromium, until a title is on screen
  (target <= 1 s: the app writes its title and a progress message before importing the compute core);
  ``--first-contact`` measures only that, on fresh servers, from the request and from ``streamlit
  run``'s start, alternating with ``--baseline SCRIPT`` (e.g. an older app.py copied beside it)
  when given, so the two are measured side by side under the same load;
* first chart: a fresh Streamlit server started, "/" opened in chromium, until the first Plotly
  chart is drawn (target <= 5 s after `make run` installed and compiled everything);
* Learn step end to end: "Next MM step" clicked until the new iterate's status and charts are drawn
  (target <= 1 s; median of the walk-through's steps);
* each lesson end to end: its button clicked until its page, narration and charts are drawn
  (target <= 10 s on 2 cores, the headline lesson with n = 10^6, M = 128 included);
* page switch: a sidebar link clicked until the new page's charts are drawn (target <= 1 s);
* server time per interaction on the default example: a script rerun after a click that changes
  no fit (a plot option, a Learn step), timed with streamlit.testing.v1.AppTest (target <= 0.3 s).

Run:  .venv/bin/python benchmarks/bench_classroom.py   (about 2 minutes; writes results/classroom.csv)
      .venv/bin/python benchmarks/bench_classroom.py --first-contact [--baseline app_before.py] [--repeats 3]
      (writes results/first_contact.csv)
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from explorer.lessons import LESSONS  # noqa: E402


def settle(pg, timeout=120_000):
    pg.wait_for_selector("h1", timeout=timeout)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def charts(pg, at_least=1, timeout=120_000):
    from test_browser import DRAWN  # visible charts only

    pg.wait_for_function(f"() => {DRAWN} >= {at_least}", timeout=timeout)


def browser_timings(rows):
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM, start_server

    log = open(ROOT / "benchmarks" / "results" / "classroom_server.log", "w")
    t0 = time.perf_counter()
    proc, url = start_server(log)
    t_up = time.perf_counter() - t0
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = b.new_context(viewport={"width": 1500, "height": 1000}).new_page()
            t_req = time.perf_counter()
            pg.goto(url + "/", wait_until="domcontentloaded")
            pg.wait_for_selector("h1", timeout=120_000)
            rows.append(("first paint (a title) after the first request", time.perf_counter() - t_req, 1.0,
                         "fresh server, its first session"))
            charts(pg)
            rows.append(("first chart after server start", time.perf_counter() - t0, 5.0,
                         f"server answered its health check after {t_up:.2f} s"))
            settle(pg)
            for title in ["Data", "Compare", "Learn", "Distributed fit", "Data", "Distributed fit"]:
                t = time.perf_counter()
                pg.locator('[data-testid="stSidebar"]').get_by_role("link", name=title, exact=True).click()
                pg.wait_for_function("(t) => { const h = document.querySelector('h1'); return h && "
                                     "h.innerText.trim().startsWith(t); }", arg=title, timeout=60_000)
                charts(pg)
                settle(pg)
                rows.append((f"page switch to {title}", time.perf_counter() - t, 1.0, ""))
            pg.goto(url + "/learn", wait_until="domcontentloaded")
            pg.wait_for_selector(".st-key-learn_status", timeout=120_000)
            settle(pg)
            last = int(pg.locator(".st-key-learn_status").inner_text().split(" of ")[1].split()[0])
            steps = []
            for i in range(1, last + 1):
                t = time.perf_counter()
                pg.locator(".st-key-learn_next button").click()
                pg.wait_for_function("(t) => (document.querySelector('.st-key-learn_status') || {})"
                                     ".innerText?.startsWith(t)", arg=f"Iteration {i} of", timeout=60_000)
                charts(pg, 4)
                settle(pg)
                steps.append(time.perf_counter() - t)
            rows.append(("Learn step end to end", statistics.median(steps), 1.0,
                         f"median of {len(steps)} steps, max {max(steps):.2f} s"))
            for lesson in LESSONS:
                pg.goto(url + "/lessons", wait_until="domcontentloaded")
                settle(pg)
                t = time.perf_counter()
                pg.locator(f".st-key-btn_lesson_{lesson.key} button").click()
                pg.wait_for_selector(f"text=Lesson: {lesson.title}", timeout=120_000)
                charts(pg)
                settle(pg)
                rows.append((f"lesson {lesson.key}", time.perf_counter() - t, 10.0, "click to page, narration, charts"))
            b.close()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


# The first title the browser shows (app.py's first-contact title, or a page's own).
TITLE = "() => [...document.querySelectorAll('h1')].some(h => h.innerText.trim().length > 0)"


def first_title(script, browser, log):
    """A fresh server of ``script``: seconds from ``streamlit run``'s start to its health check,
    and from the first request of "/" and from the start to the first title on screen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("streamlit")), "run", script, "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"streamlit run {script} did not start; see {log.name}")
        t_up = time.perf_counter()
        pg = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        t_req = time.perf_counter()
        pg.goto(url + "/", wait_until="commit")
        pg.wait_for_function(TITLE, timeout=120_000, polling=20)
        t_title = time.perf_counter()
        pg.context.close()
        return t_up - t0, t_title - t_req, t_title - t0
    finally:
        proc.terminate()
        proc.wait(10)


def first_contact_timings(baseline=None, repeats=3):
    """Rows (script, repeat, seconds to health, to the title after the request, after the start)."""
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM

    scripts = ["app.py", *([baseline] if baseline else [])]
    out = []
    with open(ROOT / "benchmarks" / "results" / "first_contact_server.log", "w") as log, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for r in range(repeats):
            for script in scripts if r % 2 == 0 else scripts[::-1]:  # alternated: same load for both
                out.append((script, r, *first_title(script, b, log)))
        b.close()
    return out


def server_timings(rows, repeats=7):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()

    def timed(action):
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            action()
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    flip = {"v": True}

    def toggle_data():
        flip["v"] = not flip["v"]
        at.checkbox(key="fit_show_data").set_value(flip["v"]).run()

    rows.append(("server rerun: Fit page plot option", timed(toggle_data), 0.3, "median; AppTest"))
    at.switch_page("pages/learn.py").run()
    def learn_step():  # the step button is disabled at the last iterate: start again there
        nxt = at.button(key="learn_next")
        (at.button(key="learn_reset") if nxt.disabled else nxt).click().run()

    rows.append(("server rerun: Learn next MM step", timed(learn_step), 0.3, "median; AppTest"))
    at.switch_page("pages/data.py").run()
    rows.append(("server rerun: Data page", timed(lambda: at.run()), 0.3, "median; AppTest"))


def main_first_contact(baseline, repeats):
    rows = first_contact_timings(baseline, repeats)
    out = ROOT / "benchmarks" / "results" / "first_contact.csv"
    host = f"{platform.node()} {os.cpu_count()} cores"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["script", "repeat", "to_health_s", "title_after_request_s", "title_after_start_s", "host"])
        for script, r, *secs in rows:
            w.writerow([script, r, *(f"{v:.3f}" for v in secs), host])
    for script in dict.fromkeys(row[0] for row in rows):
        mine = [row[2:] for row in rows if row[0] == script]
        med = [statistics.median(col) for col in zip(*mine, strict=True)]
        print(f"{script:16s} median of {len(mine)}: health {med[0]:.2f} s, title {med[1]:.2f} s after the request "
              f"(target 1 s), {med[2]:.2f} s after streamlit run started")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first-contact", action="store_true", help="only the first title on fresh servers")
    ap.add_argument("--baseline", help="another entry script beside app.py, measured alternately with it")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.first_contact:
        main_first_contact(args.baseline, args.repeats)
        return
    rows = []
    server_timings(rows)
    browser_timings(rows)
    out = ROOT / "benchmarks" / "results" / "classroom.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["what", "seconds", "target_s", "note", "host"])
        host = f"{platform.node()} {os.cpu_count()} cores"
        for what, sec, target, note in rows:
            w.writerow([what, f"{sec:.3f}", target, note, host])
    for what, sec, target, note in rows:
        print(f"{what:42s} {sec:7.3f} s  (target {target:g} s) {'ok' if sec <= target else 'MISSED'}  {note}")


if __name__ == "__main__":
    main()
