"""Checking the arrays metrics take, with one set of messages for every metric.

Features are (N, D) arrays; metrics that also accept images view (N, H, W, C) as (N, H*W*C).
"""

from __future__ import annotations

import numpy as np

from facelib.errors import FacelibError


def as_features(x, name: str) -> np.ndarray:
    """A non-empty numeric (N, D) array, returned as is (dtype unchanged)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise FacelibError(
            f"{name} must be a 2-D (samples, features) array, got shape {x.shape}; "
            "flatten or pool features to one vector per sample first")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise FacelibError(f"{name} is empty (shape {x.shape}); pass at least one feature vector")
    if not np.issubdtype(x.dtype, np.number):
        raise FacelibError(f"{name} has non-numeric dtype {x.dtype}; pass a float array")
    return x


def as_vectors(x, name: str) -> np.ndarray:
    """View (N, ...) data as (N, D) without copying (memmaps stay memmaps)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise FacelibError(
            f"{name} must have one row per sample, shape (N, D) or (N, H, W, C); got shape {x.shape}")
    if x.shape[0] == 0:
        raise FacelibError(f"{name} is empty; pass at least one sample")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise FacelibError(f"{name} has non-numeric dtype {x.dtype}; pass images or float features")
    return x.reshape(x.shape[0], -1)


def feature_pair(a, b, names=("real features", "generated features"),
                 flatten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two sets checked as above (``flatten``: images allowed) that share one dimension."""
    check = as_vectors if flatten else as_features
    x, y = check(a, names[0]), check(b, names[1])
    if x.shape[1] != y.shape[1]:
        raise FacelibError(
            f"{names[0]} and {names[1]} have different dimensions ({x.shape[1]} vs "
            f"{y.shape[1]}); extract both with the same network")
    return x, y
