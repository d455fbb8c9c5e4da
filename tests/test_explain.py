"""What the pages say, decided by explorer.explain's plain functions: round-off, long warnings,
machines left out, the EM-curve axis at many machines, speed-up and wall clock, the paper."""

import re

import numpy as np
import pytest

from explorer import explain as ex
from moecore.screening import ScreeningReport


# ------------------------------------------------------------------------------ round-off
def test_roundoff_change_is_unchanged_not_a_negative_decrease():
    # The Learn page's case: R = 0.00743 after an MM step that changed nothing, S L = 125 x 24 terms.
    text = ex.change_wording(0.00743, 0.00743 + 2.08e-17, n_terms=125 * 24)
    assert text.startswith("unchanged") and "within round-off" in text
    assert not re.search(r"-\d", text)  # no negative number


def test_a_real_decrease_is_quoted_with_its_value():
    text = ex.change_wording(0.0100, 0.0074, n_terms=3000)
    assert text == "down 2.60e-03 from the previous iterate"


def test_a_rise_beyond_roundoff_is_said_as_a_rise():
    assert ex.change_wording(0.0074, 0.0100, n_terms=3000).startswith("up 2.60e-03")


def test_roundoff_scales_with_the_terms_and_the_value():
    assert ex.roundoff(1.0, 1000) == pytest.approx(1000 * np.finfo(float).eps)
    assert ex.roundoff(-2.0, 1) == pytest.approx(2 * np.finfo(float).eps)
    # Just above the bound is a change; just below is none.
    tol = ex.roundoff(1.0, 10)
    assert ex.change_wording(1.0, 1.0 - 2 * tol, 10).startswith("down")
    assert ex.change_wording(1.0, 1.0 - 0.5 * tol, 10).startswith("unchanged")


@pytest.mark.parametrize("seed", range(5))
def test_no_wording_of_mm_iterates_shows_a_negative_decrease(seed):
    """Every step of a real MM walk-through is worded as down or unchanged (MM never increases R)."""
    from explorer.teaching import mm_walkthrough

    walk = mm_walkthrough(4, seed, "local", n=1200, max_iter=40)
    terms = walk.problem.S * walk.problem.mass.shape[1]
    for a, b in zip(walk.states, walk.states[1:], strict=False):
        text = ex.change_wording(a.objective, b.objective, terms)
        assert re.match(r"(down \d\.\d\de[+-]\d\d |unchanged )", text), text


# ------------------------------------------------------------------------------ lists of machines
def test_number_ranges():
    assert ex.number_ranges([10, 9, 1, 2, 3, 5, 3]) == "1-3, 5, 9-10"
    assert ex.number_ranges([]) == ""
    assert ex.number_ranges(range(1, 231)) == "1-230"


def _report(M, flagged, actions):
    scores = np.linspace(-1.0, -1.2, M)
    return ScreeningReport(scores=scores, threshold=np.full(M, -1.5), flagged=flagged, actions=actions)


def test_screening_summary_is_one_line_with_one_detail_per_machine():
    flagged = list(range(3, 17))
    actions = dict.fromkeys(flagged[:12], "refit") | dict.fromkeys(flagged[12:], "dropped")
    line, details = ex.screening_summary(_report(256, flagged, actions), 256)
    assert "\n" not in line and "14 of 256 machines" in line
    assert "12 refitted (machines 4-15)" in line and "2 left out (machines 16-17)" in line
    assert len(details) == 14 and details[0].startswith("machine 4 scored")
    assert ex.screening_summary(_report(8, [], {}), 8) == ("", [])


def test_retired_summary_names_every_machine_once_in_the_details():
    retired = {m: [8, 9] if m % 2 else [9] for m in range(230)}
    line, details = ex.retired_summary(retired, 10, 256)
    assert line.startswith("230 of 256 machines retired spare experts") and "K = 10" in line
    # Not always the shard's fault: phones at K = 4 retired experts in poor optima (the audit of 2026-12-06).
    assert "(a shard that supports fewer, or a poor optimum)" in line
    assert len(line) < 200  # one line, not 230 machine numbers
    assert details[0] == "machines 1-230"
    assert "1 expert retired on machines" in details[1] and "2 experts retired on machines" in details[2]


def test_machines_count_states_the_dropped_machines():
    value, note = ex.machines_count(249, 256, 10, {3: "local fit scored -2 on the support, below the screening "
                                                      "threshold -1.5", 7: "LinAlgError: singular"})
    assert value == "249 / 10"
    assert note.startswith("7 of 256 machines left out (4, 8)")
    assert "1 dropped by the screening" in note and "1 whose local fit failed" in note
    assert ex.machines_count(8, 8, 3, {}) == ("8 / 3", "")


# ------------------------------------------------------------------------------ EM axis
def test_iteration_axis_clips_at_the_p95_and_names_the_outliers():
    counts = [20] * 200 + [25] * 46 + [300, 280, 150]
    top, outliers = ex.iteration_axis(counts)
    assert top == 25
    assert outliers == [246, 247, 248]


