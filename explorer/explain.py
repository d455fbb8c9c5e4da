"""What the pages say about a result, decided by plain functions (no Streamlit): the wording of a
change that may be round-off, summaries of long warnings, the machines left out, the EM-curve
axis at many machines, the sentences that explain a speed-up and a wall clock, and the headline
lesson's comparison with the paper.

Each function takes numbers and returns text (or an axis range), so that the tests check what a
class reads without a server.
"""

from __future__ import annotations

import math
import re

import numpy as np

from moecore.shard_check import ratio_text

EPS = np.finfo(float).eps


# ------------------------------------------------------------------------------ round-off
def roundoff(value, n_terms=1) -> float:
    """A bound on the round-off of ``value``, a sum (or mean) of ``n_terms`` non-negative terms
    computed in double precision: n_terms eps |value| (the worst case of a sum in any order)."""
    return max(int(n_terms), 1) * EPS * abs(float(value))


def change_wording(previous, current, n_terms=1, since="from the previous iterate") -> str:
    """How an objective moved between two iterates: "down 1.2e-03 ...", "unchanged ... (within
    round-off)", or "up ..." when it rose by more than round-off.

    ``n_terms``: how many non-negative terms the objective sums (MM: support points x local
    experts); a difference below their round-off (:func:`roundoff`) is no change at all, so it is
    never shown as a negative decrease.
    """
    diff = float(previous) - float(current)
    tol = roundoff(max(abs(float(previous)), abs(float(current))), n_terms)
    if abs(diff) <= tol:
        return f"unchanged {since} (within round-off)"
    if diff > 0:
        return f"down {diff:.2e} {since}"
    return f"up {-diff:.2e} {since} (more than round-off)"


# ------------------------------------------------------------------------------ lists of machines
def number_ranges(numbers) -> str:
    """Sorted integers as runs: [1, 2, 3, 5, 9, 10] -> "1-3, 5, 9-10"."""
    xs = sorted({int(v) for v in numbers})
    runs, start = [], None
    for i, v in enumerate(xs):
        if start is None:
            start = v
        if i + 1 == len(xs) or xs[i + 1] != v + 1:
            runs.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(runs)


SCREENING_ACTIONS = {"refit": "refitted from a better machine's model (the refit passed the check)",
                     "dropped": "left out of the reduction (weights renormalised)",
                     "kept": "kept anyway (screening is off)"}
_ACTION_SHORT = {"refit": "refitted", "dropped": "left out", "kept": "kept (screening off)"}


def screening_summary(report, n_machines, inline=2) -> tuple[str, list[str]]:
    """One line for the screening's flagged machines, and one detail line per machine (none when
    ``inline`` machines or fewer were flagged: the line then holds their details).

    ``report``: a :class:`moecore.screening.ScreeningReport` (machines numbered from 0 there,
    from 1 on screen).  Returns ("", []) when no machine was flagged.
    """
    flagged = list(report.flagged)
    if not flagged:
        return "", []
    details = [flagged_detail(report, m) for m in flagged]
    if len(flagged) <= inline:
        return ("Screening (a local fit stuck in a poor local optimum scores below the others on the supporting "
                "sample, or the best machine's model explains its own rows better): " + "; ".join(details) + "."), []
    by_action = {}
    for m in flagged:
        by_action.setdefault(report.actions.get(m, "kept"), []).append(m + 1)
    what = "; ".join(f"{len(ms)} {_ACTION_SHORT[a]} (machine{'s' if len(ms) > 1 else ''} {number_ranges(ms)})"
                     for a, ms in by_action.items())
    compared = len(getattr(report, "cross_flagged", []))
    line = (f"Screening flagged {len(flagged)} of {n_machines} machines whose local fit scored below the others' "
            "on the supporting sample" + (f" ({compared} of them: whose own rows the best machine's model explained "
                                          "better)" if compared else "") + f" (a poor local optimum): {what}.")
    return line, details


