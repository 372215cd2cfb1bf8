"""The bundled sample: 500 real CelebA faces, so tests, CI and smoke notebooks need no download.

``build_sample`` made ``assets/celeba-sample/`` from the first 500 CelebA ids (CelebA face box,
then 64x64, JPEG quality 95); it is kept so the sample can be rebuilt and checked.
``sample_cache(resolution)`` prepares the sample once under the facelib cache folder.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import cv2
import numpy as np

from facelib.data.cache import FaceCache
from facelib.data.celeba import (
    ATTR_FILE, IMAGES_DIR, default_cache_root, format_attributes, locate, parse_attributes,
)
from facelib.data.prepare import load_processed, prepare
from facelib.errors import FacelibError

SAMPLE_RESOLUTION = 64
JPEG_QUALITY = 95

NOTICE = """# CelebA sample (bundled with facelib)

{n} real faces from the Large-scale CelebFaces Attributes dataset (CelebA), MMLAB, The Chinese
University of Hong Kong, with their rows of the official `list_attr_celeba.txt` (40 attributes,
official format, count line {n}).

Provenance: the first {n} image ids ({first} .. {last}) of CelebA's aligned faces
(`img_align_celeba`), cropped to the standard face box (148x148 of the 178x218 aligned image,
centred horizontally, top at row 40; the same box as fractions of the image size) and resized to
{res}x{res} with area averaging, saved as JPEG quality {q}. Made by
`facelib.data.sample.build_sample(src, dst, n={n})`.

Terms: CelebA is available for **non-commercial research and educational use only**; the
identities and images belong to their owners and the dataset's terms forbid commercial use and
redistribution beyond them. If you use these images, cite:

    Ziwei Liu, Ping Luo, Xiaogang Wang, Xiaoou Tang.
    Deep Learning Face Attributes in the Wild. ICCV 2015.

Dataset page: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
"""


def build_sample(src: str | Path, dst: str | Path, n: int = 500,
                 resolution: int = SAMPLE_RESOLUTION) -> Path:
    """Write the first ``n`` faces of the CelebA folder ``src`` to ``dst`` in CelebA layout."""
    files = locate(src)
    table = parse_attributes(files.attributes)
    order = sorted(range(len(table)), key=lambda i: table.filenames[i])[:n]
    if len(order) < n:
        raise FacelibError(f"{src} has only {len(order)} labelled images, fewer than n={n}")
    table = table.select(order)
    dst = Path(dst)
    (dst / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for name in table.filenames:
        img = load_processed(files.images / name, resolution, "celeba")
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise FacelibError(f"could not encode {name} as JPEG")
        (dst / IMAGES_DIR / (Path(name).stem + ".jpg")).write_bytes(buf.tobytes())
    (dst / ATTR_FILE).write_text(format_attributes(table))
    (dst / "NOTICE.md").write_text(NOTICE.format(n=n, first=table.filenames[0], last=table.filenames[-1],
                                                 res=resolution, q=JPEG_QUALITY))
    return dst


def _has_sample(path: Path) -> bool:
    return (path / ATTR_FILE).is_file() and (path / IMAGES_DIR).is_dir()


def bundled_sample_dir() -> Path:
    """The bundled sample folder: package data ``facelib/_sample`` or ``<repo>/assets/celeba-sample``."""
    try:
        pkg = importlib.resources.files("facelib") / "_sample"
        if pkg.is_dir():
            candidate = Path(str(pkg))
            if _has_sample(candidate):
                return candidate
    except (ModuleNotFoundError, TypeError, NotADirectoryError):
        pass
    repo = Path(__file__).resolve().parents[2] / "assets" / "celeba-sample"
    if _has_sample(repo):
        return repo
    raise FacelibError(
        "the bundled CelebA sample is missing (neither facelib/_sample nor assets/celeba-sample was "
        "found); reinstall facelib from its repository (pip install -e . in a checkout)"
    )


def sample_cache(resolution: int = SAMPLE_RESOLUTION, cache_root: str | Path | None = None) -> Path:
    """A prepared cache of the bundled sample at ``resolution``, made on first use and reused."""
    src = bundled_sample_dir()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    out = root / f"celeba-sample-{resolution}"
    with open(src / ATTR_FILE) as f:
        expected = int(f.readline())
    try:
        cache = FaceCache.open(out)
        if cache.resolution == resolution and len(cache) == expected:
            return out
    except FacelibError:
        if out.is_dir():  # our own folder, damaged (e.g. a file deleted): rebuild it
            shutil.rmtree(out, ignore_errors=True)
    try:
        prepare(src, out, resolution, "auto", progress=False, overwrite=True)
    except FacelibError:
        # Another process may have finished the same cache first; use it if it is valid.
        try:
            if len(FaceCache.open(out)) == expected:
                return out
        except FacelibError:
            pass
        raise
    return out


def sample_images(resolution: int = SAMPLE_RESOLUTION, n: int | None = None) -> np.ndarray:
    """The bundled faces as uint8 (N, R, R, 3), e.g. a real reference set for a quick metric."""
    cache = FaceCache.open(sample_cache(resolution))
    return np.asarray(cache.images[: n if n is not None else len(cache)])


__all__ = ["build_sample", "bundled_sample_dir", "sample_cache", "sample_images"]
