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
