"""Warnings pointed at the user's line, whatever path inside moecore led to them.

A fixed ``stacklevel`` counts frames from one call path: the same check reached through
``DistributedMoE.fit_shards`` (three frames deeper than ``fit``), a refinement round or
``baselines.fit_global`` pointed inside the package (``shards.py:549`` instead of the caller's line), where
a filter by module cannot catch it and a reader cannot see which call it was about.  Python 3.12's
``skip_file_prefixes`` does this; the project supports 3.11.
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message, category):
    """``warnings.warn(message, category)`` attributed to the first frame outside moecore (the
    outermost moecore frame when every frame is one: ``python -m moecore``)."""
    frame, level = sys._getframe(1), 2  # level 2: the function that called this one
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
