"""The session's data: simulated from a design or custom parameters, or an uploaded table.

Simulations are cached (``st.cache_data``): the same settings give the same rows, shared by
every session without sharing mutable objects (the cache returns a fresh copy).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from moecore import MoEParams
from moecore.collinear import collinear_columns
from moecore.datasets import load_dataset
from moecore.model import feature_names
from moecore.outliers import find_outliers
from moecore.predictions import apply_model
from moecore.simulation import get_design, simulate

from . import settings
from .io import model_from_json, params_to_text, parse_csv, select_columns, true_labels


@dataclass
class Dataset:
    """The data a session works on; ``truth`` and ``labels`` only for simulated data."""

    X: np.ndarray
    y: np.ndarray
    name: str
    x_names: list
    y_name: str = "y"
    labels: np.ndarray | None = None
    truth: MoEParams | None = None
    source: str = "design"
    sim: dict = field(default_factory=dict)  # how to draw more (held-out) data like it
    key: str = ""
    settings: dict = field(default_factory=dict)  # the data settings it was simulated from ({} for uploads)
    typed_truth: str = ""  # the typed or uploaded true parameters it was simulated from, exactly (for links)

    def __post_init__(self):
        if not self.key:
            h = hashlib.sha1()
            h.update(np.ascontiguousarray(self.X).tobytes())
            h.update(np.ascontiguousarray(self.y).tobytes())
            self.key = h.hexdigest()[:16]

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def d(self):
        return self.X.shape[1]


def custom_params(K, d, sep, gate, var, seed) -> MoEParams:
    """A K-expert, d-input true model from a few knobs: expert spread, gate sharpness, noise.

    Intercepts are spread ``sep`` apart; slopes and gate directions are drawn from the seed.
    """
    rng = np.random.default_rng(int(seed) + 7919)
    experts = np.vstack([sep * (np.arange(K) - (K - 1) / 2), rng.normal(0, 1.0, (d, K))])
    gates = np.vstack([np.zeros(K), gate * rng.normal(0, 1.0, (d, K))])
    if d == 1 and K > 1:
        # One regime after another along x, as in the teaching design: easy to see.
        # logit_k = -g (x - t_k)^2 up to the common -g x^2: linear in x, regime k around t_k.
        t = np.linspace(-2.0, 2.0, K)
        gates = np.vstack([-gate * t**2, 2.0 * gate * t])
    return MoEParams(gates, experts, np.full(K, float(var)))


@st.cache_data(max_entries=32, show_spinner=False)
def _simulate_cached(params_json: str, n: int, x_dist: str, x_loc: float, x_scale: float, seed: int):
    params = MoEParams.from_dict(json.loads(params_json))
    return simulate(params, n, x_dist=x_dist, x_loc=x_loc, x_scale=x_scale, random_state=seed)


def simulate_dataset(params: MoEParams, n, *, x_dist, x_loc=0.0, x_scale=1.0, seed=0, name="custom",
                     source="custom") -> Dataset:
    pj = json.dumps(params.to_dict())
    sim = _simulate_cached(pj, int(n), x_dist, float(x_loc), float(x_scale), int(seed))
    d = params.n_features
    return Dataset(
        sim.X, sim.y, name, feature_names(d), "y", sim.labels, sim.params, source,
        sim=dict(params_json=pj, x_dist=x_dist, x_loc=float(x_loc), x_scale=float(x_scale), seed=int(seed)),
    )


@st.cache_data(max_entries=8, show_spinner=False)
def _real_cached(name):
    ds = load_dataset(name)
    return ds.X, ds.y, list(ds.feature_names), ds.response_name


def real_dataset(name) -> Dataset:
    """A shipped real data set (moecore.datasets), its inputs and response."""
    X, y, x_names, y_name = _real_cached(name)
    return Dataset(X, y, name, x_names, y_name, source="real")


def data_shape(s: dict) -> tuple[int, int]:
    """(n, d) of the data :func:`dataset_from_settings` would simulate, without simulating it."""
    if s["source"] == "real":
        X, _, _, _ = _real_cached(s["real_set"])
        return X.shape
    if s["source"] == "custom" and st.session_state.get("custom_truth") is not None:
        return int(s["n"]), st.session_state["custom_truth"].n_features
    if s["source"] == "custom":
        return int(s["n"]), int(s["custom_d"])
    return int(s["n"]), get_design(s["design"]).params.n_features


def dataset_from_settings(s: dict | None = None) -> Dataset:
    """The data of the current settings: a named design, the custom knobs or a real data set."""
    s = s or settings.settings()
    data = _dataset_from(s)
    data.settings = {k: s[k] for k in settings.DATA_SETTINGS}
    if s["source"] == "custom" and st.session_state.get("custom_truth") is not None:
        data.typed_truth = params_to_text(st.session_state["custom_truth"], digits=None)
    return data


def _dataset_from(s: dict) -> Dataset:
    if s["source"] == "real":
        return real_dataset(s["real_set"])
    n = int(s["n"])
    if s["source"] == "custom" and st.session_state.get("custom_truth") is not None:
        params = st.session_state["custom_truth"]
        return simulate_dataset(params, n, x_dist=s["x_dist"], x_scale=s["x_scale"], seed=s["seed"],
                                name=f"exact parameters K={params.n_experts} d={params.n_features}", source="custom")
    if s["source"] == "custom":
        params = custom_params(s["custom_K"], s["custom_d"], s["custom_sep"], s["custom_gate"],
                               s["custom_var"], s["seed"])
        return simulate_dataset(params, n, x_dist=s["x_dist"], x_scale=s["x_scale"], seed=s["seed"],
                                name=f"custom K={s['custom_K']} d={s['custom_d']}", source="custom")
    design = get_design(s["design"])
    return simulate_dataset(design.params, n, x_dist=design.x_dist, x_loc=design.x_loc,
                            x_scale=design.x_scale, seed=s["seed"], name=design.name, source="design")


def dataset_from_upload(df, y_col: str, x_cols, name: str) -> Dataset:
    """An uploaded table's chosen columns as the session's data (InputError when they do not fit)."""
    X, y = select_columns(df, y_col, x_cols)
    return Dataset(X, y, name, list(x_cols), y_col, labels=true_labels(df, x_cols), source="csv")


@st.cache_resource(max_entries=16, show_spinner=False)
def _data_checks(key, x_names, y_name, _X, _y):
    """(outlying rows, tied input groups) of one data set, computed once per data and names: the pages
    that show them rerun on every widget change (32 ms each time on the flights), the data does not.
    Shared read-only, as the verdicts are frozen."""
    return (find_outliers(_X, _y, feature_names=list(x_names), response_name=y_name), collinear_columns(_X),
            _later_copies(_X, _y))


def _later_copies(X, y):
    """The rows (m,) that repeat an earlier row exactly, inputs and response alike."""
    _, first = np.unique(np.column_stack([X, y]), axis=0, return_index=True)
    keep = np.zeros(len(y), dtype=bool)
    keep[first] = True
    return np.flatnonzero(~keep)


def _checks(data: Dataset):
    return _data_checks(data.key, tuple(data.x_names), data.y_name, data.X, data.y)


def outlying_rows(data: Dataset):
    """:func:`moecore.outliers.find_outliers` of the session's data, with its column names."""
    return _checks(data)[0]


