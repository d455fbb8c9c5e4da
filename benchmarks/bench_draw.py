"""How long the browser takes to draw each page's charts (issue 21: page switches <= 1 s).

    .venv/bin/python benchmarks/bench_draw.py                       # Fit, Data, Compare, Learn
    .venv/bin/python benchmarks/bench_draw.py --app /path/to/other/checkout --pages fit

Each page of the app (the built-in example, as a first visitor sees it) is run once under
``streamlit.testing.v1.AppTest``; the Plotly figures it sends are then drawn one at a time in
headless Debian chromium (software rendering, as in the browser tests) with ``Plotly.newPlot`` of
plotly.py's bundled plotly.js, and timed until the next frame: median of ``--repeats`` draws after
one unmeasured draw.  Streamlit bundles its own build of plotly.js, so these are the charts' own
drawing costs, without React or the page around them; a page switch in the real app
(benchmarks/bench_classroom.py) costs about twice the page's sum.  Output: results/draw.csv.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PAGES = {"fit": "pages/fit.py", "data": "pages/data.py", "compare": "pages/compare.py", "learn": "pages/learn.py"}
DRAW = """async (spec) => {
    const f = JSON.parse(spec), d = document.getElementById('plot');
    Plotly.purge(d); d.innerHTML = '';
    const t = performance.now();
    await Plotly.newPlot(d, f.data, f.layout, {responsive: false});
    await new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
    return performance.now() - t;
}"""


def page_figures(app_dir: Path, pages):
    """{page: [(chart key, figure JSON)]} as the app sends them for the built-in example."""
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(app_dir))  # that checkout's explorer and moecore
    at = AppTest.from_file(str(app_dir / "app.py"), default_timeout=300).run()
    out = {}
    for name in pages:
        at.switch_page(PAGES[name]).run()
        if at.exception:
            raise RuntimeError(f"{name}: {at.exception[0].message}")
        out[name] = [(el.proto.id.split("-")[-1], el.proto.spec) for el in at.get("plotly_chart")]
    return out


def draw_times(figures, repeats):
    """{(page, chart): median milliseconds} drawn in chromium."""
    import plotly
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM

    js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()
    times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1000})
        pg.set_content("<html><body><div id='plot' style='width: 1300px'></div></body></html>")
        pg.add_script_tag(content=js)
        for rep in range(repeats + 1):
            for page, charts in figures.items():
                for key, spec in charts:
                    ms = pg.evaluate(DRAW, spec)
                    if rep:  # the first draw of each compiles plotly.js's code paths
                        times.setdefault((page, key), []).append(ms)
        browser.close()
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", default=str(ROOT), help="checkout whose app to measure (default: this one)")
    ap.add_argument("--pages", default="fit,data,compare,learn")
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # Streamlit's "no runtime" notices under AppTest
    figures = page_figures(Path(args.app).resolve(), args.pages.split(","))
    times = draw_times(figures, args.repeats)
    out = ROOT / "benchmarks" / "results" / "draw.csv"
    host = f"{platform.node()} {os.cpu_count()} cores"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["page", "chart", "json_kB", "draw_ms", "app", "host"])
        for page, charts in figures.items():
            for key, spec in charts:
                w.writerow([page, key, f"{len(spec) / 1e3:.1f}", f"{times[page, key]:.1f}", args.app, host])
    for page, charts in figures.items():
        total = sum(times[page, key] for key, _ in charts)
        detail = ", ".join(f"{key} {times[page, key]:.0f}" for key, _ in charts)
        print(f"{page:8s} {total:6.0f} ms in {len(charts)} charts: {detail}")
    print(f"wrote {out} (app: {args.app})")


if __name__ == "__main__":
    main()
