"""Figures at many machines and the MM subtitle: the EM-curve axis shows the rise (clipped at
the 95th percentile of iteration counts, the slow fits named), the starts counted as set."""

from types import SimpleNamespace

import numpy as np
from app_helpers import plain_title

import explorer.figures


def fake_fit(counts, flagged=None):
    """A DistributedMoE stand-in with one EM curve per machine of the given lengths."""
    models = [SimpleNamespace(loglik_history_=-1000.0 + 100 * (1 - np.exp(-np.arange(c) / 5))) for c in counts]
    M = len(counts)
    report = SimpleNamespace(actions=dict(flagged or {}))
    return SimpleNamespace(local_models_=models, shards_=[np.arange(1000)] * M, machines_=np.arange(M),
                           screening_=report)


def test_em_curves_at_256_machines_end_at_the_p95_and_name_the_slow_fits():
    counts = [20] * 200 + [25] * 53 + [300, 280, 150]
    fig = explorer.figures.loglik_figure(fake_fit(counts))
    assert tuple(fig.layout.xaxis.range) == (0.5, 25.5)  # the 95th percentile of the counts, not 300
    note = " ".join(a.text for a in fig.layout.annotations)
    assert "254 (300)" in note and "255 (280)" in note and "256 (150)" in note


def test_em_curves_of_similar_lengths_are_not_clipped():
    fig = explorer.figures.loglik_figure(fake_fit([20, 22, 24, 26] * 8))
    assert fig.layout.xaxis.range is None and not fig.layout.annotations


def test_em_curves_that_rise_in_their_first_iterations_get_a_log_axis():
    # Most machines run to 300 iterations (no clipping helps) but gain their likelihood in ~10.
    fig = explorer.figures.loglik_figure(fake_fit([300] * 40 + [60] * 10))
    assert fig.layout.xaxis.type == "log" and "log scale" in fig.layout.xaxis.title.text


def test_mm_subtitle_counts_kmeans_and_local_starts():
    fig = explorer.figures.mm_figure([3.0, 2.0, 1.9], init_objectives=np.array([1.9, 2.1, 2.5, 2.0]), n_kmeans=3)
    assert "best of 4 starts (3 k-means restarts + 1 from the best local models)" in plain_title(fig)
