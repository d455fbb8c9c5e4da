"""One heavy link beside ordinary sessions (issue 22): do the ordinary ones still get their charts?

On a fresh Streamlit server (warmed by one session, as a server in use is), three scenes:

1. idle: one ordinary session opens the app alone;
2. five: five ordinary sessions open it at once (no heavy link): what sharing the server costs;
3. heavy + five: a heavy link (n = 10^6, d = 10, K = 10, M = 256; unbudgeted, its automatic first
   fit ran 184 s and took the server from 548 MB to 1 960 MB) and at once five ordinary sessions.

Each scene opens the app with new settings (its own M), so its first session fits and the
others of the scene share that fit through the server's cache, as a class opening one link does.
The fits of different M differ in EM work (one local fit may crawl to max_iter), so the scenes run
on ``--repeats`` fresh servers (3 by default) with their M rotated (:func:`rotation`): summed over
the repeats, every scene waited for the same three fits, and the ratios of the sums compare like
with like.
The time measured is until each ordinary session's first Plotly chart, by two kinds of client:

* ``protocol``: Streamlit's own websocket protocol (the messages a browser exchanges), timed to
  the message that carries the first chart: the server's answer, without drawing;
* ``browser``: chromium pages, timed until the first chart is drawn.  The browsers run on the
  server's cores, where drawing a page costs several CPU-seconds (the CPU time of the server, of
  chromium and of the whole machine is printed for each scene), and other users' load counts too.

Target: the worst ordinary session of scene 3 within 2x of scene 1; the server's peak RSS (with
its worker processes) under RSS_BOUND_MB over the whole run (tests/test_hostile_session_browser.py
asserts that bound and the heavy link's message, not times).

Run:  .venv/bin/python benchmarks/bench_budget.py [--clients protocol|browser|both] [--app DIR] [--repeats 3]
(about 1 minute a repeat for the protocol clients, 2-4 for the browsers).  --app serves another checkout's
app.py with its own moecore and explorer (e.g. an export of main: ``git archive main | tar -x -C
DIR``), so that two versions are compared by one command on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

HEAVY = "design=separated-10d&n=1000000&M=256&K=10"
# The first contact's hidden, empty chart (app.py: it makes the browser load the chart code early)
# is no chart the user sees.
PRELOAD_KEY = "chart_code_preload"
# An idle server is about 0.4 GB with its compute stack; the ordinary sessions add their data and
# fits (20 000 rows: megabytes); the heavy link's 10^6 x 10 rows are never simulated and its fit
# never starts (its unbudgeted fit took the server to 1.96 GB).
RSS_BOUND_MB = 1000


def scenes(ms):
    """(name, queries) of the three scenes; their ordinary sessions at M = ms[0], ms[1], ms[2]."""
    ordinary = [f"K=4&M={m}" for m in ms]
    return [("idle", [ordinary[0]]), ("five", [ordinary[1]] * 5), ("heavy + five", [HEAVY] + [ordinary[2]] * 5)]


def rotation(first_m, repeat):
    """The scenes' M in repeat ``repeat``: first_m, first_m + 1, first_m + 2, rotated by one each
    repeat, so that over three repeats every scene waits for the same three fits (their EM work
    differs: at K = 4 one of M = 5, 6, 7 has a local fit that crawls for 300 iterations)."""
    return [first_m + (i + repeat) % 3 for i in range(3)]


async def _protocol_session(url, query, t0):
    """One session over the websocket as a browser opens it: seconds from t0 until the first
    Plotly chart is sent (None if none is), and until the run ends."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    first = None
    async with websockets.connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=120) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_script_hash = ""
        await ws.send(msg.SerializeToString())
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(ws.recv(), 300))
            kind = fm.WhichOneof("type")
            if (first is None and kind == "delta" and fm.delta.WhichOneof("type") == "new_element"
                    and fm.delta.new_element.WhichOneof("type") == "plotly_chart"
                    and PRELOAD_KEY not in fm.delta.new_element.plotly_chart.id):
                first = time.perf_counter() - t0
            if kind == "script_finished":
                return first, time.perf_counter() - t0


def protocol_scene(url, queries):
    """Seconds until each session's first chart (the heavy link's: until its run ends); and a
    function that closes the sessions (nothing left open here)."""

    async def run():
        t0 = time.perf_counter()
        return await asyncio.gather(*(_protocol_session(url, q, t0) for q in queries))

    times = [end if q == HEAVY else first for q, (first, end) in zip(queries, asyncio.run(run()), strict=True)]
    return times, lambda: None


def browser_scene(browser, url, queries):
    """Seconds until each page draws its first chart (the heavy link's: until its message shows);
    and a function that closes the pages (after their CPU time is read: a closed page's
    renderer process is gone, and its CPU time with it)."""
    from test_browser import DRAWN

    pages = [browser.new_context().new_page() for _ in queries]
    t0 = time.perf_counter()
    for pg, q in zip(pages, queries, strict=True):
        pg.goto(f"{url}/?{q}", wait_until="commit")
    out = []
    for pg, q in zip(pages, queries, strict=True):
        if q == HEAVY:
            pg.wait_for_selector('[data-testid="stAlertContentError"]', timeout=300_000)
        else:
            pg.wait_for_function(f"() => {DRAWN} >= 1", timeout=300_000)
        out.append(time.perf_counter() - t0)

    def close():
        for pg in pages:
            pg.context.close()

    return out, close