def flagged_detail(report, m) -> str:
    """Why the screening flagged machine ``m`` (from 0) and what it did, in one phrase."""
    action = SCREENING_ACTIONS[report.actions.get(m, "kept")]
    if m in getattr(report, "cross_flagged", []):
        return (f"machine {m + 1}'s own rows were explained {report.cross_gain[m]:.4f} nats per row better by the "
                f"best-scoring machine's model than by its local fit: {action}")
    return (f"machine {m + 1} scored {report.scores[m]:.4f} per point, below the threshold "
            f"{report.threshold[m]:.4f}: {action}")


def retired_summary(retired: dict, K: int, n_machines: int) -> tuple[str, list[str]]:
    """One line for the machines that retired spare experts, and the details (which, which experts).

    ``retired``: {machine (from 0): [retired experts (from 0)]}.
    """
    if not retired:
        return "", []
    ms = sorted(retired)
    # Not always the shard's fault: a K = 4 fit of a small set retired an expert in a poor optimum below the K = 3
    # maximum (the audit of 2026-12-06).
    line = (f"{len(ms)} of {n_machines} machines retired spare experts: fewer than K = {K} in use (a shard that "
            "supports fewer, or a poor optimum); they carry no mass into the reduction.")
    details = [f"machines {number_ranges(m + 1 for m in ms)}"]
    counts = {}
    for m in ms:
        counts.setdefault(len(retired[m]), []).append(m + 1)
    details += [f"{c} expert{'s' if c > 1 else ''} retired on machine{'s' if len(v) > 1 else ''} {number_ranges(v)}"
                for c, v in sorted(counts.items())]
    return line, details


def machines_count(n_fitted: int, n_machines: int, K: int, skipped: dict) -> tuple[str, str]:
    """The "machines M / experts K" figure and a note on the machines left out ("" if none).

    ``skipped``: {machine (from 0): why} (``DistributedMoE.skipped_``).
    """
    value = f"{n_fitted} / {K}"
    left = n_machines - n_fitted
    if left <= 0:
        return value, ""
    which = number_ranges(m + 1 for m in skipped) if skipped else ""
    screened = sum("screening" in str(why) for why in skipped.values())
    failed = len(skipped) - screened
    reasons = [f"{screened} dropped by the screening"] if screened else []
    reasons += [f"{failed} whose local fit failed"] if failed else []
    return value, (f"{left} of {n_machines} machines left out" + (f" ({which})" if which else "")
                   + (": " + ", ".join(reasons) if reasons else "") + ".")


# ------------------------------------------------------------------------------ EM curves
def iteration_axis(counts, *, q=0.95, slack=1.25) -> tuple[int, list[int]]:
    """The last EM iteration to show, and the positions of the curves that run past it.

    At many machines a few slow fits (a poor start, a flat likelihood) iterate far longer than the
    rest and squash every other curve against the left edge.  The axis then ends at the
    ``q``-quantile of the iteration counts and those fits are named instead; when the longest
    curve is within ``slack`` times that quantile, nothing is clipped.
    """
    c = np.asarray(counts, dtype=int)
    if c.size == 0:
        return 1, []
    top = int(np.quantile(c, q, method="higher"))
    if c.max() <= slack * top:
        return int(c.max()), []
    return top, [int(i) for i in np.flatnonzero(c > top)]


def rises_early(curve, top, *, share=0.95, within=0.1) -> bool:
    """Whether ``curve`` (a typical EM curve) gains ``share`` of its rise within the first
    ``within`` of an axis of ``top`` iterations: the rise is then a thin wall at the left edge of a
    linear axis, and a log axis shows it."""
    c = np.asarray(curve, dtype=float)
    if c.size < 2 or top < 20 or not c[-1] > c[0]:
        return False
    reached = np.flatnonzero(c - c[0] >= share * (c[-1] - c[0]))[0] + 1  # iterations are numbered from 1
    return bool(reached <= within * top)


