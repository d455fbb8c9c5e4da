"""Plotly figures of the app: plain functions of arrays and fitted moecore objects, one module per
page (data, fit, compare, experiments, learn) over what they share (common).

Points are SVG ``Scatter`` (at most a few thousand, subsampled), not ``Scattergl``: WebGL traces
are drawn on a canvas above every SVG trace, which would hide the expert lines under the points.

No Streamlit here, so every figure can be built and checked in a unit test.  Conventions:

* expert k always has colour ``expert_color(k)``; the local experts the transport plan sends to a
  reduced expert share its colour (``reduced_colors`` aligns the reduced experts to the truth, so
  colours also agree with the data page's "true expert" colours);
* the truth is drawn black and dashed, the global EM grey and dotted;
* every figure has a title, axis titles, a legend and hover text.
"""

from __future__ import annotations

from .common import (
    MANY_MACHINES,
    MANY_PLAN_ROWS,
    PALETTE,
    TEMPLATE,
    coef_names,
    coupling_figure,
    expert_color,
    gates_figure,
    mm_figure,
    reduced_colors,
    rgba,
    scale_text,
)
from .compare import BLOCKS, compare_figure, param_error_figure
from .data import data_figure, projection_figure
from .experiments import k_figure, sweep_figure
from .fit import (
    MAX_OUTLIERS,
    coefficient_figure,
    experts_figure,
    gate_colors,
    loglik_figure,
    machine_color,
    machines_figure,
    plan_figure,
    plan_machines_figure,
    timing_figure,
)
from .learn import large_mixture_figure, mm_step_figure

__all__ = [
    "BLOCKS",
    "MANY_MACHINES",
    "MANY_PLAN_ROWS",
    "MAX_OUTLIERS",
    "PALETTE",
    "TEMPLATE",
    "coef_names",
    "coefficient_figure",
    "compare_figure",
    "coupling_figure",
    "data_figure",
    "expert_color",
    "experts_figure",
    "gate_colors",
    "gates_figure",
    "k_figure",
    "large_mixture_figure",
    "loglik_figure",
    "machine_color",
    "machines_figure",
    "mm_figure",
    "mm_step_figure",
    "param_error_figure",
    "plan_figure",
    "plan_machines_figure",
    "projection_figure",
    "reduced_colors",
    "rgba",
    "scale_text",
    "sweep_figure",
    "timing_figure",
]
