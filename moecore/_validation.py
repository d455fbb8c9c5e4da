"""Up-front validation shared by every estimator and function of the package.

Every check raises ``ValueError`` or ``TypeError`` naming the offending parameter and the
range it must lie in, so that a user sees what to change rather than a NumPy traceback.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from ._warn import warn

__all__ = [
    "check_2d",
    "check_X",
    "check_Xy",
    "check_choice",
    "check_column_names",
    "check_float",
    "check_int",
    "check_random_state_seed",
    "check_width",
]


def check_int(value, name, *, low=None, high=None, allow_none=False):
    """Return ``value`` as ``int`` after checking its type and range (inclusive bounds)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r}).")
    # The estimators keep their parameters as given (scikit-learn's rule), and NumPy's arithmetic on a
    # narrow integer wraps around: np.int8(64) experts made K (d + 1) + 1 = -127 rows the minimum.
    if isinstance(value, np.integer) and value.dtype.itemsize < 8:
        raise TypeError(f"{name} must be a Python int or a 64-bit integer, got {value.dtype} ({value!r}): "
                        f"arithmetic on it wraps around. Pass int({name}).")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in {_range_text(low, high)}, got {value}.")
    return value


def check_float(value, name, *, low=None, high=None, low_open=False, allow_none=False):
    """Return ``value`` as ``float`` after checking it is a finite real in range."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    bad_low = low is not None and (value <= low if low_open else value < low)
    if bad_low or (high is not None and value > high):
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must be in {_range_text(low, high, lo)}, got {value}.")
    return value


def check_choice(value, name, choices):
    # An array would compare element by element ("loky" in choices for np.array(["loky"]) is true)
    # and reach joblib as an array.
    if isinstance(value, np.ndarray) or not isinstance(value, Hashable):
        raise TypeError(f"{name} must be one of {sorted(choices)!r}, got a {type(value).__name__}.")
    if value not in choices:
        # An object's repr can run to pages (a MoEParams prints its arrays): its type says enough.
        shown = repr(value) if isinstance(value, (str, numbers.Number)) else f"a {type(value).__name__}"
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {shown}.")
    return value


def check_random_state_seed(random_state, name="random_state"):
    """Turn ``random_state`` (None, int or SeedSequence) into a ``numpy.random.SeedSequence``.

    ``numpy.random.RandomState`` instances are refused: their stream cannot be split into
    independent per-machine streams, which is what keeps results identical whatever n_jobs.
    """
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        # A copy: ``spawn`` advances the sequence it is called on, so handing out the caller's
        # object would give a second fit with the same random_state different children.
        return np.random.SeedSequence(
            random_state.entropy,
            spawn_key=random_state.spawn_key,
            pool_size=random_state.pool_size,
            n_children_spawned=random_state.n_children_spawned,
        )
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"{name} must be None, a non-negative integer or a numpy SeedSequence, "
            f"got {type(random_state).__name__}."
        )
    if random_state < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {random_state}.")
    return np.random.SeedSequence(int(random_state))


def check_X(X, name="X", *, n_features=None, min_samples=1):
    """Validate a 2-D finite numeric design matrix; a 1-D array is read as one feature.

    Returns a C-contiguous float64 array of shape (n_samples, n_features).
    """
    X = _as_float_array(X, name, bool_ok=True)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {X.ndim} dimensions.")
    if X.shape[1] < 1:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required: give at "
                         "least one feature column.")
    if X.shape[0] < min_samples:
        raise ValueError(f"{name} must have at least {min_samples} samples, got {X.shape[0]}.")
    _check_finite(X, name)
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but the model was fitted with {n_features}."
        )
    return np.ascontiguousarray(X)


def check_Xy(X, y, *, n_features=None, min_samples=1):
    """Validate a design matrix and a response of matching length (1-D, finite, numeric)."""
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None.")
    X = check_X(X, "X", n_features=n_features, min_samples=min_samples)
    y = _as_float_array(y, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warn("A column-vector y was passed when a 1d array was expected: y of shape (n, 1) is read as "
             "(n,). Please change the shape of y to (n_samples,), for example using ravel().",
             DataConversionWarning)
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got shape {y.shape}.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and y must have the same number of samples, got {X.shape[0]} and {y.shape[0]}."
        )
    _check_finite(y, "y")
    return X, np.ascontiguousarray(y)


def column_moments(X):
    """Means, standard deviations and largest absolute values of the columns of X (n, d).

    Returns three arrays (d,). NumPy reduces over axis 0 of a C-ordered array with few columns
    one short row at a time (about 40 ms for the std of 10^6 x 2); on a transposed copy the
    reductions run along contiguous rows, about 10x faster (5x at a shard of 7812 x 2).
    """
    if X.shape[1] < 16:
        T, axis = np.ascontiguousarray(X.T), 1
    else:
        T, axis = X, 0
    absmax = np.maximum(T.max(axis=axis), -T.min(axis=axis))
    if np.any(absmax > _SQUARE_SAFE) or np.any((absmax > 0) & (absmax < 1.0 / _SQUARE_SAFE)):
        # The variance squares the values: beyond ~1e154 it overflows (x * 1e160 had std inf,
        # hence all slopes 0), below ~1e-154 it underflows. Scale each column by its largest
        # value first; only such columns pay for the extra pass.
        unit = np.where(absmax > 0, absmax, 1.0)
        Tu = T / (unit[:, None] if axis == 1 else unit[None, :])
        return Tu.mean(axis=axis) * unit, Tu.std(axis=axis) * unit, absmax
    return T.mean(axis=axis), T.std(axis=axis), absmax


# Values whose square stays a normal float64 (1e100 squared is 1e200 < 1.8e308).
_SQUARE_SAFE = 1e100
# A response spread beyond this makes the experts' variances (spread squared) overflow float64;
# one below the minimum makes them leave float64's normal range (1e-300 times the smallest relative
# variance floor, 1e-6, is 1e-306 > 2.2e-308): subnormal numbers keep few digits, and a distributed
# fit of a y of spread 1e-155 came out with a reduced variance 8x too large (1e-200 squared is 0).
MAX_RESPONSE_SCALE = 1e150
MIN_RESPONSE_SCALE = 1e-150


def robust_std(a):
    """Standard deviation of a 1-D array that neither overflows nor underflows when squaring."""
    return float(column_moments(np.asarray(a, dtype=np.float64)[:, None])[1][0])


def check_response_scale(y, name="y", *, allow_constant=False):
    """Refuse a constant response, or one whose spread would make the variances (spread squared)
    overflow or underflow.

    Returns the standard deviation of y (0 for a constant y with ``allow_constant``: a small
    sample of tied responses, which a standardisation then leaves unscaled).
    """
    sd = robust_std(y)  # np.std squares: y of 1e-200 would read as constant
    if not sd > 0:
        if allow_constant:
            return 0.0
        raise ValueError(f"{name} is constant: there is nothing for the experts to regress.")
    if sd > MAX_RESPONSE_SCALE:
        raise ValueError(
            f"{name} varies over about {sd:.3g}: the experts' variances (its square) would overflow "
            f"float64 (largest about 1.8e308). Rescale {name} (divide it by a power of ten) so its "
            f"standard deviation is below {MAX_RESPONSE_SCALE:.0e}."
        )
    if sd < MIN_RESPONSE_SCALE:
        raise ValueError(
            f"{name} varies, but only over about {sd:.3g}: the experts' variances (its square) would fall "
            f"below float64's normal range, where numbers keep few digits. Rescale {name} (multiply it by a "
            f"power of ten) so its standard deviation is above {MIN_RESPONSE_SCALE:.0e}."
        )
    return sd


def check_nonconstant_columns(X, name="X"):
    """Refuse constant input columns: the intercept already models them and they make the
    standardisation (and every least-squares system) singular.

    Returns the column means and standard deviations it computed, (d,) each, for
    :meth:`moecore.model.Standardizer.fit` to reuse.
    """
    mean, scale, absmax = column_moments(X)
    # Relative to the column's own size: a column of values around 1e-13 that varies is not
    # constant (an absolute floor called x * 1e-13 constant). A constant column's computed std is
    # rounding noise, about 1e-16 of its size.
    const = np.flatnonzero(~(scale > 1e-12 * absmax))
    if const.size:
        # A column that varies, but by less than 1e-12 of its size (nanosecond timestamps, x + 1e13), keeps
        # 3-4 digits of its variation: "constant" would name the wrong fix.
        offset = [j for j in const.tolist() if scale[j] > 0]
        if offset:
            j = offset[0]
            raise ValueError(
                f"{name} column(s) {offset} vary by less than 1e-12 of their size (column {j}: spread {scale[j]:.3g} "
                f"around {mean[j]:.6g}), too little for float64 to tell the rows apart reliably: subtract an "
                "offset first (e.g. the column's minimum; for timestamps, the time since the first one)."
            )
        raise ValueError(
            f"{name} has constant column(s) {const.tolist()}: remove them, the intercept "
            "already models a constant input."
        )
    return mean, scale


def check_2d(X, name="X"):
    """Refuse a 1-D or scalar ``X`` at an estimator's entry (scikit-learn's convention): one row
    or one feature is the caller's to say, with ``reshape``."""
    if X is None:
        raise TypeError(f"{name} must be a numeric array of shape (n_samples, n_features), got None.")
    if isinstance(X, (str, bytes)) or _is_sparse(X):
        return  # refused as not numeric, or as sparse, by the conversion that follows
    ndim = len(_shape(X))
    if ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got a {ndim}-D array. Reshape your data: "
            f"{name}.reshape(-1, 1) for one feature or {name}.reshape(1, -1) for one sample."
        )