def test_iteration_axis_does_not_clip_close_counts():
    assert ex.iteration_axis([20, 22, 24, 26]) == (26, [])
    assert ex.iteration_axis([]) == (1, [])


def test_rises_early():
    fast = -1 + np.exp(-np.arange(300) / 3.0) * -1  # its rise is over in ~10 of 300 iterations
    assert ex.rises_early(fast, 300)
    slow = np.linspace(-2, -1, 300)
    assert not ex.rises_early(slow, 300)
    assert not ex.rises_early(fast[:15], 15)  # a short axis shows any rise


# ------------------------------------------------------------------------------ times and the paper
PARTS = {"slowest local fit": 0.05, "screening": 0.002, "slowest refit or comparison": 0.0, "reduction": 0.06}


def test_speedup_sentence_names_its_largest_part_and_why_below_one():
    text = ex.speedup_sentence(PARTS, 0.016, 8)
    assert "**0.14x**" in text and "below 1" in text and "reduction (**0.060 s**)" in text
    # 60 ms of reduction against 16 ms of global EM: said by the numbers ("because the global EM is itself
    # quick" was read where the edge machines' local fits were slow, the audit of 2026-12-06)
    assert "alone takes longer than the global EM on all the rows" in text and "quick" not in text
    assert "alone takes 75 % of the global EM's time" in ex.speedup_sentence(PARTS, 0.08, 8)
    above = ex.speedup_sentence(PARTS, 2.21, 128)
    assert "**19.7x**" in above and "below 1" not in above and "128 machines" in above
    assert "**2.210 s**" in above and "**0.112 s**" in above
    assert text.count(". ") == 0  # one sentence


def test_wall_sentence_says_why_the_wall_clock_exceeds_the_global_em():
    text = ex.wall_sentence(2.66, 2.21, 128, 2, 2)
    assert "**2.660 s**" in text and "2 at a time" in text and "longer than" in text
    assert text.count(". ") == 0
    assert "shorter than" in ex.wall_sentence(0.5, 2.21, 8, 8, 8)
    assert "1 at a time (n_jobs = 1)" in ex.wall_sentence(0.5, 2.21, 8, 1, 2)
    assert "(n_jobs" not in ex.wall_sentence(0.5, 2.21, 8, 1, 1)  # one core: nothing else to run on


def test_paper_rpe_sentence_compares_ratios():
    text = ex.paper_rpe_sentence(9.91, 9.88, 1.45, 1.03)
    assert "1.00 in this run, 1.41 in the paper" in text and "comes closer" in text
    assert "loses as much" in ex.paper_rpe_sentence(1.45, 1.03, 1.45, 1.03)
    assert "further" in ex.paper_rpe_sentence(3.0, 1.0, 1.45, 1.03)


def test_cost_model_text_says_when_the_data_need_more_em_iterations():
    """The cost model folds the designs' EM iteration counts into its times: a global EM measured at
    many times its prediction (real data that iterate longer) gets the caveat, one near it does not."""
    from moecore import costmodel

    predicted = costmodel.load().em_time(261_877, 3, 3)
    plain = ex.cost_model_text(261_877, 3, 3, 64)
    assert plain.startswith("On one dedicated core per machine") and "lower bound" not in plain
    assert ex.cost_model_text(261_877, 3, 3, 64, measured_global=1.5 * predicted) == plain
    slow = ex.cost_model_text(261_877, 3, 3, 64, measured_global=16 * predicted)
    assert slow.startswith(plain) and "took 16x the time it predicts" in slow and "lower bound" in slow


def test_expert_rows_warning_says_what_to_change():
    from moecore.shard_check import ExpertRows

    assert ex.expert_rows_warning(None, 0) == ""
    assert ex.expert_rows_warning(ExpertRows(np.ones(2), 9, [], True), 0) == ""
    check = ExpertRows(np.array([300.0, 6.0, 0.5]), 9.0, [1, 2], False, "")
    line = ex.expert_rows_warning(check, 0)
    assert line.startswith("Reduced expert 3 has about 0.5 rows on each machine (1 more under 9)")
    assert "fewer experts (Experiments page, Choose K)" in line
    # 6 rows on each of 16 machines: 96 in all, 9 per machine needed, so at most 10 machines.
    check = ExpertRows(np.array([300.0, 6.0]), 9.0, [1], False, "", max_machines=10)
    line = ex.expert_rows_warning(check, 0)
    assert "1 refinement round" in line and "at most 10 machines" in line
    with_rounds = ex.expert_rows_warning(check, 1)
    assert "refinement round (" not in with_rounds and "more rounds will not help" in with_rounds
    # 6 rows on each of 2 machines: 12 in all, not two machines' worth.
    assert "one machine" in ex.expert_rows_warning(ExpertRows(np.array([300.0, 6.0]), 9.0, [1], False, "", 1), 0)
