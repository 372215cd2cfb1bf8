"""Mode collapse diagnostics: how many distinct faces can the generator really make?

- Birthday paradox test (Arora and Zhang 2017): if batches of s samples contain a near-duplicate
  pair about half of the time, the support holds only ~s^2 distinct samples. We return the
  closest pairs per batch for visual inspection, and an automated estimate that calls a pair a
  duplicate when it is closer than real data's closest pairs usually are (a percentile of the
  closest-pair distance in real batches of the same size).
- NDB (Richardson and Weiss 2018): k-means bins fitted on real samples; a bin is "statistically
  different" when a two-proportion z-test rejects equal real and generated proportions.
  A collapsed generator over-fills a few bins and empties the rest.
- Attribute marginals: total variation between real and generated frequencies of binary
  attributes (e.g. CelebA's 40, labelled by a classifier for generated faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.cluster import KMeans

from facelib.data.celeba import ATTRIBUTE_NAMES
from facelib.errors import FacelibError
from facelib.images import save_grid
from facelib.metrics.arrays import as_vectors, feature_pair


# --------------------------------------------------------------------------- birthday paradox


def _closest_pairs(batch: np.ndarray, num_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """The num_pairs closest (i < j) pairs within one batch: (pairs (P, 2), distances (P,))."""
    s = batch.shape[0]
    sq = np.einsum("ij,ij->i", batch, batch)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (batch @ batch.T), 0.0)
    iu, ju = np.triu_indices(s, k=1)
    flat = d2[iu, ju]
    num_pairs = min(num_pairs, flat.size)
    top = np.argpartition(flat, num_pairs - 1)[:num_pairs] if flat.size > num_pairs else np.arange(flat.size)
    top = top[np.argsort(flat[top], kind="stable")]
    return np.stack([iu[top], ju[top]], axis=1), np.sqrt(flat[top])


def _batches(n: int, batch_size: int, num_batches: int, rng) -> list[np.ndarray]:
    return [np.sort(rng.choice(n, batch_size, replace=False)) for _ in range(num_batches)]


def min_pair_distances(features, batch_size: int, num_batches: int, seed: int = 0) -> np.ndarray:
    """Closest-pair distance within each of `num_batches` random batches, (num_batches,)."""
    x = as_vectors(features, "features")
    _check_batch(x.shape[0], batch_size, "features")
    rng = np.random.default_rng(seed)
    return np.array([_closest_pairs(np.asarray(x[b], np.float64), 1)[1][0]
                     for b in _batches(x.shape[0], batch_size, num_batches, rng)])


def _check_batch(n: int, batch_size: int, name: str) -> None:
    if batch_size < 2:
        raise FacelibError(f"birthday-paradox batches need at least 2 samples, got batch_size={batch_size}")
    if n < batch_size:
        raise FacelibError(
            f"{name} has {n} samples, fewer than batch_size={batch_size}; generate more or use smaller batches"
        )


def support_size_estimate(duplicate_rate: float, batch_size: int, num_batches: int | None = None) -> float:
    """Support size N of a uniform distribution for which a batch of s draws holds a duplicate
    with probability p: 1 - p = exp(-s(s-1) / 2N), so N = s(s-1) / (2 ln(1/(1-p))).

    At p = 0.5 this is ~0.72 s^2, the paper's "support ~ s^2". p = 0 gives inf (no evidence of a
    small support); p = 1 is clipped to 1 - 1/(2 num_batches) so the estimate stays finite
    (it is then an upper bound).
    """
    s = int(batch_size)
    p = float(duplicate_rate)
    if not 0.0 <= p <= 1.0:
        raise FacelibError(f"duplicate_rate must be in [0, 1], got {p}")
    if p == 0.0:
        return math.inf
    if p >= 1.0:
        p = 1.0 - 1.0 / (2 * (num_batches or 100))
    return s * (s - 1) / (2.0 * -math.log1p(-p))


@dataclass
class BirthdayResult:
    """Outcome of the birthday-paradox test on generated samples."""

    batch_size: int
    threshold: float  # a pair closer than this counts as a duplicate
    duplicate_rate: float  # fraction of generated batches with at least one duplicate
    real_duplicate_rate: float  # same on real batches (~ the calibration percentile), or nan
    support_size: float  # support_size_estimate(duplicate_rate, batch_size)
    pairs: np.ndarray  # (P, 2) indices into the generated set, closest first
    pair_distances: np.ndarray  # (P,)

    def as_dict(self) -> dict:
        return {
            "birthday_duplicate_rate": self.duplicate_rate,
            "birthday_real_duplicate_rate": self.real_duplicate_rate,
            "birthday_threshold": self.threshold,
            "birthday_support_size": self.support_size,
        }


def birthday_paradox(
    generated,
    batch_size: int = 400,
    num_batches: int = 20,
    real=None,
    threshold: float | None = None,
    percentile: float = 5.0,
    pairs_per_batch: int = 5,
    seed: int = 0,
) -> BirthdayResult:
    """Birthday-paradox duplicate test on features (or flattened images) of generated samples.

    The duplicate threshold is `threshold` if given, else the `percentile` of closest-pair
    distances in `num_batches` real batches of the same size, so about percentile% of real
    batches "contain a duplicate" (the false-alarm rate, reported as real_duplicate_rate).
    Returns the closest candidate pairs of all generated batches (for `pair_grid`) and the
    implied support size. Batch size 400 is the paper's choice for CelebA.
    """
    y = as_vectors(generated, "generated features")
    _check_batch(y.shape[0], batch_size, "generated features")
    if num_batches < 1:
        raise FacelibError(f"num_batches must be >= 1, got {num_batches}")
    if threshold is None and real is None:
        raise FacelibError(
            "birthday_paradox needs real features to calibrate the duplicate threshold, or an "
            "explicit threshold; pass real=... or threshold=..."
        )
    real_rate = math.nan
    if real is not None:
        if not 0.0 < percentile < 100.0:
            raise FacelibError(f"percentile must be in (0, 100), got {percentile}")
        x, y = feature_pair(real, y, flatten=True)
        real_min = min_pair_distances(x, batch_size, num_batches, seed=seed + 1)
        if threshold is None:
            threshold = float(np.percentile(real_min, percentile))
        real_rate = float(np.mean(real_min < threshold))
    rng = np.random.default_rng(seed)
    all_pairs, all_d, has_dup = [], [], []
    for b in _batches(y.shape[0], batch_size, num_batches, rng):
        pairs, d = _closest_pairs(np.asarray(y[b], np.float64), pairs_per_batch)
        all_pairs.append(b[pairs])
        all_d.append(d)
        has_dup.append(d[0] < threshold)
    pairs = np.concatenate(all_pairs)
    dists = np.concatenate(all_d)
    # The same pair can be drawn in several batches: keep it once.
    _, first = np.unique(np.sort(pairs, axis=1), axis=0, return_index=True)
    order = first[np.argsort(dists[first], kind="stable")]
    rate = float(np.mean(has_dup))
    return BirthdayResult(
        batch_size=int(batch_size),
        threshold=float(threshold),
        duplicate_rate=rate,
        real_duplicate_rate=real_rate,
        support_size=support_size_estimate(rate, batch_size, num_batches),
        pairs=pairs[order],
        pair_distances=dists[order],
    )


def pair_grid(images, pairs, path: str | Path, max_pairs: int = 16) -> Path:
    """Save a PNG of candidate duplicate pairs side by side (one pair per row) for inspection."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise FacelibError(f"pairs must be a non-empty (P, 2) index array, got shape {pairs.shape}")
    pairs = pairs[:max_pairs]
    if pairs.min() < 0 or pairs.max() >= len(images):
        raise FacelibError(f"pair indices out of range for {len(images)} images; pass the images the pairs index")
    return save_grid(np.asarray(images[pairs.reshape(-1)]), path, ncols=2)


