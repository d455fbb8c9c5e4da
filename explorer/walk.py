"""The Learn page's live example, stepped through one MM iterate at a time.

The walk-through (every MM iterate of a small reduction) is computed once per (M, seed, start)
and shared read-only by every session (``runs.learn_example``); each iterate's figures are built
once and kept (:func:`step_figures`); a step reruns only this part of the page (a fragment) and
redraws only its figures.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from moecore.model import MoEParams

from . import chrome, explain, figures, runs


def status_line(walk, i) -> str:
    """"Iteration i of last ..., R = ..., down / unchanged ..." for iterate ``i`` of ``walk``.

    A difference within the round-off of R (a mean over S support points of sums over the L
    local experts) is "unchanged", never a negative decrease.
    """
    states, last = walk.states, len(walk.states) - 1
    R = states[i].objective
    text = f"**Iteration {i} of {last}** (MM stops when R no longer decreases). R = {R:.5f}"
    if i:
        terms = walk.problem.S * walk.problem.mass.shape[1]
        text += ", " + explain.change_wording(states[i - 1].objective, R, terms)
    return text + (". The last iterate: MM has stopped." if i == last else ".")


def plan_sentence(walk, i) -> str:
    problem, stt = walk.problem, walk.states[i]
    return (f"At this iterate the **plan** sends each of the {problem.mass.shape[1]} local experts' mass at each of "
            f"the {problem.S} support points to its cheapest reduced expert"
            + ("." if i == 0 else f"; {walk.moved(i)} of {stt.assignment.size} (point, component) pairs changed "
                                  "expert since the last iterate.")
            + " The **experts** shown were refitted to the plan of the previous iterate.")


@st.cache_resource(max_entries=512, show_spinner=False)
def step_figures(M: int, seed: int, init: str, i: int) -> dict:
    """The four figures of iterate ``i`` (built once; shared read-only, as the walk-through)."""
    walk = runs.learn_example(M, seed, init)
    problem, states, sim = walk.problem, walk.states, walk.data
    last = len(states) - 1
    hist = [s.objective for s in states]
    curve = figures.mm_figure(hist[: i + 1], mark=i)
    curve.update_xaxes(range=[-0.5, max(last, 1) + 0.5])
    plan = walk.plan_at(i)
    # Each reduced expert keeps one colour through the walk, that of the true expert its last iterate matches,
    # as on the Data and Fit pages (in the order MM numbered them, blue was another line there).
    final = states[-1]
    K = final.variances.shape[0]
    end = MoEParams(np.zeros((problem.p, K)), problem.experts_original(final.experts_std), final.variances)
    col = figures.reduced_colors(end, sim.params)
    return dict(
        step=figures.mm_step_figure(problem, states[i], truth=sim.params, colors=col),
        curve=curve,
        plan=figures.coupling_figure(plan.coupling, problem.large.machine, problem.large.expert, colors=col,
                                     title=f"Transport plan at iteration {i}: mass (%) from each local expert"),
        large=figures.large_mixture_figure(problem.large, sim.X, colors_of_component=col[plan.dominant()]),
    )


def _move(delta, last):
    ss = st.session_state
    ss["learn_step"] = min(max(ss.get("learn_step", 0) + delta, 0), last) if delta is not None else 0


@st.fragment
def live_example(M: int, seed: int, init: str):
    """The step buttons and the views of the current iterate; a click reruns only this part."""
    walk = runs.learn_example(M, seed, init)
    ss = st.session_state
    example = (M, seed, init)
    if ss.get("learn_cfg") != example:
        ss["learn_cfg"], ss["learn_step"] = example, 0
    last = len(walk.states) - 1
    i = min(ss.get("learn_step", 0), last)
    # Buttons as wide as their words (in st.columns a narrow window cut them to "Ne…"); the status after them.
    row = st.container(horizontal=True, vertical_alignment="center")
    # Callbacks run before the fragment draws, so the buttons' enabled state is that of the new step.
    row.button("◀ Previous", key="learn_prev", on_click=_move, args=(-1, last), disabled=i == 0)
    row.button("Next MM step ▶", type="primary", key="learn_next", on_click=_move, args=(1, last), disabled=i == last)
    row.button("Reset", key="learn_reset", on_click=_move, args=(None, last), disabled=i == 0)
    row.container(key="learn_status").markdown(status_line(walk, i))
    figs = step_figures(M, seed, init, i)
    left, right = chrome.pair("learn_step", (3, 2))
    chrome.chart(figs["step"], "learn_fig", where=left)
    with right:
        chrome.chart(figs["curve"], "learn_R")
        st.markdown(plan_sentence(walk, i))
    chrome.chart(figs["plan"], "learn_plan")
    chrome.chart(figs["large"], "learn_large")
    st.caption("The large mixture's gates, coloured by the reduced expert the current plan sends each component to.")
