"""Does the generator copy its training set? Nearest training neighbours of generated faces.

A generated face is flagged as a likely copy when its nearest-neighbour distance to the training
set is below the q-th percentile (default 1st) of the same distance for held-out real faces,
i.e. when it is closer to a training image than almost any genuinely new face is. Works in any
feature space: flattened pixels (catches exact copies) or Inception features (catches near copies).

The blocked distance search here (`iter_distance_blocks`, `nearest_neighbours`) is also what the
k-NN based metrics in `facelib.metrics.prdc` use: memory stays bounded by `block_bytes` however
many points there are, and inputs may be uint8 memmaps (converted to float64 a tile at a time).

Why not ``sklearn.metrics.pairwise_distances_chunked``: it chunks only the query rows and holds
the whole reference set as float64. Measured (500 queries against 8,000 uint8 64x64 faces from a
memmap, k=1): peak RSS grew 860 MB with it against 93 MB here, at the same speed (11.3 s vs
11.4 s). The pixel-space memorization search runs against up to 20,000 training faces (2 GB as
float64 at 64 px, 16 GB for all of CelebA), so the reference side must be tiled too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from facelib.errors import FacelibError
from facelib.images import save_grid, to_uint8
from facelib.metrics.arrays import as_vectors, feature_pair

DEFAULT_BLOCK_BYTES = 64 * 2**20


def iter_distance_blocks(
    a, b, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Yield (i0, i1, j0, j1, d2): squared Euclidean distances a[i0:i1] to b[j0:j1] in float64.

    Tiles and the float64 copies of their rows are each at most ~block_bytes, so no N x M
    matrix is ever held. Distances use |a|^2 + |b|^2 - 2 a.b (one matrix product per tile),
    clipped at 0 against round-off.
    """
    a, b = feature_pair(a, b, ("first point set", "second point set"), flatten=True)
    n_a, n_b, dim = a.shape[0], b.shape[0], a.shape[1]
    units = max(1, int(block_bytes) // 8)
    cols = max(1, min(n_b, units // max(dim, 256)))
    for j0 in range(0, n_b, cols):
        j1 = min(n_b, j0 + cols)
        bb = np.asarray(b[j0:j1], dtype=np.float64)
        bn = np.einsum("ij,ij->i", bb, bb)
        rows = max(1, min(n_a, units // max(dim, j1 - j0)))
        for i0 in range(0, n_a, rows):
            i1 = min(n_a, i0 + rows)
            ab = np.asarray(a[i0:i1], dtype=np.float64)
            an = np.einsum("ij,ij->i", ab, ab)
            d2 = ab @ bb.T
            d2 *= -2.0
            d2 += an[:, None]
            d2 += bn[None, :]
            np.maximum(d2, 0.0, out=d2)
            yield i0, i1, j0, j1, d2


def nearest_neighbours(
    query,
    reference,
    k: int = 1,
    exclude_self: bool = False,
    squared: bool = False,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference points of every query point, by Euclidean distance.

    Returns (distances (Nq, k) float64 ascending, indices (Nq, k) int64 into `reference`).
    With `exclude_self=True` query and reference are the same set and a point is not its own
    neighbour (exact duplicates elsewhere in the set still count, at distance 0).
    `squared=True` returns squared distances (exact for comparisons against other squared ones).
    """
    q = as_vectors(query, "query")
    r = as_vectors(reference, "reference")
    k = int(k)
    available = r.shape[0] - (1 if exclude_self else 0)
    if k < 1 or k > available:
        raise FacelibError(
            f"k={k} nearest neighbours requested but the reference set offers {available}; "
            "use 1 <= k <= that number or add reference points"
        )
    if exclude_self and q.shape[0] != r.shape[0]:
        raise FacelibError("exclude_self=True needs query and reference to be the same set")
    best_d = np.full((q.shape[0], k), np.inf)
    best_i = np.zeros((q.shape[0], k), np.int64)
    for i0, i1, j0, j1, d2 in iter_distance_blocks(q, r, block_bytes):
        if exclude_self:
            lo, hi = max(i0, j0), min(i1, j1)
            if lo < hi:
                idx = np.arange(lo, hi)
                d2[idx - i0, idx - j0] = np.inf
        if d2.shape[1] > k:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(d2.shape[1]), d2.shape)
        cand_d = np.concatenate([best_d[i0:i1], np.take_along_axis(d2, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i[i0:i1], part + j0], axis=1)
        keep = np.argpartition(cand_d, k - 1, axis=1)[:, :k]
        best_d[i0:i1] = np.take_along_axis(cand_d, keep, axis=1)
        best_i[i0:i1] = np.take_along_axis(cand_i, keep, axis=1)
    order = np.argsort(best_d, axis=1, kind="stable")
    best_d = np.take_along_axis(best_d, order, axis=1)
    return (best_d if squared else np.sqrt(best_d)), np.take_along_axis(best_i, order, axis=1)


@dataclass
class MemorizationResult:
    """Per generated sample: NN distance and index into the training set; the flagging rule."""

    distances: np.ndarray  # (N_gen,) distance to the nearest training sample
    indices: np.ndarray  # (N_gen,) index of that training sample
    heldout_distances: np.ndarray  # (N_heldout,) same for held-out real samples
    threshold: float  # q-th percentile of heldout_distances
    flagged: np.ndarray  # (N_gen,) bool, distances <= threshold
    fraction: float  # mean of flagged

    def as_dict(self) -> dict:
        return {"memorization_fraction": self.fraction, "memorization_threshold": self.threshold}


def memorization_score(
    generated, train, heldout, q: float = 1.0, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> MemorizationResult:
    """Fraction of generated samples closer to the training set than the q-th percentile of
    held-out real samples' nearest-training-neighbour distances.

    For a generator that does not copy, about q% of samples are flagged by chance; copies of
    training images have distance ~0 and are always flagged.
    """
    if not 0.0 < q < 100.0:
        raise FacelibError(f"percentile q must be in (0, 100), got {q}; the usual choice is 1")
    gen_d, gen_i = nearest_neighbours(generated, train, 1, block_bytes=block_bytes)
    held_d, _ = nearest_neighbours(heldout, train, 1, block_bytes=block_bytes)
    threshold = float(np.percentile(held_d[:, 0], q))
    flagged = gen_d[:, 0] <= threshold
    return MemorizationResult(
        distances=gen_d[:, 0],
        indices=gen_i[:, 0],
        heldout_distances=held_d[:, 0],
        threshold=threshold,
        flagged=flagged,
        fraction=float(flagged.mean()),
    )


def neighbour_grid(query_images, train_images, indices, path: str | Path, max_rows: int = 16) -> Path:
    """Save a PNG: each row is a query image followed by its nearest training images.

    `indices` is (N, k) (or (N,)) from `nearest_neighbours` / `MemorizationResult.indices`;
    images are uint8 or float in [-1, 1], NHWC, same size for query and training images.
    """
    query = np.asarray(query_images)
    idx = np.asarray(indices)
    if idx.ndim == 1:
        idx = idx[:, None]
    if query.ndim != 4 or idx.ndim != 2 or len(query) != len(idx):
        raise FacelibError(
            f"neighbour_grid needs NHWC query images and one row of indices per image; got images "
            f"{query.shape} and indices {np.shape(indices)}"
        )
    n = min(len(query), int(max_rows))
    if n == 0:
        raise FacelibError("neighbour_grid got no query images; pass at least one")
    if idx.min() < 0 or idx.max() >= len(train_images):
        raise FacelibError(
            f"neighbour indices out of range for {len(train_images)} training images; pass the "
            "training images the indices were computed against"
        )
    rows = []
    for r in range(n):
        q = query[r]
        q = q if q.dtype == np.uint8 else to_uint8(q)
        neigh = np.asarray(train_images[idx[r]])
        neigh = neigh if neigh.dtype == np.uint8 else to_uint8(neigh)
        if neigh.shape[1:] != q.shape:
            raise FacelibError(
                f"query images are {q.shape} but training images are {neigh.shape[1:]}; "
                "resize them to the same resolution"
            )
        rows.append(q[None])
        rows.append(neigh)
    return save_grid(np.concatenate(rows), path, ncols=idx.shape[1] + 1)