def tied_inputs(data: Dataset):
    """:func:`moecore.collinear.collinear_columns` of the session's inputs: lists of column indices."""
    return _checks(data)[1]


def repeated_rows(data: Dataset):
    """The rows (m,) of the session's data that repeat an earlier row exactly (inputs and response)."""
    return _checks(data)[2]


def without_rows(data: Dataset, rows, what="outlying row") -> Dataset:
    """``data`` less the rows ``rows`` (outlying rows a user chose to leave out), as the user's own data:
    it can no longer be drawn again from settings, and simulated data keeps its truth and labels."""
    keep = np.ones(data.n, dtype=bool)
    keep[np.asarray(rows, dtype=np.intp)] = False
    n_out = data.n - int(keep.sum())
    return Dataset(data.X[keep], data.y[keep], f"{data.name} without {n_out} {what}{'s' if n_out > 1 else ''}",
                   list(data.x_names), data.y_name, labels=None if data.labels is None else data.labels[keep],
                   truth=data.truth, source="csv")


def heldout(data: Dataset, n_test=5000):
    """(X_test, y_test, labels_test, train_index): fresh draws for simulated data, else a 20 % split."""
    if data.sim:

        s = data.sim
        test = _simulate_cached(s["params_json"], n_test, s["x_dist"], s["x_loc"], s["x_scale"],
                                s["seed"] + 1_000_003)
        return test.X, test.y, test.labels, np.arange(data.n)
    rng = np.random.default_rng(0)
    perm = rng.permutation(data.n)
    n_te = max(1, data.n // 5)
    te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
    return data.X[te], data.y[te], None, tr


def apply_saved_model(data: Dataset, raw: bytes, file_name: str, inputs: bytes | None = None,
                      inputs_name: str = "the inputs file"):
    """A saved model JSON's predictions on ``data``, or on the CSV ``inputs`` (new x: the model's
    input columns, its response column only if there is one): the table of
    :func:`moecore.predictions.apply_model`.

    Raises InputError (a malformed file) or ValueError (the model's input columns are not columns
    of the table) for the page to show.
    """
    params, meta = model_from_json(raw, file_name)
    if inputs is not None:
        frame = parse_csv(inputs, inputs_name, min_columns=1)
    else:
        frame = pd.DataFrame(data.X, columns=data.x_names)
        frame[data.y_name] = data.y
    return apply_model(params, frame, meta.get("x_names") or feature_names(params.n_features), meta.get("y_name"))
