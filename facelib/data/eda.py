"""Figures and numbers for exploring CelebA (notebooks 01 and 02 call these, so they stay thin).

Attribute balance matters for a conditional GAN (rare attributes get few examples per batch) and
for metrics (a generator can look good on average while never producing eyeglasses); image
statistics show what the crop and resize keep.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelib.data.celeba import AttributeTable, CelebaFiles
from facelib.data.prepare import load_processed
from facelib.errors import FacelibError
from facelib.images import CELEBA_BOX, crop_box, make_grid, read_image


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header without decoding it; None if not found."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF_MARKERS:
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no frame header before it
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def attribute_frequencies(values: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    """(name, share of 1s) for every attribute, most frequent first."""
    shares = np.asarray(values, np.float64).mean(axis=0)
    order = np.argsort(-shares, kind="stable")
    return [(names[i], float(shares[i])) for i in order]


def imbalance(values: np.ndarray) -> np.ndarray:
    """Per attribute, majority count / minority count (1 = balanced; inf if one value is absent)."""
    p = np.asarray(values, np.float64).mean(axis=0)
    lo, hi = np.minimum(p, 1 - p), np.maximum(p, 1 - p)
    with np.errstate(divide="ignore"):
        return np.where(lo > 0, hi / np.maximum(lo, 1e-12), np.inf)


def attribute_correlation(values: np.ndarray) -> np.ndarray:
    """Pearson (phi) correlation between 0/1 attributes; 0 where an attribute is constant."""
    x = np.asarray(values, np.float64)
    x = x - x.mean(axis=0)
    std = np.sqrt((x ** 2).mean(axis=0))
    cov = x.T @ x / len(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


def plot_attribute_frequencies(table: AttributeTable, ax=None):
    """Horizontal bars: share of faces with each attribute, labelled with the imbalance ratio."""
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it

    freqs = attribute_frequencies(table.values, table.names)
    ratios = dict(zip(table.names, imbalance(table.values)))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 10))
    names = [n for n, _ in freqs][::-1]
    shares = [s for _, s in freqs][::-1]
    ax.barh(names, shares, color=["tab:red" if min(s, 1 - s) < 0.1 else "tab:blue" for s in shares])
    ax.axvline(0.5, color="gray", lw=0.8, ls="--")
    for y, (name, share) in enumerate(zip(names, shares)):
        ax.text(share + 0.01, y, f"{share:.1%}  ({ratios[name]:.0f}:1)", va="center", fontsize=7)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("share of faces with the attribute (red: under 10% or over 90%)")
    ax.set_title(f"CelebA attribute frequencies, {len(table)} faces")
    ax.tick_params(axis="y", labelsize=7)
    ax.figure.tight_layout()
    return ax


def plot_attribute_correlation(table: AttributeTable, ax=None):
    """Seaborn heatmap of the attribute correlation matrix."""
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it
    import seaborn as sns  # heavy (pandas, scipy); only this heatmap uses it

    corr = attribute_correlation(table.values)
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 9))
    sns.heatmap(corr, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1, center=0, square=True,
                xticklabels=table.names, yticklabels=table.names, cbar_kws={"shrink": 0.6})
    ax.tick_params(labelsize=6)
    ax.set_title("attribute correlation (phi)")
    return ax


def strongest_correlations(table: AttributeTable, k: int = 10) -> list[tuple[str, str, float]]:
    """The ``k`` attribute pairs with the largest absolute correlation."""
    corr = attribute_correlation(table.values)
    i, j = np.triu_indices(len(table.names), k=1)
    order = np.argsort(-np.abs(corr[i, j]))[:k]
    return [(table.names[i[o]], table.names[j[o]], float(corr[i[o], j[o]])) for o in order]


def attribute_examples(files: CelebaFiles, table: AttributeTable, attribute: str, n: int = 8,
                       resolution: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random faces with the attribute and ``n`` without, uint8 (n, R, R, 3) each."""
    col = table.column(attribute)
    rng = np.random.default_rng(seed)
    out = []
    for value in (1, 0):
        rows = np.flatnonzero(col == value)
        if len(rows) == 0:
            raise FacelibError(f"no face has {attribute}={value} in this data; pick another attribute")
        pick = rng.choice(rows, size=min(n, len(rows)), replace=False)
        out.append(np.stack([load_processed(files.images / table.filenames[r], resolution) for r in pick]))
    return out[0], out[1]


