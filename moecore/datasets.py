"""Real data sets for mixtures of regressions, shipped with the package.

Small classic sets that R packages distribute, exported once with ``moecore/data/export_datasets.R``
and stored as gzip-compressed CSV files in ``moecore/data/`` (the response in the first column, the
inputs after it).  :func:`load_dataset` returns a :class:`Dataset`; :data:`DATASETS` describes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "dataset_names", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What is known of a shipped data set before it is read."""

    name: str
    file: str
    description: str
    source: str
    licence: str
    suggested_experts: int


@dataclass(frozen=True)
class Dataset:
    """A loaded data set.

    Attributes
    ----------
    X : ndarray (n, d) ; y : ndarray (n,)
    feature_names : tuple of d str ; response_name : str
    description, source, licence : str
    suggested_experts : int, the K the literature fits to it
    name : str
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple
    response_name: str
    description: str
    source: str
    licence: str
    suggested_experts: int

    @property
    def frame(self):
        """The data as a DataFrame, the response first."""
        df = pd.DataFrame(self.X, columns=list(self.feature_names))
        df.insert(0, self.response_name, self.y)
        return df


_GPL = "GPL (>= 2) as part of the R package, which allows redistribution with attribution"
DATASETS = {
    info.name: info
    for info in (
        DatasetInfo(
            "tonedata", "tonedata.csv.gz",
            "Tone perception (Cohen 1980): 150 trials of one musician judging the tuning of a tone; tuned "
            "(perceived tone ratio) against stretchratio (actual ratio). Two lines: some trials follow the "
            "stretch ratio, the others stay at 2.0 (the octave).",
            "R package mixtools 2.0.0, data(tonedata); Cohen (1980), Journal of Mathematical Psychology",
            _GPL, 2),
        DatasetInfo(
            "nodata", "nodata.csv.gz",
            "Ethanol fuel (Brinkman 1981): 88 engine runs; Equivalence (equivalence ratio) against NO "
            "(nitrogen oxide concentration in the exhaust). Two branches of a curve.",
            "R package mixtools 2.0.0, data(NOdata); Hurn, Justel and Robert (2003)",
            _GPL, 2),
        DatasetInfo(
            "boston", "boston.csv.gz",
            "Boston housing (Harrison and Rubinfeld 1978): 506 census tracts; medv (median home value, "
            "$1000s) against lstat (% lower-status population). Only these two columns are shipped.",
            "R package MASS 7.3-58.2, Boston", _GPL, 2),
        DatasetInfo(
            "mcycle", "mcycle.csv.gz",
            "Simulated motorcycle accident (Silverman 1985): 133 measurements of head acceleration (accel, g) "
            "against time after impact (times, ms). A flat, quiet start, then large swings: the classic "
            "example for mixtures of experts.",
            "R package MASS 7.3-58.2, mcycle; Silverman (1985), JRSS B", _GPL, 3),
        DatasetInfo(
            "faithful", "faithful.csv.gz",
            "Old Faithful geyser (Azzalini and Bowman 1990): 272 eruptions; eruptions (duration, min) "
            "against waiting (time to the eruption, min). Short and long eruptions.",
            "R datasets package (R 4.2.2), faithful; Hardle (1991)",
            "GPL-2 | GPL-3 as part of R, which allows redistribution with attribution", 2),
    )
}


def dataset_names():
    """Names of the shipped data sets, in :data:`DATASETS` order."""
    return tuple(DATASETS)


def load_dataset(name):
    """Load a shipped data set by name (see :func:`dataset_names`).

    Returns
    -------
    Dataset
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}.")
    info = DATASETS[name]
    with resources.files("moecore").joinpath("data", info.file).open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip")
    return Dataset(
        name=info.name,
        X=df.iloc[:, 1:].to_numpy(dtype=np.float64),
        y=df.iloc[:, 0].to_numpy(dtype=np.float64),
        feature_names=tuple(df.columns[1:]),
        response_name=df.columns[0],
        description=info.description,
        source=info.source,
        licence=info.licence,
        suggested_experts=info.suggested_experts,
    )
