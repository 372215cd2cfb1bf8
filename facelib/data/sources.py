"""Read faces from whatever a user points at, as uint8 NHWC at one resolution.

Metrics and the detector compare image sets that come from different places: a prepared cache,
a CelebA folder, a folder of generated PNGs, or an .npy array. One function per need:
``iter_image_batches`` streams (bounded memory) and ``load_images`` collects.
CelebA-layout folders get the CelebA face crop (``crop="auto"``); plain folders of arbitrary
images get a centre square crop; both are resized with area averaging (antialiased).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from facelib.data.cache import FaceCache, is_cache
from facelib.data.celeba import IMAGE_EXTENSIONS, _image_dir
from facelib.data.prepare import bounded_map, load_processed
from facelib.errors import FacelibError
from facelib.images import resize_batch, to_uint8


def source_kind(path: str | Path) -> str:
    """``cache``, ``celeba`` (CelebA layout), ``folder`` (plain image folder) or ``array`` (.npy)."""
    path = Path(path)
    if not path.exists():
        raise FacelibError(f"{path} does not exist: pass a prepared cache, a CelebA folder, a folder "
                           f"of images or an .npy array")
    if path.is_file():
        if path.suffix == ".npy":
            return "array"
        raise FacelibError(f"{path} is a file: pass a folder of images, a prepared cache or an .npy array")
    if is_cache(path):
        return "cache"
    if _image_dir(path) is not None:
        return "celeba"
    return "folder"


def list_image_files(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), in sorted order."""
    folder = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def _array_batches(array: np.ndarray, resolution: int, batch_size: int, limit: int | None):
    n = len(array) if limit is None else min(limit, len(array))
    for start in range(0, n, batch_size):
        chunk = np.asarray(array[start:min(n, start + batch_size)])
        if chunk.dtype != np.uint8:
            chunk = to_uint8(chunk)
        yield resize_batch(chunk, resolution)  # non-square: centre square first


def iter_image_batches(path: str | Path, resolution: int, batch_size: int = 256,
                       limit: int | None = None, workers: int | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 (b, R, R, 3) batches (the last one may be smaller) from any image source.

    Unreadable files in folders are skipped with one warning that gives their count.
    """
    if batch_size <= 0:
        raise FacelibError(f"batch_size must be positive, got {batch_size}")
    path = Path(path)
    kind = source_kind(path)
    if kind == "cache":
        yield from _array_batches(FaceCache.open(path).images, resolution, batch_size, limit)
        return
    if kind == "array":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise FacelibError(f"{path} holds an array of shape {arr.shape}; expected images (N, H, W, 3)")
        yield from _array_batches(arr, resolution, batch_size, limit)
        return
    if kind == "celeba":
        files, crop = list_image_files(_image_dir(path)), "auto"
    else:
        files, crop = list_image_files(path), "none"
    if limit is not None:
        files = files[:limit]
    if not files:
        raise FacelibError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {path}")

    def load(p: Path):
        try:
            return load_processed(p, resolution, crop)
        except (ValueError, OSError):
            return None

    bad, batch = 0, []
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        for img in bounded_map(pool, load, files, window=max(batch_size, 64)):
            if img is None:
                bad += 1
                continue
            batch.append(img)
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)
    if bad:
        warnings.warn(f"skipped {bad} unreadable image file(s) in {path}", stacklevel=2)
    if bad == len(files):
        raise FacelibError(f"none of the {len(files)} image files in {path} could be decoded")


def load_images(path: str | Path, resolution: int, limit: int | None = None) -> np.ndarray:
    """All images (or the first ``limit``) of a source as one uint8 (N, R, R, 3) array."""
    batches = list(iter_image_batches(path, resolution, batch_size=512, limit=limit))
    if not batches:
        return np.zeros((0, resolution, resolution, 3), np.uint8)
    return np.concatenate(batches)