# --------------------------------------------------------------------------- NDB


@dataclass
class NDBResult:
    """Number of statistically different bins and the bin histograms behind it."""

    ndb: int
    k: int
    real_proportions: np.ndarray  # (K,)
    gen_proportions: np.ndarray  # (K,)
    z: np.ndarray  # (K,) (p_gen - p_real) / pooled standard error
    p_values: np.ndarray  # (K,)
    different: np.ndarray  # (K,) bool, p_value < alpha
    js: float  # Jensen-Shannon divergence between the histograms, base 2, in [0, 1]

    @property
    def ndb_over_k(self) -> float:
        return self.ndb / self.k

    def as_dict(self) -> dict:
        return {"ndb": self.ndb, "ndb_k": self.ndb_over_k, "ndb_js": self.js}


def js_divergence(p, q) -> float:
    """Jensen-Shannon divergence between two histograms, in bits (0 = equal, 1 = disjoint)."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise FacelibError(f"histograms must be 1-D with equal length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise FacelibError("histograms must be non-negative with a positive total")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def two_proportion_z(count_a, n_a: int, count_b, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided pooled two-proportion z-test per bin: (z = (p_b - p_a) / se, p-values).

    A bin both samples leave empty has se = 0; it is not different (z = 0, p = 1).
    """
    count_a = np.asarray(count_a, np.float64)
    count_b = np.asarray(count_b, np.float64)
    pooled = (count_a + count_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = count_b / n_b - count_a / n_a
    z = np.divide(diff, se, out=np.zeros_like(diff), where=se > 0)
    return z, 2 * stats.norm.sf(np.abs(z))


def default_ndb_bins(n_real: int) -> int:
    """K = 100 as in the paper, reduced so each bin expects >= 20 real samples (z-test validity)."""
    return int(max(2, min(100, n_real // 20)))


def ndb(real, generated, k: int | None = None, alpha: float = 0.05, seed: int = 0, max_fit: int = 20000) -> NDBResult:
    """Number of statistically Different Bins between real and generated samples.

    k-means (sklearn, k bins, fitted on at most `max_fit` real samples) defines the bins; every
    sample goes to its nearest centre. A bin counts as different when the two-sided
    two-proportion z-test of its real vs generated share has p < alpha. For samples from the
    real distribution about alpha * K bins differ by chance.
    """
    x, y = feature_pair(real, generated, flatten=True)
    k = default_ndb_bins(x.shape[0]) if k is None else int(k)
    if k < 2 or k > x.shape[0]:
        raise FacelibError(f"NDB needs 2 <= k <= number of real samples ({x.shape[0]}), got k={k}")
    if not 0.0 < alpha < 1.0:
        raise FacelibError(f"alpha must be in (0, 1), got {alpha}")
    # Bins only need to be a fixed partition fitted on real data, so k-means runs in float32
    # (half the memory and time of float64); the test statistics are computed in float64.
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    rng = np.random.default_rng(seed)
    fit = x32 if x.shape[0] <= max_fit else x32[np.sort(rng.choice(x.shape[0], max_fit, replace=False))]
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(fit)
    c_real = np.bincount(km.predict(x32), minlength=k).astype(np.float64)
    c_gen = np.bincount(km.predict(y32), minlength=k).astype(np.float64)
    z, p_values = two_proportion_z(c_real, x.shape[0], c_gen, y.shape[0])
    different = p_values < alpha
    return NDBResult(
        ndb=int(different.sum()),
        k=k,
        real_proportions=c_real / x.shape[0],
        gen_proportions=c_gen / y.shape[0],
        z=z,
        p_values=p_values,
        different=different,
        js=js_divergence(c_real, c_gen),
    )


# --------------------------------------------------------------------------- attribute marginals


def _attribute_names(n: int, names):
    if names is not None:
        names = list(names)
        if len(names) != n:
            raise FacelibError(f"{len(names)} attribute names for {n} attribute columns; pass one name per column")
        return names
    if n == 40:
        return list(ATTRIBUTE_NAMES)
    return [f"attr_{i:02d}" for i in range(n)]


def attribute_tv(generated_attrs, real_attrs, names=None) -> dict:
    """Total variation between attribute marginals of generated and real samples.

    Inputs are (N, A) arrays of 0/1 labels (or probabilities in [0, 1]). For one binary
    attribute the TV distance between Bernoulli(p) and Bernoulli(q) is |p - q|; we report each
    and their mean over attributes ("attribute_tv").
    """
    g = np.asarray(generated_attrs, np.float64)
    r = np.asarray(real_attrs, np.float64)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1] or len(g) == 0 or len(r) == 0:
        raise FacelibError(
            f"attribute arrays must be non-empty (N, A) with the same A, got {g.shape} and {r.shape}"
        )
    if (g < 0).any() or (g > 1).any() or (r < 0).any() or (r > 1).any():
        raise FacelibError("attributes must be 0/1 labels or probabilities in [0, 1]; convert -1/1 labels with (a + 1) / 2")
    names = _attribute_names(g.shape[1], names)
    p_g, p_r = g.mean(axis=0), r.mean(axis=0)
    tv = np.abs(p_g - p_r)
    return {
        "attribute_tv": float(tv.mean()),
        "per_attribute": dict(zip(names, tv.tolist())),
        "p_gen": dict(zip(names, p_g.tolist())),
        "p_real": dict(zip(names, p_r.tolist())),
    }