# ------------------------------------------------------------------------------ times
def seconds(t) -> str:
    """Seconds as the Fit page's metrics and timing list show them."""
    return f"{t:.3f} s"


def global_starts(g) -> str:
    """What the global EM ``g`` (a fitted MixtureOfExperts) ran: its whole portfolios of starts, which no
    machine's local fit repeats (docs/method.md section 8, items 6 and 11)."""
    k = int(getattr(g, "n_inits_", 1))
    if k <= 1:
        return "One portfolio of starts, its best continued on all the rows, as each machine's local fit runs."
    return (f"{k} whole portfolios of starts, each from its own seed, the best kept: the global EM repeats its "
            "portfolio on up to 100 000 rows until one confirms the best maximum (on 1 000 rows or fewer, 2-4 of "
            "them, every basin continued), which no machine's local fit does. Part of the speed-up is that "
            "safety skipped; the cost model below says what it is against one portfolio.")


def times(ratio) -> str:
    """A speed-up (or slow-down) factor: "12.3x", and two significant digits below 1 ("0.037x"), where
    one decimal showed a slow-down of 26 as "0.0x"."""
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2g}x"


def nats(gap) -> str:
    """A log-likelihood gap per point as the flights lesson shows it, with its unit."""
    return f"{gap:.5f} nats per point"


def speedup_sentence(parts: dict, global_time: float, n_machines: int) -> str:
    """One sentence: what the speed-up compares, the largest part of the learning time, and why
    the speed-up is above or below 1.  Figures the page shows are in bold, as on the page.

    ``parts``: {term: seconds} of the learning time (``FitCosts.learning_time_parts()``).
    """
    learning = sum(parts.values())
    speedup = global_time / max(learning, 1e-9)
    big = max(parts, key=parts.get)
    if speedup >= 1:
        why = f"its largest part is {big} (**{seconds(parts[big])}**)"
    else:
        # Said by the numbers, not by a cause: "because the global EM is itself quick" was read in the non-IID
        # lesson where the global EM took what the cost model predicts and the edge machines' local fits six
        # times theirs (the audit of 2026-12-06).
        share = parts[big] / global_time
        why = (f"it is below 1: {big} (**{seconds(parts[big])}**) alone takes "
               + ("longer than the global EM on all the rows" if share >= 1 else
                  f"{100 * share:.0f} % of the global EM's time"))
    return (f"The speed-up of **{times(speedup)}** divides the global EM's **{seconds(global_time)}** by the learning "
            f"time **{seconds(learning)}**, which counts the {n_machines} machines as truly parallel; {why}.")


# A measured global EM this many times the cost model's prediction is not noise of shared cores
# (at most a factor of the cores): the data need more EM iterations than the calibration's designs.
ITERATIONS_GAP = 3.0


def cost_model_text(n, d, K, M, *, measured_global=None, **sizes) -> str:
    """What this server's cost model (:mod:`moecore.costmodel`) predicts for these sizes, where the
    speed-up crosses 1 and what would raise it; "" when no calibration is stored
    (``benchmarks/bench_costmodel.py`` writes one).  ``sizes``: S, rounds, restarts, mm_restarts,
    cores, as :meth:`moecore.costmodel.CostModel.explain` takes them.  ``measured_global``: the
    seconds the global EM took on these sizes; :data:`ITERATIONS_GAP` times the prediction or more
    adds why the model's times are too short there."""
    from moecore import costmodel

    try:
        model = costmodel.load()
        text = model.explain(n, d, K, M, **sizes)
    except (OSError, ValueError, KeyError):
        return ""
    predicted = model.global_time(n, d, K, sizes.get("restarts", 1))
    if measured_global is not None and measured_global >= ITERATIONS_GAP * predicted:
        text += (f" Its times count the EM iterations that the synthetic designs it was calibrated on need: this "
                 f"global EM took {measured_global / predicted:.0f}x the time it predicts, as these data need more "
                 "iterations, so read its seconds as a lower bound and its ratios as a guide.")
    return text


