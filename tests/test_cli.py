"""The command-line entry runs a real comparison and prints the metrics table."""

import subprocess
import sys

from moecore.cli import main


def test_compare_prints_a_table_for_every_method(capsys, tmp_path):
    out_csv = tmp_path / "t.csv"
    rc = main(["compare", "--design", "teaching-1d", "--n", "6000", "--n-test", "2000", "--machines", "4",
               "--n-jobs", "1", "--backend", "sequential", "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert rc == 0
    for method in ("reduction", "global", "weighted average", "median", "single machine"):
        assert method in out
    for col in ("rpe", "ari", "mse_experts", "transport_divergence", "loglik"):
        assert col in out
    assert "learning time" in out and "wall clock" in out
    assert out_csv.read_text().count("\n") == 6


def test_bad_arguments_give_a_message_not_a_traceback(capsys):
    rc = main(["compare", "--n", "100", "--machines", "64", "--n-jobs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "n_machines=64 is too large" in err and "Traceback" not in err


def test_module_entry_point_lists_designs():
    out = subprocess.run([sys.executable, "-m", "moecore", "designs"], capture_output=True, text=True,
                         check=True).stdout
    assert "teaching-1d" in out and "separated-2d" in out


def _csv(tmp_path, n=900, seed=0):
    """A teaching-1d sample as a user's CSV: the response in the second column, named 'target'."""
    import pandas as pd

    from moecore.simulation import simulate_design

    sim = simulate_design("teaching-1d", n, random_state=seed)
    path = tmp_path / "mine.csv"
    pd.DataFrame({"dose": sim.X[:, 0], "target": sim.y}).to_csv(path, index=False)
    return path


def test_compare_runs_on_a_users_file_with_a_held_out_share(capsys, tmp_path):
    path = _csv(tmp_path)
    rc = main(["compare", "--data", str(path), "--response", "target", "-K", "3", "-M", "2", "--test-size", "0.25",
               "--n-jobs", "1", "--backend", "sequential"])
    out = capsys.readouterr().out
    assert rc == 0
    # 25 % of 900 rows held out (train_test_split rounds the held-out share up): 675 fitted, 225 scored.
    assert f"data={path} (target ~ dose), 25% held out: n=675 M=2 K=3" in out and "test n=225" in out
    for method in ("reduction", "global", "weighted average"):
        assert method in out


def test_compare_on_a_shipped_set_takes_its_suggested_k(capsys):
    rc = main(["compare", "--data", "faithful", "-M", "2", "--n-jobs", "1", "--backend", "sequential"])
    out = capsys.readouterr().out
    assert rc == 0 and "data=faithful (eruptions ~ waiting)" in out and "K=2" in out and "test n=55" in out


def test_choose_k_reads_a_users_file(capsys, tmp_path):
    rc = main(["choose-k", "--data", str(_csv(tmp_path)), "--response", "target", "--ks", "1,2,3", "--n-jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "900 rows, 1 input(s)" in out and "BIC chooses K = " in out


def test_data_problems_are_one_line_naming_what_to_change(capsys, tmp_path):
    path = _csv(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("y,x,colour\n1,2,red\n2,3,blue\n3,4,red\n4,5,red\n")
    cases = [
        (["compare", "--data", str(path), "--response", "target"], "--experts (-K) is needed with --data"),
        (["compare", "--data", str(bad), "-K", "2"], "column 'colour' is not numeric"),
        (["choose-k", "--data", str(bad)], "column 'colour' is not numeric"),
        (["compare", "--data", str(path), "--response", "dosage", "-K", "2"], "no response column 'dosage'"),
        (["compare", "--data", str(tmp_path / "none.csv"), "-K", "2"], "does not exist and is not a shipped data set"),
        (["compare", "--data", "faithful", "--response", "waiting"], "--response is for a --data file"),
        (["compare", "--design", "teaching-1d", "--response", "y"], "--response is for --data"),
        (["compare", "--data", "faithful", "--n", "100"], "--data fits its own rows, with --test-size"),
    ]
    for argv, message in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err and "shard" not in err, (argv, err)


def test_outlying_rows_are_named_once_with_the_files_row_numbers(capsys, tmp_path):
    import warnings

    import pandas as pd

    from moecore.outliers import OutlierWarning

    path = _csv(tmp_path)
    frame = pd.read_csv(path)
    frame.loc[5, "target"] = 1e4
    frame.to_csv(path, index=False)
    for argv in (["compare", "--data", str(path), "--response", "target", "-K", "3", "-M", "2", "--n-jobs", "1",
                  "--backend", "sequential"],
                 ["choose-k", "--data", str(path), "--response", "target", "--ks", "1,2", "--n-jobs", "1"]):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            rc = main(argv)
        err = capsys.readouterr().err
        # pandas' row 5 is the file's data row 6, as the file's other messages count ("data row 7, counted from 1
        # below the header"): a reader of both looked one row off (the audit of 2026-12-06).
        assert rc == 0 and err.count("warning: Outlying rows: row 6 (target = 10000)") == 1
        assert "Data rows are counted from 1 below the file's header" in err
        # The fits see a training split, whose row numbers are not the file's: their warning is left out.
        assert not [w for w in record if issubclass(w.category, OutlierWarning)]


def test_compare_times_its_fits_after_a_warm_up_of_the_same_settings(capsys, monkeypatch):
    # Starting loky's workers and loading the kernels (0.45 s of a 6 250-row local fit) was counted in the
    # slowest local fit: the table said the distributed fit was 4.7x slower than the global EM where it was 1.6x
    # faster (the audit of 2026-12-06). The warm-up fits the command's backend and n_jobs on a few rows first.
    import moecore

    calls = []
    fit = moecore.DistributedMoE.fit

    def recorded(self, X, y, *a, **kw):
        calls.append((self.backend, self.n_jobs, self.n_machines, len(y)))
        return fit(self, X, y, *a, **kw)

    monkeypatch.setattr(moecore.DistributedMoE, "fit", recorded)
    rc = main(["compare", "--design", "teaching-1d", "--n", "3000", "--n-test", "500", "-M", "4", "--n-jobs", "2",
               "--backend", "threading"])
    out = capsys.readouterr().out
    assert rc == 0 and "both measured after a warm-up fit (2,000 rows)" in out
    assert calls[0] == ("threading", 2, 2, 2000) and calls[1] == ("threading", 2, 4, 3000)