def plot_attribute_examples(files: CelebaFiles, table: AttributeTable, attributes: list[str],
                            n: int = 6, resolution: int = 64, seed: int = 0):
    """One row per attribute: ``n`` faces with it (left) and ``n`` without (right)."""
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it

    fig, axes = plt.subplots(len(attributes), 1, figsize=(2 * n * 0.9, 1.9 * len(attributes)), squeeze=False)
    for ax, name in zip(axes[:, 0], attributes):
        yes, no = attribute_examples(files, table, name, n, resolution, seed)
        grid = make_grid(np.concatenate([yes, no]), ncols=len(yes) + len(no))
        ax.imshow(grid)
        ax.set_axis_off()
        ax.set_title(f"{name}: with (left {len(yes)}) | without (right {len(no)})", fontsize=9)
    fig.tight_layout()
    return fig


def image_statistics(images: np.ndarray, batch: int = 1024) -> dict:
    """Per-channel mean/std (0..255) and the brightness of every image, computed in batches."""
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    n = len(images)
    if n == 0:
        raise FacelibError("no images to summarise")
    s, s2, count = np.zeros(3), np.zeros(3), 0
    brightness = np.empty(n, np.float64)
    for k in range(0, n, batch):
        x = np.asarray(images[k:k + batch], np.float64)
        s += x.sum(axis=(0, 1, 2))
        s2 += (x ** 2).sum(axis=(0, 1, 2))
        count += x.shape[0] * x.shape[1] * x.shape[2]
        # Rec. 601 luma: how bright the face looks to people.
        brightness[k:k + len(x)] = (x @ np.array([0.299, 0.587, 0.114])).mean(axis=(1, 2))
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean ** 2, 0))
    return {"count": n, "mean_rgb": mean.tolist(), "std_rgb": std.tolist(), "brightness": brightness}


def plot_image_statistics(images: np.ndarray, axes=None):
    """Brightness histogram and per-channel value histograms of uint8 images."""
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it

    stats = image_statistics(images)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    axes[0].hist(stats["brightness"], bins=40, color="gray")
    axes[0].set_xlabel("mean luma per image (0..255)")
    axes[0].set_title(f"brightness of {stats['count']} faces")
    sample = np.asarray(images[: min(len(images), 2000)])
    for c, color in enumerate(("red", "green", "blue")):
        axes[1].hist(sample[..., c].ravel(), bins=64, range=(0, 255), histtype="step", color=color,
                     label=f"{color}: mean {stats['mean_rgb'][c]:.0f}, std {stats['std_rgb'][c]:.0f}")
    axes[1].set_xlabel("pixel value")
    axes[1].set_title("per-channel pixel values")
    axes[1].legend(fontsize=8)
    return stats


def image_size_survey(files: CelebaFiles, filenames: list[str],
                      limit: int = 2000) -> dict[tuple[int, int], int]:
    """How many of the first ``limit`` images have each (height, width), read from file headers."""
    sizes: dict[tuple[int, int], int] = {}
    for name in filenames[:limit]:
        path = files.images / name
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            size = jpeg_size(f.read(65536))
        if size is None:
            try:
                size = read_image(path).shape[:2]
            except ValueError:
                continue
        sizes[size] = sizes.get(size, 0) + 1
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def plot_crop_box(path: str | Path, crop: str = "celeba", ax=None):
    """One raw image with the box ``prepare`` keeps for ``crop`` drawn on it."""
    import matplotlib.patches as patches  # matplotlib is for the plot_* functions only
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it

    img = read_image(path)
    h, w = img.shape[:2]
    top, left, side, _ = crop_box(h, w, crop)
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3.6))
    ax.imshow(img)
    ax.add_patch(patches.Rectangle((left - 0.5, top - 0.5), side, side, fill=False, color="lime", lw=2))
    title = f"{w}x{h}, crop={crop}: keep {side}x{side} at ({left}, {top})"
    if side == min(h, w) and h == w:
        title += "\n(square: taken as already cropped)"
    elif crop in ("celeba", "auto"):
        t, l_, hh, ww = CELEBA_BOX
        title += f"\n= {ww:.3f} W x {hh:.3f} H at ({l_:.3f} W, {t:.3f} H)"
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return ax


def plot_resize_comparison(path: str | Path, resolution: int = 32, crop: str = "auto", axes=None):
    """The same face box downsampled with nearest, bilinear and area averaging (antialiased)."""
    import matplotlib.pyplot as plt  # heavy; only the plot_* functions need it

    img = read_image(path)
    top, left, side, _ = crop_box(img.shape[0], img.shape[1], crop)
    box = img[top:top + side, left:left + side]
    methods = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "area (used)": cv2.INTER_AREA}
    if axes is None:
        _, axes = plt.subplots(1, len(methods), figsize=(3 * len(methods), 3.2))
    for ax, (label, interp) in zip(axes, methods.items()):
        small = cv2.resize(box, (resolution, resolution), interpolation=interp)
        ax.imshow(small, interpolation="nearest")
        ax.set_title(f"{label}, {resolution}x{resolution}", fontsize=9)
        ax.set_axis_off()
    return axes