def wall_sentence(wall: float, global_time: float, n_machines: int, n_jobs: int, cores: int) -> str:
    """One sentence: why the wall clock of this server differs from the learning time."""
    at_once = max(1, min(n_jobs, cores, n_machines))
    cmp = "longer than" if wall > global_time else "shorter than"
    why = " (n_jobs = 1)" if at_once == 1 < min(cores, n_machines) else ""
    return (f"The wall clock (**{seconds(wall)}**) is what this server took: with {cores} core"
            f"{'s' if cores > 1 else ''} its {n_machines} local fits ran {at_once} at a time{why}, so it is {cmp} the "
            f"global EM's **{seconds(global_time)}**.")


def small_shards_line(shard) -> str:
    """One line for a failed :func:`moecore.shard_check.check_shards` (``shard``), with what to change; "" when
    the shards and the support are large enough."""
    return "" if shard.ok else f"Small shards: {shard.summary}. To fix: {shard.advice}."


def rpe_text(rpe: float, digits: int = 3) -> str:
    """An RPE in %, e.g. "12.346 %"; "not finite" where a prediction overflowed (an input far beyond the
    others, on which a line extrapolates past float64): "inf %" reads as a number."""
    return f"{100 * rpe:.{digits}f} %" if np.isfinite(rpe) else "not finite"


# An RPE below this (0.01 % of y's variance left unexplained) is a perfect fit for any purpose: two such
# fits are not compared by their ratio (8.6e-6 % against 4e-11 % read as "216 053.79x the global EM's").
RPE_NEGLIGIBLE = 1e-4


def _ratio_text(ratio: float, bound: float) -> str:
    """``ratio`` with enough digits to read above ``bound`` (1.2004 showed as "1.20x", "more than 1.2x")."""
    digits = 2
    while digits < 6 and round(ratio, digits) <= bound:
        digits += 1
    return ratio_text(ratio, digits)


def accuracy_warning(rpe_reduction: float, rpe_global: float, rows: str) -> str:
    """One line when the reduction's RPE is more than GLOBAL_RPE_RATIO times the global EM's on the
    same ``rows`` (e.g. "training", "held-out"), with what to change; "" otherwise."""
    from moecore.shard_check import GLOBAL_RPE_RATIO

    if np.isfinite(rpe_global) and not np.isfinite(rpe_reduction):
        return (f"The reduction's {rows} RPE is not finite: its prediction overflowed on some row, where an input "
                "lies far beyond the others and an expert's line extrapolates past the largest number (the global "
                f"EM's is {rpe_text(rpe_global, 3)}). To fix: leave out the outlying rows (Data page), or rescale "
                "that input.")
    if not rpe_global > 0 or not rpe_reduction > GLOBAL_RPE_RATIO * rpe_global or rpe_reduction <= RPE_NEGLIGIBLE:
        return ""
    return (f"The reduction's {rows} RPE ({100 * rpe_reduction:.3g} %) is "
            f"{_ratio_text(rpe_reduction / rpe_global, GLOBAL_RPE_RATIO)} the "
            f"global EM's ({100 * rpe_global:.3g} %), more than the {GLOBAL_RPE_RATIO:g}x the shard rule aims at. "
            "To fix: 1-3 refinement rounds, fewer machines or a larger supporting sample; or another K "
            "(Experiments page, Choose K).")


def renumbered(message: str, numbers=None) -> str:
    """A moecore message naming an expert by its index ("Expert 2 (numbered from 0)") with the expert named
    as the page numbers it: "Reduced expert {numbers[2] + 1}" (``numbers`` (K,): each expert's place on the
    page, figures.reduced_colors; None: its index + 1)."""
    return re.sub(r"\bExpert (\d+) \(numbered from 0\)",
                  lambda match: f"Reduced expert {_number(int(match.group(1)), numbers)}", message)


