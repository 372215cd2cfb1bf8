"""Fidelity and diversity as separate numbers: precision/recall and density/coverage.

Each sample set is approximated by the union of balls around its points, each ball reaching to
the point's k-th nearest neighbour in the same set.
- precision (Kynkaanniemi et al. 2019): fraction of generated samples inside the real manifold;
  recall: fraction of real samples inside the generated manifold. Ball test is `<=` and k=3, as
  in the paper.
- density (Naeem et al. 2020): mean number of real balls containing a generated sample, divided
  by k (~1 when the distributions match, > 1 when fakes cluster where reals are dense);
  coverage: fraction of real samples whose ball contains at least one generated sample. Ball
  test is `<` and k=5, as in the paper, which makes identical sets give density exactly 1.

All distances come from the blocked search in `facelib.metrics.memorization`, so 10k x 10k
points in 2048 dimensions need only ~block_bytes of scratch memory, never an N x M matrix.
"""

from __future__ import annotations

import numpy as np

from facelib.errors import FacelibError
from facelib.metrics.arrays import feature_pair
from facelib.metrics.memorization import (
    DEFAULT_BLOCK_BYTES,
    iter_distance_blocks,
    nearest_neighbours,
)


def prdc(
    real,
    generated,
    k_pr: int = 3,
    k_dc: int = 5,
    want: tuple[str, ...] = ("precision", "recall", "density", "coverage"),
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, float]:
    """Any of precision, recall, density, coverage, sharing one real-vs-generated distance pass."""
    unknown = set(want) - {"precision", "recall", "density", "coverage"}
    if unknown:
        raise FacelibError(f"unknown prdc quantities {sorted(unknown)}; choose from precision, recall, density, coverage")
    x, y = feature_pair(real, generated, flatten=True)
    need_pr = bool({"precision", "recall"} & set(want))
    need_dc = bool({"density", "coverage"} & set(want))
    ks = ([k_pr] if need_pr else []) + ([k_dc] if need_dc else [])
    for k in ks:
        if k < 1:
            raise FacelibError(f"k must be >= 1, got {k}")

    # Real radii for both k from one neighbour search; generated radii only for recall.
    kmax = max(ks)
    if x.shape[0] <= kmax:
        raise FacelibError(
            f"k={kmax} nearest-neighbour radii need more than {kmax} real samples, got {x.shape[0]}"
        )
    real_nn2, _ = nearest_neighbours(x, x, kmax, exclude_self=True, squared=True, block_bytes=block_bytes)
    r2_real_pr = real_nn2[:, k_pr - 1] if need_pr else None
    r2_real_dc = real_nn2[:, k_dc - 1] if need_dc else None
    r2_gen = None
    if "recall" in want:
        if y.shape[0] <= k_pr:
            raise FacelibError(
                f"recall needs more than k={k_pr} generated samples for the radii, got {y.shape[0]}"
            )
        r2_gen = nearest_neighbours(y, y, k_pr, exclude_self=True, squared=True, block_bytes=block_bytes)[0][:, -1]

    gen_in_real = np.zeros(y.shape[0], bool)      # precision
    real_in_gen = np.zeros(x.shape[0], bool)      # recall
    density_count = np.zeros(y.shape[0], np.int64)
    real_min_d2 = np.full(x.shape[0], np.inf)     # coverage
    for i0, i1, j0, j1, d2 in iter_distance_blocks(x, y, block_bytes):
        if "precision" in want:
            gen_in_real[j0:j1] |= (d2 <= r2_real_pr[i0:i1, None]).any(axis=0)
        if "recall" in want:
            real_in_gen[i0:i1] |= (d2 <= r2_gen[None, j0:j1]).any(axis=1)
        if "density" in want:
            density_count[j0:j1] += (d2 < r2_real_dc[i0:i1, None]).sum(axis=0)
        if "coverage" in want:
            np.minimum(real_min_d2[i0:i1], d2.min(axis=1), out=real_min_d2[i0:i1])

    out: dict[str, float] = {}
    if "precision" in want:
        out["precision"] = float(gen_in_real.mean())
    if "recall" in want:
        out["recall"] = float(real_in_gen.mean())
    if "density" in want:
        out["density"] = float(density_count.sum() / (k_dc * y.shape[0]))
    if "coverage" in want:
        out["coverage"] = float((real_min_d2 < r2_real_dc).mean())
    return out


def precision_recall(real, generated, k: int = 3, block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019)."""
    return prdc(real, generated, k_pr=k, want=("precision", "recall"), block_bytes=block_bytes)


def density_coverage(real, generated, k: int = 5, block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020)."""
    return prdc(real, generated, k_dc=k, want=("density", "coverage"), block_bytes=block_bytes)
