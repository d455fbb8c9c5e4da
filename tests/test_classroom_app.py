"""What a class reads, in AppTest sessions: the Learn walk-through (no negative decrease, the
step button disabled at the end), the Experiments support box and hint, the communication line
after new data, the cost model's sentence next to the speed-up."""

import re

import numpy as np
import pytest
from app_helpers import new_session as session


def texts(at):
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def status(at):
    return next(t for t in texts(at) if t.startswith("**Iteration "))


@pytest.mark.parametrize("seed", [1, 4])
def test_learn_steps_to_the_end_without_a_negative_decrease(seed):
    at = session("pages/learn.py")
    at.number_input(key="cfg_learn_seed").set_value(seed).run()
    last = int(re.search(r"of (\d+)\*\*", status(at)).group(1))
    assert at.button(key="learn_prev").disabled and not at.button(key="learn_next").disabled
    for i in range(1, last + 1):
        at.button(key="learn_next").click().run()
        text = status(at)
        assert text.startswith(f"**Iteration {i} of {last}**")
        assert re.search(r"R = \d\.\d{5}, (down \d\.\d\de[+-]\d\d|unchanged from the previous iterate)", text), text
        assert not re.search(r"down -", text)
    assert at.button(key="learn_next").disabled and "MM has stopped" in status(at)
    at.button(key="learn_reset").click().run()
    assert status(at).startswith("**Iteration 0 of")


def test_experiments_greyed_support_is_the_size_the_runs_use():
    at = session("pages/experiments.py")
    at.number_input(key="exp_n").set_value(5000).run()
    at.number_input(key="exp_M").set_value(8).run()
    box = at.number_input(key="exp_support_size")
    assert box.disabled and box.value == 5000 // (4 * 8) == 156


def test_experiments_hint_promises_a_fall_only_where_the_cost_model_predicts_one():
    at = session("pages/experiments.py")
    at.number_input(key="exp_n").set_value(5000).run()
    hint = " ".join(i.value for i in at.info)
    assert "need not fall" in hint and "see the learning time fall while" not in hint
    at.number_input(key="exp_n").set_value(1_000_000).run()
    assert "see the learning time fall while" in " ".join(i.value for i in at.info)


def test_communication_line_is_the_fits_own_after_new_data():
    import explorer.data

    at = session()
    fit = at.session_state["fit"]
    n, d = sum(len(i) for i in fit.dm.shards_), fit.dm.params_.n_features
    rng = np.random.default_rng(0)
    # What loading a session file leaves: new data, the old fit.
    at.session_state["data"] = explorer.data.Dataset(rng.normal(size=(3000, 4)), rng.normal(size=3000), "loaded.csv",
                                          ["a", "b", "c", "e"], source="csv")
    at.run()
    line = next(c for c in texts(at) if c.startswith("Communication"))
    assert f"against {n * (d + 1):,} to move the data" in line


def test_fit_page_says_when_distribution_pays():
    at = session()
    note = next(c for c in texts(at) if "When does distribution pay?" in c)
    assert re.search(r"predicts a speed-up of \d+\.\dx", note) and "What would raise it" in note