def _cpu_by_pid(procs):
    """{pid: CPU seconds so far} of the processes ``procs`` still running."""
    import psutil

    out = {}
    for p in procs:
        try:
            c = p.cpu_times()
            out[p.pid] = c.user + c.system
        except psutil.Error:
            pass
    return out


def _cpu_since(before, procs):
    """CPU seconds ``procs`` spent since ``before`` (a :func:`_cpu_by_pid`); a process started
    since counts from its start, one ended since is not counted (its time is lost with it)."""
    return sum(t - before.get(pid, 0.0) for pid, t in _cpu_by_pid(procs).items())


def _tree(proc):
    import psutil

    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def measure(kind, run_scene, ms, server, browsers):
    """Run the scenes (ordinary sessions at M = ``ms``) with one kind of client; print and return
    {scene: worst ordinary session's seconds}."""
    import psutil

    rows = []
    for name, queries in scenes(ms):
        s0, b0, m0 = _cpu_by_pid(_tree(server)), _cpu_by_pid(browsers()), psutil.cpu_times()
        times, close = run_scene(queries)
        m1, server_cpu, browser_cpu = psutil.cpu_times(), _cpu_since(s0, _tree(server)), _cpu_since(b0, browsers())
        close()
        machine = (m1.user + m1.system + m1.nice) - (m0.user + m0.system + m0.nice)
        ordinary = [t for q, t in zip(queries, times, strict=True) if q != HEAVY]
        heavy = [t for q, t in zip(queries, times, strict=True) if q == HEAVY]
        print(f"  {kind:8s} {name:13s} first charts " + ", ".join(f"{t:.2f}" for t in ordinary) + " s"
              + (f"; heavy link answered in {heavy[0]:.2f} s" if heavy else "")
              + f"; CPU s: server {server_cpu:.1f}, browsers {browser_cpu:.1f}, "
              f"machine {machine:.1f}; load {os.getloadavg()[0]:.1f}", flush=True)
        rows.append((name, max(ordinary)))
    worst = dict(rows)
    _print_ratios(kind, worst)
    return worst


def _print_ratios(kind, worst):
    print(f"  {kind:8s} worst / idle: five {worst['five'] / worst['idle']:.2f}, heavy + five "
          f"{worst['heavy + five'] / worst['idle']:.2f} (target <= 2); the heavy link's own cost: heavy + five / five "
          f"= {worst['heavy + five'] / worst['five']:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", choices=["protocol", "browser", "both"], default="both")
    ap.add_argument("--app", type=Path, default=ROOT, help="the checkout whose app.py is served (default: this one)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fresh servers, the scenes' M rotated between them (3: every scene waits for the same fits)")
    args = ap.parse_args()
    app = args.app.resolve()
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    print(f"app {app}; {os.cpu_count()} cores; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    kinds = ["protocol", "browser"] if args.clients == "both" else [args.clients]
    totals = {kind: {} for kind in kinds}
    peak = [0.0]
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1} of {args.repeats}: a fresh server")
        for kind, worst in one_server(app, kinds, repeat, peak).items():
            for scene, t in worst.items():
                totals[kind][scene] = totals[kind].get(scene, 0.0) + t
    if args.repeats > 1:
        print(f"over the {args.repeats} repeats (sums of each scene's worst session):")
        for kind in kinds:
            _print_ratios(kind, totals[kind])
    print(f"  server peak RSS {peak[0]:.0f} MB (bound {RSS_BOUND_MB} MB); load average "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


def one_server(app, kinds, repeat, peak):
    """The scenes on one fresh server, with each kind of client; {kind: {scene: worst seconds}}.
    ``peak`` [MB] is raised to the server's peak RSS (with its worker processes)."""
    import psutil
    from test_browser import ARGS, CHROMIUM, DRAWN, start_server

    out = {}
    with open(ROOT / "benchmarks" / "results" / "budget_server.log", "w") as log:
        proc, url = start_server(log, root=app)
        server = psutil.Process(proc.pid)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    rss = sum(p.memory_info().rss for p in _tree(server))
                    peak[0] = max(peak[0], rss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        try:
            # A first session warms the server (imports, kernels) as any server is warm in use.
            protocol_scene(url, [""])
            print(f"  warm server RSS {peak[0]:.0f} MB")
            if "protocol" in kinds:
                out["protocol"] = measure("protocol", lambda q: protocol_scene(url, q), rotation(5, repeat), server,
                                          list)
            if "browser" in kinds:
                from playwright.sync_api import sync_playwright

                me = psutil.Process()
                with sync_playwright() as p:
                    b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                    warm = b.new_context().new_page()  # the browser's own start is not the server's
                    warm.goto(url + "/")
                    warm.wait_for_function(f"() => {DRAWN} >= 1", timeout=300_000)
                    warm.context.close()

                    def browsers():
                        return [q for q in me.children(recursive=True) if "chrom" in q.name().lower()]

                    out["browser"] = measure("browser", lambda q: browser_scene(b, url, q), rotation(9, repeat),
                                             server, browsers)
                    b.close()
        finally:
            stop.set()
            proc.terminate()
            proc.wait(20)
    return out


if __name__ == "__main__":
    main()