def check_width(X, n_features, who, name="X"):
    """Refuse an ``X`` whose number of columns is not the fitted model's; ``who`` names the
    estimator (in scikit-learn's words, plus ours)."""
    shape = _shape(X)
    if len(shape) == 2 and shape[1] != n_features:
        raise ValueError(f"{name} has {shape[1]} features, but {who} is expecting {n_features} features as "
                         f"input: the model was fitted with {n_features}.")


def _shape(X):
    # Not np.shape: an array-like that only offers __array__ (no NumPy dispatch) must work too.
    shape = getattr(X, "shape", None)
    return tuple(shape) if shape is not None else np.asarray(X).shape


def _is_sparse(a):
    import scipy.sparse

    return scipy.sparse.issparse(a)


# An input of True/False is an indicator, read as 0/1 whatever holds it (a boolean array, a DataFrame of
# boolean columns alone or beside numbers, a file's column), as scikit-learn reads it.  A response of
# True/False is refused: a Gaussian expert is no model of a 0/1 outcome.
BOOL_RESPONSE = ("{name} is boolean (True/False): moecore's experts are Gaussian regressions of a continuous "
                 "response, no model of a 0/1 outcome; pass {name} as numbers if 0/1 is meant.")


def _as_float_array(a, name, *, bool_ok=False):
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}.")
    if isinstance(a, np.ma.MaskedArray) and np.ma.is_masked(a):
        raise ValueError(f"{name} is a masked array with {int(np.ma.count_masked(a))} masked entries, and moecore "
                         f"reads no mask: drop those rows or fill them ({name}.filled(value)).")
    if _is_sparse(a):
        raise TypeError(f"{name} is a sparse matrix; sparse data is not supported: pass a dense array "
                        f"({name}.toarray()).")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind == "b":
        if not bool_ok:
            raise TypeError(BOOL_RESPONSE.format(name=name))
        return arr.astype(np.float64)
    if arr.dtype == object:
        if not bool_ok and any(isinstance(v, (bool, np.bool_)) for v in arr.flat):
            raise TypeError(BOOL_RESPONSE.format(name=name))
        # Text that reads as numbers (a pandas "string" column) is refused as NumPy's own strings
        # are: a column of text is the caller's to convert (pd.to_numeric), not ours to guess.
        missing = sum(1 for v in arr.flat if v is None or type(v).__name__ in ("NAType", "NaTType"))
        if missing:
            raise ValueError(f"{name} holds {missing} missing value(s) (None or pandas NA): remove or impute them.")
        text = next((v for v in arr.flat if isinstance(v, (str, bytes))), None)
        if text is not None:
            raise TypeError(f"{name} must be a numeric array; it holds non-numeric text such as {str(text)[:40]!r}: "
                            "convert it first (e.g. pandas.to_numeric).")
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must contain only numbers; found non-numeric entries ({exc}).") from None
    # NumPy counts a timedelta as an integer: it would be read as nanoseconds, as pandas' are refused.
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype.kind in "mM":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}.")
    return arr.astype(np.float64, copy=False)


