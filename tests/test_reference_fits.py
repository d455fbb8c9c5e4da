"""Fits bitwise equal to those stored from the code before the estimators were restructured.

``tests/data/make_reference_fits.py`` fits every shipped design and a set of variants (rounds,
screening refit/drop/off with flagged machines, gate targets, variance updates, non-IID splits with
covariate weights and warm refits, BIC local experts, machine labels given to fit) with every
parameter written out, and stores gates, experts, variances, the one-shot and local models, the MM
history, the plan and the bookkeeping in ``reference_fits.npz``.  Refactoring moves code; it must not
move a single bit of these numbers.  One case was rewritten since, by a deliberate change of the
method: "poor-refit", when a flagged machine came to refit from the best-scoring machine's model
instead of four fresh starts (the same basin: its refit's experts equal to 1e-4, in another order; the
25 numbers sent to it are counted). And on 2026-12-06 "kmeans-constant" (rewritten from a znver4-SkylakeX
machine, every other array equal to rounding): machine 3's local fit retires an expert, whose gate logits
are now pinned 50 below the mean of the others' after every gate step (moecore.em's ``_retire``); its gate
coefficients and the machines' scores moved, the reduced model by 2e-11. The same day, three cases whose
machines refit from a warm start ("machine-labels", "poor-refit", "region-covariate"): a warm start now
begins at the given parameters, not at their smoothed responsibilities (moecore.em ``_best_run``); the
refits of "poor-refit" and "region-covariate" moved by 1e-5 and 1e-7 of their scale (the same basins),
and machine 0's refit in "machine-labels" scores 0.0085 nats per support point higher, its reduced
variances moving by up to 0.0064.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).with_name("data")
_spec = importlib.util.spec_from_file_location("make_reference_fits", DATA / "make_reference_fits.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

stores = reference.stores
STORED, BITWISE = stores.load(reference.PATH)
CASES = reference.cases()


def test_every_case_is_stored_and_nothing_else():
    stored_cases = {key.split("/")[0] for key in STORED}
    assert stored_cases == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_is_bitwise_the_stored_one(case):
    # Bitwise on the kind of machine that wrote the store, to rounding on others (tests/data/stores.py).
    got = CASES[case]()
    expected = {key.split("/", 1)[1]: STORED[key] for key in STORED if key.startswith(case + "/")}
    assert set(got) == set(expected)
    differ = stores.differ(got, expected, BITWISE)
    assert not differ, f"{case}: {differ} differ from the stored fit ({'bitwise' if BITWISE else 'to rounding'})"


def test_the_comparison_sees_a_one_ulp_change():
    # The check above can only fail if a tiny change is visible to it.
    gates = STORED["dmoe:teaching-1d/gates"]
    assert not np.array_equal(np.nextafter(gates, np.inf), gates)


def test_stores_are_bitwise_on_their_machine_and_to_rounding_elsewhere(tmp_path):
    path = tmp_path / "fits.npz"
    a = {"x": np.array([1.0, -2.0, 3.0]), "n": np.array([4])}
    stores.write(path, a)
    got, bitwise = stores.load(path)
    assert bitwise and stores.differ(a, got, bitwise) == []
    one_ulp = dict(a, x=np.nextafter(a["x"], np.inf))
    assert stores.differ(one_ulp, got, True) == ["x"] and stores.differ(one_ulp, got, False) == []
    assert stores.differ(dict(a, x=a["x"] * (1 + 1e-5)), got, False) == ["x"]  # a real change
    assert stores.differ(dict(a, n=np.array([5])), got, False) == ["n"]  # counts exactly
    # Another machine rewrote the store: this machine's own file is stale, so rounding it is.
    stores.own_path(path).rename(tmp_path / "kept.npz")
    np.savez_compressed(path, **{**a, "x": one_ulp["x"], stores.REVISION: np.array("other")})
    (tmp_path / "kept.npz").rename(stores.own_path(path))
    got, bitwise = stores.load(path)
    assert not bitwise and stores.differ(a, got, bitwise) == []
