"""A fourth hostile audit of the app, in Chromium (2026-12-06): what it found, each failing before.

An export whose rows were each written five times said nothing (held-out scores then chose K = 10 over the
truth's 3); a file with '#' notes above its header was refused as ragged; the sweep chart drew the methods'
points away from their values on a log axis; an interrupted sweep was averaged as if every repeat had run.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

from app_helpers import new_session, two_lines, upload_csv

_upload, _line = upload_csv, two_lines


def test_rows_written_several_times_are_said_and_can_be_left_out():
    frame = pd.concat([_line(300)] * 5, ignore_index=True)
    at = new_session()
    _upload(at, "dups.csv", frame.to_csv(index=False).encode())
    assert at.session_state["data"].n == 1500
    assert [i.value for i in at.info if i.value.startswith("1,200 of the 1,500 rows repeat an earlier row exactly")]
    at.button(key="btn_drop_copies").click().run()
    data = at.session_state["data"]
    assert data.n == 300 and data.name == "dups.csv without 1200 repeated rows"
    np.testing.assert_array_equal(data.y, frame["y"].to_numpy()[:300])  # the first copies, in their order
    assert not [i.value for i in at.info if "repeat an earlier row" in i.value]


def test_comment_lines_are_skipped_and_said_on_the_data_page():
    at = new_session()
    body = _line(50).to_csv(index=False).encode()
    _upload(at, "notes.csv", b"# measured 2026-12-01\n# units: none\n" + body)
    assert at.session_state["data"].n == 50 and at.session_state["data"].x_names == ["x"]
    assert [i.value for i in at.info if i.value == "Skipped 2 comment lines (starting with #)."]


def test_the_servers_warm_up_compiles_every_kernel_the_default_fit_calls():
    # The warm-up fitted with k-means starts only: the default portfolio's line starts compiled during the first
    # session's fit (4.1 s on machine 1 where the cache was cold), and every later session was shown that fit's
    # speed-up of 0.0057x. In a fresh process: after warm_up, a default fit compiles nothing more.
    import subprocess

    code = """
import numba, streamlit
from moecore import DistributedMoE, MixtureOfExperts, _em_kernels, _kmeans, reduction
from moecore.simulation import simulate_design
from explorer.runs import warm_up
mods = (_em_kernels, _kmeans, reduction)
def compiled():
    return {(m.__name__, k): len(f.signatures) for m in mods for k, f in vars(m).items()
            if isinstance(f, numba.core.registry.CPUDispatcher)}
warm_up()
before = compiled()
sim = simulate_design("separated-2d", 3000, random_state=1)
DistributedMoE(2, 4, backend="threading", n_jobs=2, random_state=1).fit(sim.X, sim.y)
MixtureOfExperts(2, random_state=1).fit(sim.X, sim.y)
after = compiled()
print(sorted(k for k in after if after[k] != before[k]))
"""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_a_sweep_that_stopped_early_says_how_many_repeats_each_value_ran():
    # "Interrupted after 22 runs" above a caption of "6 repeat(s)", and means over 3 and 2 of them (the audit
    # of 2026-12-06).
    from explorer.explain import repeats_text
    from moecore.experiments import sweep

    assert repeats_text({2: 6, 4: 6}, 6, "machines M") == "6 repeat(s)"
    assert repeats_text({2: 3, 4: 3, 8: 3, 16: 2}, 6, "M") == (
        "6 repeat(s) asked, the sweep stopped early: 3 at M = 2, 4, 8; 2 at M = 16 (the means below are over those)")
    rows = list(sweep("two-experts-1d", "n_machines", [2, 4], n=1000, n_machines=2, repeats=2, n_test=500,
                      random_state=0, backend="sequential", n_init=1))
    rows = [r for r in rows if not (r["value"] == 4 and r["repeat"] == 1)]
    at = new_session("pages/experiments.py")
    meta = dict(source="design", design="two-experts-1d", d=1, parameter="n_machines", values="2, 4", n=1000, M=2,
                K=2, restarts=1, support_size=None, seed=0, repeats=2, include_global=True, variance_update="debiased",
                split=None)
    at.session_state["sweep_rows"], at.session_state["sweep_meta"] = rows, meta
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c.value for c in at.caption if "2 repeat(s) asked, the sweep stopped early: 2 at number of machines M = 2; "
            "1 at number of machines M = 4" in c.value]
    table = at.dataframe[0].value
    assert list(table["repeats"]) == [2, 2, 1, 1], table


def test_text_columns_left_out_of_the_inputs_are_named_with_a_cell():
    frame = _line(40).assign(weight=[f"{50 + i / 10:.1f} kg" for i in range(40)],
                             day=[f"2026-01-{1 + i % 28:02d}" for i in range(40)])
    at = new_session()
    _upload(at, "units.csv", frame.to_csv(index=False).encode(), use=False)
    assert at.multiselect(key="csv_x").value == ["x"]
    assert [i.value for i in at.info if i.value.startswith("Text, so not among the inputs: weight (e.g. 50\\.0 kg), "
                                                           "day (e.g. 2026\\-01\\-01)")]


def test_a_support_sweep_says_the_supporting_sample_each_value_ran_with():
    # 0.001 of floor(n / 4M) ran with K = 3 points, and the page said "S = the paper's floor(n / 4M)".
    at = new_session("pages/experiments.py", {"xn": "2000", "xM": "2", "xrep": "1", "xp": "support_fraction",
                                              "xvS": "0.001,4"})
    at.button(key="btn_sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c.value for c in at.caption if "S used 0.001 x floor(n / 4M): 3 (raised to K), 4 x floor(n / 4M): 1,000"
            in c.value]


def test_a_sweep_through_one_machine_says_its_time_is_not_a_speed_up():
    at = new_session("pages/experiments.py", {"xn": "500", "xM": "1", "xrep": "1", "xp": "n_experts", "xvK": "1,2"})
    at.button(key="btn_sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c.value for c in at.caption if c.value.startswith("At M = 1 the distributed fit is one local fit of the "
                                                               "same rows as the global EM, not a speed-up") and
            "on 500 rows runs 4 whole portfolio(s)" in c.value]