def expert_rows_warning(check, rounds: int, numbers=None) -> str:
    """The page's words for moecore's verdict on experts too rare to split (``check``: an
    :class:`moecore.shard_check.ExpertRows`, or None); "" when it is fine.  ``numbers``: as
    :func:`renumbered`."""
    if check is None or check.ok:
        return ""
    k = int(np.argmin(check.rows))
    more = f" ({len(check.sparse) - 1} more under {check.needed:.0f})" if len(check.sparse) > 1 else ""
    fewer = check.machines_advice()
    if check.rows[k] < 1:
        fix = "fewer experts (Experiments page, Choose K): one with under a row per machine may not be in the data"
    elif rounds:
        fix = f"{fewer} (more rounds will not help below this)"
    else:
        fix = f"1 refinement round (it re-estimates every expert on all the rows), or {fewer}"
    return (f"Reduced expert {_number(k, numbers)} has about {check.rows[k]:.1f} rows on each machine{more}, too few "
            f"to estimate its line and variance (at least {check.needed:.0f}): its parameters can be far from the "
            f"global EM's while the predictions look fine. To fix: {fix}.")


def _number(k, numbers):
    """The page's number (from 1) of the model's expert ``k``: see :func:`renumbered`."""
    return (k if numbers is None else int(numbers[k])) + 1


def expert_spread_warning(check, rounds: int, numbers=None) -> str:
    """The page's words for moecore's verdict on reduced variances that hold the machines'
    disagreement (``check``: a :class:`moecore.reduction.ExpertSpread`, or None); "" when it is fine.
    ``numbers``: as :func:`renumbered`."""
    from moecore.reduction import SPREAD_ROUNDS

    if check is None or check.ok:
        return ""
    k = max(check.flagged, key=lambda j: check.excess[j])
    more = f" ({len(check.flagged) - 1} more)" if len(check.flagged) > 1 else ""
    ran = f" ({rounds} ran)" if rounds else ""
    return (f"About {100 * check.excess[k]:.0f} % of reduced expert {_number(k, numbers)}'s variance is disagreement "
            f"between the machines{more}: their lines spread {ratio_text(check.ratio[k], 1)} more than their "
            "estimation noise explains (poor local fits, an expert too rare to split, or a model the data do not "
            "follow), so the variance comes out too large while the predictions look fine. To fix: "
            f"{SPREAD_ROUNDS} refinement rounds{ran} (they re-estimate it on all the rows), or fewer machines.")


# Said after the outlier line on the pages that fit (Fit, Compare): where to act on it.
OUTLIERS_ON_DATA_PAGE = " The Data page names them and can leave them out."


def outliers_warning(outliers) -> tuple[str, list[str]]:
    """The page's words for :func:`moecore.outliers.find_outliers`' verdict: one line, and one detail per
    column; ("", []) when there is nothing."""
    if outliers.ok:
        return "", []
    n_rows = len(outliers.rows)
    where = ", ".join(f"{c.name} ({len(c.rows)})" if len(c.rows) > 1 else c.name for c in outliers.columns)
    line = (f"Outlying rows: {n_rows} far beyond all the others ({where}). A Gaussian mixture of experts widens an "
            f"expert or merges two to cover {'them' if n_rows > 1 else 'it'}, and fits every other row worse. To fix: "
            "leave out rows that are errors; for right ones, a log scale may suit a positive, skewed column.")
    details = [f"{c.describe()}." for c in outliers.columns]
    return line, [d[:1].upper() + d[1:] for d in details]


def tied_inputs_warning(groups, x_names) -> str:
    """The page's words for inputs a linear relation ties (``groups``: lists of column indices, from
    :func:`moecore.collinear.collinear_columns`); "" when there are none."""
    if not groups:
        return ""
    tied = "; ".join(", ".join(str(x_names[j]) for j in g) for g in groups)
    return (f"Tied inputs ({tied}): a linear relation holds on every row, so no fit can tell their coefficients "
            f"apart. To fix: drop {sum(len(g) - 1 for g in groups)} of them (a full one-hot coding: drop one level).")


