"""Conversions between the two image conventions facelib uses, and grid figures.

Models work in float32 NHWC in [-1, 1]; files, caches and users see uint8 NHWC RGB.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] (any array-like, NHWC or HWC) to uint8 in [0, 255], rounded."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images) -> np.ndarray:
    """uint8 images in [0, 255] to float32 in [-1, 1]."""
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0


def make_grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile N images (uint8 or float in [-1, 1], NHWC) into one uint8 HWC image."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        x = to_uint8(x)
    if x.ndim != 4:
        raise ValueError(f"make_grid expects NHWC images, got shape {x.shape}")
    n, h, w, c = x.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = x[i]
    return grid


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write one uint8 RGB HWC image (PNG/JPEG by suffix), atomically (temp file + rename)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix or ".png"
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(np.asarray(image)[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode an image as {suffix}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)
    return path


def save_grid(images, path: str | Path, ncols: int | None = None) -> Path:
    """Tile images into a grid and write it as PNG (or JPEG by suffix)."""
    return write_image(path, make_grid(images, ncols=ncols))


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB HWC; raises ValueError when it cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img[..., ::-1].copy()
