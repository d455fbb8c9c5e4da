"""A run that does work (a fit, a comparison, a sweep, choosing K) draws the page in the same places as
the plain run after it (explorer.chrome, "a stable layout").

Streamlit places an element by its position among its siblings.  A progress bar drawn during a fit and
emptied after it still held a place, so the next run put every element below it one place higher, and
the browser drew the expanders there anew, closed: a model uploaded into "Apply a saved model" right
after a fit vanished with its expander (found in Chromium, tests/test_browser_real_data.py).
"""

import pytest
from app_helpers import new_session, run_sweep

pytestmark = pytest.mark.slow


# The blocks whose open or chosen state lives in the browser, keyed by where they are drawn.
STATEFUL = ("expander", "tab", "popover")


def layout(at):
    """The page's top-level element types in order, and {(type, label): position path} of every expander,
    tab and popover."""
    places = {}

    def walk(node, path):
        for i, child in getattr(node, "children", {}).items():
            kind = getattr(child, "type", None)
            if kind in STATEFUL:
                places[(kind, child.label)] = (*path, i)
            walk(child, (*path, i))

    walk(at.main, ())
    return [getattr(child, "type", None) for _, child in sorted(at.main.children.items())], places


def assert_same_places(before, after, what):
    assert before[0] == after[0], f"{what}: the plain run after it drew the page's top level otherwise"
    moved = {k: (before[1].get(k), after[1].get(k)) for k in before[1].keys() | after[1].keys()
             if before[1].get(k) != after[1].get(k)}
    assert not moved, f"{what}: the plain run after it drew these elsewhere: {moved}"


def test_the_fit_page_keeps_its_places_after_a_fit():
    at = new_session("pages/fit.py")
    at.number_input(key="cfg_M").set_value(6).run()
    at.button(key="btn_fit").click().run()
    assert not at.exception and at.session_state["fit"].settings["M"] == 6
    after_fit = layout(at)
    assert any(lab.startswith("Apply a saved model") for _, lab in after_fit[1])
    at.run()
    assert_same_places(after_fit, layout(at), "a fit")


def test_the_compare_page_keeps_its_places_after_a_comparison():
    at = new_session("pages/compare.py")  # the first visit compares by itself
    first = layout(at)
    at.run()
    assert_same_places(first, layout(at), "the first visit's comparison")
    at.button(key="btn_compare").click().run()
    clicked = layout(at)
    at.run()
    assert_same_places(clicked, layout(at), "a comparison")


def test_the_experiments_page_keeps_its_places_after_a_sweep_and_after_choosing_k():
    at = new_session("pages/experiments.py")
    assert run_sweep(at, "n_machines", "2, 4", n=1500, M=2)
    swept = layout(at)
    at.run()
    assert_same_places(swept, layout(at), "a sweep")
    at.text_input(key="k_values").input("1, 2").run()
    at.button(key="btn_choose_k").click().run()
    assert "k_selection" in at.session_state
    chosen = layout(at)
    at.run()
    assert_same_places(chosen, layout(at), "choosing K")


@pytest.mark.parametrize("page", ["pages/data.py", "pages/fit.py", "pages/learn.py", "pages/lessons.py"])
def test_a_first_visit_keeps_its_places(page):
    at = new_session(page)
    first = layout(at)
    at.run()
    assert_same_places(first, layout(at), f"the first visit of {page}")