def _check_finite(a, name):
    if not np.isfinite(a).all():
        n_nan = int(np.isnan(a).sum())
        n_inf = int(np.isinf(a).sum())
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s): remove or impute them."
        )


def _range_text(low, high, lo="["):
    lo_txt = "-inf" if low is None else f"{low}"
    hi_txt = "inf)" if high is None else f"{high}]"
    return f"{lo if low is not None else '('}{lo_txt}, {hi_txt}"


def check_feature_names(estimator, X, *, reset):
    """Record (``reset``) or check the column names and count of X as scikit-learn does.

    A DataFrame whose columns differ from fit's (names or order) is refused: (b, a) where the
    model learnt (a, b) would predict silently wrong.  X itself is checked by the caller (the
    public ``validate_data`` with ``skip_check_array`` looks at names and counts only).  Only a
    table of the model's width is compared: other input (a list, a 1-D array, another width) is
    checked by the caller, whose message says what the model was fitted with.
    """
    shape = getattr(X, "shape", ())
    if not reset and (len(shape) != 2 or shape[1] != getattr(estimator, "n_features_in_", None)):
        return
    validate_data(estimator, X, reset=reset, skip_check_array=True)


def distinct_names(names, what, *, verb="names", error=ValueError) -> list:
    """``names`` as a list of column names, each once; a bare string is one name, not its letters.

    ``what`` and ``verb`` word the refusal ("x_names names ['a'] more than once"); ``error`` is its class.
    """
    if isinstance(names, str):
        names = [names]
    if isinstance(names, bytes) or not np.iterable(names):
        raise TypeError(f"{what} must be a list of column names, got {type(names).__name__} {names!r}.")
    names = list(names)
    repeated = sorted({str(c) for c in names if names.count(c) > 1})
    if repeated:
        raise error(f"{what} {verb} {repeated} more than once: each input is one column.")
    return names


class _NameProbe(BaseEstimator):
    """A bare estimator for :func:`check_column_names`: scikit-learn's name check needs one to record on."""


def check_column_names(X):
    """Refuse, before a fit's work, the column names its end would refuse (:func:`check_feature_names`
    with ``reset``: repeated names, names of mixed types), without touching the estimator: a failed
    fit changes nothing."""
    check_feature_names(_NameProbe(), X, reset=True)
