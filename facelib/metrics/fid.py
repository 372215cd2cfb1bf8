"""Frechet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

FID = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

The only hard term is tr((S1 S2)^(1/2)). S1 S2 is not symmetric, so a general matrix square root
(scipy.linalg.sqrtm, a Schur method) can return complex parts and fails on singular products; the
reference implementations patch that with an eps*I offset and by dropping imaginary parts. We use
the symmetric route instead: with R = S1^(1/2) (symmetric, from an eigendecomposition),
M = R S2 R is symmetric positive semi-definite and similar (up to zero eigenvalues) to S1 S2, so
tr((S1 S2)^(1/2)) = sum(sqrt(eigvalsh(M))). Only symmetric eigensolvers are used (backward
stable, real), singular covariances (fewer samples than dimensions) need no offset, and it is
about 5x faster than sqrtm at 2048 dimensions. Tiny negative eigenvalues from round-off are
clipped to zero; large negative ones mean the input was not a covariance and raise.

Statistics are accumulated in float64 and streamed (`FeatureStats`) so 200k features need not be
in memory at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelib.errors import FacelibError
from facelib.metrics.arrays import as_features, feature_pair


class FeatureStats:
    """Streaming mean and covariance of feature vectors, in float64.

    Batches are merged with the pairwise (Chan et al.) update of the mean and of the centred
    sum of squares, which stays accurate when the mean is large relative to the spread (the
    naive sum(x x^T) - n mu mu^T loses digits to cancellation).
    """

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self._mean = None if dim is None else np.zeros(dim, np.float64)
        self._m2 = None if dim is None else np.zeros((dim, dim), np.float64)

    def update(self, batch) -> "FeatureStats":
        """Add an (B, D) batch of features (an empty batch is a no-op); returns self."""
        x = np.asarray(batch)
        if x.ndim == 2 and x.shape[0] == 0 and (self.dim is None or x.shape[1] == self.dim):
            return self
        x = as_features(x, "feature batch").astype(np.float64, copy=False)
        if not np.all(np.isfinite(x)):
            raise FacelibError("feature batch contains NaN or inf; check the feature extractor input")
        if self.dim is None:
            self.dim = x.shape[1]
            self._mean = np.zeros(self.dim, np.float64)
            self._m2 = np.zeros((self.dim, self.dim), np.float64)
        if x.shape[1] != self.dim:
            raise FacelibError(
                f"feature batch has {x.shape[1]} dimensions but earlier batches had {self.dim}; "
                "use the same feature extractor for every batch"
            )
        self._merge(x.shape[0], x.mean(axis=0), None, x)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray | None, x=None) -> None:
        if m2_b is None:
            centred = x - mean_b
            m2_b = centred.T @ centred
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._m2 += m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self._mean += delta * (n_b / n)
        self.count = n

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold another accumulator (e.g. from another shard) into this one; returns self."""
        if other.count == 0:
            return self
        if self.dim is None:
            self.dim = other.dim
            self._mean = np.zeros(self.dim, np.float64)
            self._m2 = np.zeros((self.dim, self.dim), np.float64)
        if other.dim != self.dim:
            raise FacelibError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        self._merge(other.count, other._mean.copy(), other._m2.copy())
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.count < 1:
            raise FacelibError("no features accumulated yet; call update(batch) first")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance (divides by N - 1), as numpy.cov does."""
        if self.count < 2:
            raise FacelibError(
                f"a covariance needs at least 2 feature vectors, have {self.count}; add more samples"
            )
        return self._m2 / (self.count - 1)

    def save(self, path: str | Path) -> Path:
        """Write count, mean and covariance to a .npz file (to cache real-data statistics)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, count=self.count, mean=self.mean, cov=self.cov)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        """Read statistics written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise FacelibError(f"feature statistics file {path} not found; write it with FeatureStats.save")
        with np.load(path, allow_pickle=False) as z:
            if not {"count", "mean", "cov"} <= set(z.files):
                raise FacelibError(f"{path} is not a FeatureStats file (needs count, mean, cov)")
            stats = cls(int(z["mean"].shape[0]))
            stats.count = int(z["count"])
            stats._mean = z["mean"].astype(np.float64)
            stats._m2 = z["cov"].astype(np.float64) * (stats.count - 1)
        return stats


def feature_stats(features, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 of an (N, D) array (a memmap is read in batches)."""
    x = as_features(features, "features")
    stats = FeatureStats(x.shape[1])
    for start in range(0, x.shape[0], batch_size):
        stats.update(x[start:start + batch_size])
    return stats.mean, stats.cov


def _sqrt_psd(s: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a PSD matrix via eigh; clips round-off negatives."""
    w, v = np.linalg.eigh(s)
    _check_eigenvalues(w, name)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check_eigenvalues(w: np.ndarray, name: str) -> None:
    scale = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny)
    if w.min() < -1e-6 * scale:
        raise FacelibError(
            f"{name} has a clearly negative eigenvalue ({w.min():.3g}, largest {scale:.3g}), so it is "
            "not a covariance matrix; pass the output of feature_stats / FeatureStats.cov"
        )


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise FacelibError(
            f"inconsistent Gaussian parameters: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, "
            f"sigma2 {sigma2.shape}; both means must be (D,) and both covariances (D, D)"
        )
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.all(np.isfinite(a)):
            raise FacelibError(f"{name} contains NaN or inf; recompute the feature statistics")
    # Symmetrise: covariances from float accumulation can be asymmetric in the last bits.
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1, "sigma1")
    m = root1 @ sigma2 @ root1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    _check_eigenvalues(w, "sigma2")
    tr_covmean = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    # Round-off can leave -1e-12 for identical inputs; a distance is never negative.
    return max(value, 0.0)


def fid_from_features(a, b) -> float:
    """FID between two (N, D) feature arrays (e.g. Inception pool features of real and fake)."""
    a, b = feature_pair(a, b, ("first feature set", "second feature set"))
    for name, x in (("first feature set", a), ("second feature set", b)):
        if x.shape[0] < 2:
            raise FacelibError(f"{name} has {x.shape[0]} sample; FID needs at least 2 per set")
    if max(len(a), len(b)) < a.shape[1]:
        return _frechet_distance_few_samples(a, b)
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    return frechet_distance(mu1, s1, mu2, s2)


def _frechet_distance_few_samples(a, b) -> float:
    """Exact FID when both sets have fewer samples than dimensions, without DxD matrices.

    With centred A (n_a x D) and B, S_a = A^T A / (n_a - 1); the nonzero eigenvalues of
    S_a S_b are the squared singular values of A B^T / sqrt((n_a - 1)(n_b - 1)), so
    tr sqrt(S_a S_b) is the sum of those singular values: an n_a x n_b SVD instead of two
    2048x2048 eigendecompositions (seconds -> milliseconds for a few hundred samples).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    tr_covmean = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    value = float(diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2.0 * tr_covmean)
    return max(value, 0.0)
