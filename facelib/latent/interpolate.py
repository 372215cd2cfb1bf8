"""Walks between latents: lerp, slerp, seed-pair grids and looping GIFs.

Why slerp: a standard normal latent in d dimensions lies near the sphere of radius sqrt(d); the
straight line between two such points dips inside it (the midpoint's norm is about sqrt(d/2)), where
the generator saw no training inputs. Slerp follows the great circle and keeps the norm when the
endpoints have equal norms (White 2016, "Sampling Generative Networks").
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from facelib.errors import FacelibError
from facelib.images import make_grid, to_uint8, write_image

METHODS = ("slerp", "lerp")


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise FacelibError(f"interpolation needs two latent vectors of the same length, got shapes "
                           f"{a.shape} and {b.shape}")
    return a, b


def _ts(t) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, np.float64)
    return np.atleast_1d(arr), arr.ndim == 0


def lerp(a, b, t) -> np.ndarray:
    """(1 - t) a + t b; ``t`` a scalar (one vector) or a sequence (one row per t)."""
    a, b = _pair(a, b)
    ts, scalar = _ts(t)
    out = (1.0 - ts)[:, None] * a + ts[:, None] * b
    return (out[0] if scalar else out).astype(np.float32)


def slerp(a, b, t, eps: float = 1e-7) -> np.ndarray:
    """Spherical interpolation: along the great circle through a and b, with the norm itself
    interpolated linearly (so equal-norm endpoints keep their norm everywhere). Nearly parallel
    endpoints fall back to lerp, where the two agree."""
    a, b = _pair(a, b)
    ts, scalar = _ts(t)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < eps or nb < eps:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if np.sin(omega) < eps:
        return lerp(a, b, t)
    direction = (np.sin((1.0 - ts) * omega)[:, None] * ua + np.sin(ts * omega)[:, None] * ub)
    direction /= np.sin(omega)
    out = direction * ((1.0 - ts) * na + ts * nb)[:, None]
    out[ts == 0] = a  # exact endpoints, free of rounding
    out[ts == 1] = b
    return (out[0] if scalar else out).astype(np.float32)


def interpolate(a, b, steps: int, method: str = "slerp") -> np.ndarray:
    """``steps`` latents from a to b inclusive, (steps, d) float32."""
    if method not in METHODS:
        raise FacelibError(f"interpolation method {method!r}: choose one of {', '.join(METHODS)}")
    if int(steps) < 2:
        raise FacelibError(f"steps={steps}: an interpolation needs at least 2 steps (both ends)")
    fn = slerp if method == "slerp" else lerp
    return fn(a, b, np.linspace(0.0, 1.0, int(steps)))


def _row_attributes(run, seed: int, attrs, n: int):
    """One attribute vector for a whole row (conditional runs): attributes are binary, so they
    stay fixed while z moves. None draws them from the data's joint distribution with ``seed``."""
    if not run.conditional:
        if attrs is not None:
            raise FacelibError(f"{run.path} is an unconditional run: drop attrs, or use a "
                               "conditional run")
        return None
    if attrs is None or isinstance(attrs, dict):
        row = run.sample_attributes(1, attrs, seed=seed)[0]
    else:
        row = np.asarray(attrs, np.float32).reshape(-1)
    return np.broadcast_to(row, (n, row.shape[0])).astype(np.float32)


def interpolation_images(run, seed_a: int, seed_b: int, steps: int = 8, method: str = "slerp",
                         attrs=None) -> np.ndarray:
    """uint8 NHWC faces along the path from seed_a's latent to seed_b's."""
    z = interpolate(run.sample_latents(1, seed_a)[0], run.sample_latents(1, seed_b)[0], steps,
                    method)
    return to_uint8(run.synthesize(z, _row_attributes(run, seed_a, attrs, len(z))))


def interpolation_grid(run, seed_pairs: Sequence[tuple[int, int]], steps: int = 8,
                       method: str = "slerp", attrs=None, path: str | Path | None = None
                       ) -> np.ndarray:
    """A grid: one row per (seed_a, seed_b) pair, one column per step. Written to ``path`` if
    given; returns the uint8 HWC grid."""
    pairs = [tuple(int(s) for s in p) for p in seed_pairs]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise FacelibError("seed_pairs must be a non-empty list of (seed_a, seed_b) pairs")
    rows = [interpolation_images(run, a, b, steps, method, attrs) for a, b in pairs]
    grid = make_grid(np.concatenate(rows), ncols=int(steps))
    if path is not None:
        write_image(path, grid)
    return grid


def write_gif(frames, path: str | Path, duration_ms: int | Sequence[int] = 80, loop: int = 0,
              scale: int = 1) -> Path:
    """Write uint8 NHWC frames as an animated GIF (Pillow): per-frame durations, ``loop=0`` loops
    forever. ``scale`` enlarges each frame by pixel repetition (small faces stay crisp)."""
    from PIL import Image  # optional here: only GIF writing needs Pillow, interpolation does not

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
        raise FacelibError(f"GIF frames must be uint8 (N, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = to_uint8(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    durations = ([int(duration_ms)] * len(frames) if np.ndim(duration_ms) == 0
                 else [int(d) for d in duration_ms])
    if len(durations) != len(frames) or min(durations) <= 0:
        raise FacelibError(f"need one positive duration per frame ({len(frames)}), got "
                           f"{duration_ms!r}")
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=int(loop), disposal=1)
    return path


def interpolation_gif(run, seeds: Sequence[int], path: str | Path, steps: int = 16,
                      method: str = "slerp", duration_ms: int = 80, hold_ms: int = 400,
                      attrs=None, scale: int = 2, loop: int = 0) -> Path:
    """A looping GIF that visits ``seeds`` in turn and returns to the first one. Each seed's face
    is held for ``hold_ms``; in-between frames last ``duration_ms``."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise FacelibError("an interpolation GIF needs at least two seeds")
    frames, durations = [], []
    row_attrs = _row_attributes(run, seeds[0], attrs, 1)
    for a, b in zip(seeds, seeds[1:] + seeds[:1]):
        z = interpolate(run.sample_latents(1, a)[0], run.sample_latents(1, b)[0], steps, method)
        y = (None if row_attrs is None
             else np.broadcast_to(row_attrs[0], (len(z), row_attrs.shape[1])))
        frames.append(to_uint8(run.synthesize(z[:-1], None if y is None else y[:-1])))
        durations += [hold_ms] + [duration_ms] * (len(z) - 2)
    return write_gif(np.concatenate(frames), path, durations, loop=loop, scale=scale)