def repeats_text(ran: dict, planned: int, parameter: str) -> str:
    """The repeats a sweep ran, for its caption: "3 repeat(s)" when every value ran ``planned``, else which
    values ran how many (a cancelled or interrupted sweep was captioned, and averaged, as if all had run: the
    audit of 2026-12-06).  ``ran``: {value: repeats run}."""
    if all(r == planned for r in ran.values()):
        return f"{planned} repeat(s)"
    by = {}
    for v, r in sorted(ran.items()):
        by.setdefault(r, []).append(f"{v:g}")
    return (f"{planned} repeat(s) asked, the sweep stopped early: "
            + "; ".join(f"{r} at {parameter} = {', '.join(vs)}" for r, vs in sorted(by.items(), reverse=True))
            + " (the means below are over those)")


def sweep_accuracy_warning(rpes: dict, parameter: str) -> str:
    """One line naming the sweep's values where the reduction's mean held-out RPE is more than
    GLOBAL_RPE_RATIO times the global EM's; ``rpes``: {value: (reduction, global)}; "" if none."""
    from moecore.shard_check import GLOBAL_RPE_RATIO

    bad = [f"{v:g} ({_ratio_text(r / g, GLOBAL_RPE_RATIO)})" for v, (r, g) in sorted(rpes.items())
           if g > 0 and r > GLOBAL_RPE_RATIO * g and r > RPE_NEGLIGIBLE]
    if not bad:
        return ""
    return (f"At {parameter} = {', '.join(bad)} the reduction's mean held-out RPE is more than "
            f"{GLOBAL_RPE_RATIO:g}x the global EM's. To fix there: refinement rounds, fewer machines or a larger "
            "supporting sample.")


def paper_rpe_sentence(rpe_reduction: float, rpe_global: float, paper_reduction: float,
                       paper_global: float) -> str:
    """The headline lesson's RPEs against the paper's: why they differ, and the comparable ratio.

    RPEs in %, in bold as the lesson's table shows them.
    """
    ours, theirs = rpe_reduction / rpe_global, paper_reduction / paper_global
    if math.isclose(ours, theirs, rel_tol=0.05):
        verdict = "the reduction loses as much against the global EM as in the paper"
    elif ours < theirs:
        verdict = "the reduction comes closer to the global EM than in the paper"
    else:
        verdict = "the reduction stays further from the global EM than in the paper"
    return (f"The RPEs themselves differ from the paper's (**{rpe_reduction:.2f} %** against "
            f"**{paper_reduction:.2f} %**) "
            "because the design and its noise level differ: the RPE of even the true model depends on the noise. "
            f"The comparable figure is the ratio reduction / global EM: {ours:.2f} in this run, {theirs:.2f} in the "
            f"paper: {verdict}.")


def flagged_curve_note(action: str) -> str:
    """Which EM curve a flagged machine shows: its refit replaced the stuck fit, a kept fit is the
    stuck one, a dropped machine has none."""
    return {"refit": "Its curve in the EM plot (red, dashed) is the refit's, which passed the check; the stuck "
                     "first fit is no longer drawn.",
            "kept": "Its curve in the EM plot (red, dashed) is the stuck fit itself: it was kept.",
            "dropped": "It is left out of the reduction, so it has no curve in the EM plot."}[action]


def flagged_curve_label(machine: int, action: str) -> str:
    """The legend entry of a flagged machine's EM curve (``machine`` from 0)."""
    return {"refit": f"machine {machine + 1} (flagged; its refit)",
            "kept": f"machine {machine + 1} (flagged; the stuck fit, kept)"}.get(
        action, f"machine {machine + 1} (flagged, {action})")
