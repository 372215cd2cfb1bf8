"""A prepared cache folder, opened as memory maps so that no step loads every image into RAM.

Layout (written once by ``facelib.data.prepare.prepare``)::

    images.npy      uint8 (N, R, R, 3) RGB
    attributes.npy  int8 (N, 40) in {0, 1}
    partition.npy   int8 (N,) 0 train, 1 valid, 2 test
    filenames.txt   N lines, the source file of each row
    meta.json       resolution, count, attribute_names, crop, source, skipped files, created
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelib.data.celeba import SPLITS
from facelib.errors import FacelibError

CACHE_FILES = ("images.npy", "attributes.npy", "partition.npy", "filenames.txt", "meta.json")


def is_cache(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a complete prepared cache."""
    path = Path(path)
    return path.is_dir() and all((path / f).is_file() for f in CACHE_FILES)


def _not_a_cache(path: Path, why: str) -> FacelibError:
    return FacelibError(
        f"{path} is not a prepared facelib cache ({why}); run "
        f"`python -m facelib prepare SRC {path} --resolution 64` first (SRC: a CelebA folder or zip, "
        f"or 'celeba' to download)"
    )


@dataclass
class FaceCache:
    """The cache's arrays (images as a read-only memmap) and its metadata."""

    path: Path
    images: np.ndarray
    attributes: np.ndarray
    partition: np.ndarray
    filenames: list[str]
    meta: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: "str | Path | FaceCache") -> "FaceCache":
        """Open a cache folder; FacelibError if it is missing, incomplete or inconsistent. An
        open FaceCache is returned as is, so every caller converts "a path or a cache" here."""
        if isinstance(path, cls):
            return path
        path = Path(path)
        if not path.is_dir():
            raise _not_a_cache(path, "no such folder")
        missing = [f for f in CACHE_FILES if not (path / f).is_file()]
        if missing:
            raise _not_a_cache(path, f"missing {', '.join(missing)}")
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("meta.json is not a JSON object")
            images = np.load(path / "images.npy", mmap_mode="r", allow_pickle=False)
            attributes = np.load(path / "attributes.npy", allow_pickle=False)
            partition = np.load(path / "partition.npy", allow_pickle=False)
        except (ValueError, OSError, RecursionError) as e:  # JSON/UTF-8 errors are ValueErrors
            raise _not_a_cache(path, f"unreadable file: {e}") from None
        filenames = (path / "filenames.txt").read_text(encoding="utf-8",
                                                        errors="replace").splitlines()
        n = len(images)
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1:] != (
                meta.get("resolution"), meta.get("resolution"), 3):
            raise _not_a_cache(path, f"images.npy has shape {images.shape} {images.dtype}, "
                                     f"expected (N, R, R, 3) uint8 with R={meta.get('resolution')}")
        sizes = {"meta.json count": meta.get("count"), "attributes.npy": len(attributes),
                 "partition.npy": len(partition), "filenames.txt": len(filenames)}
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise _not_a_cache(path, f"images.npy has {n} rows but {wrong}")
        return cls(path, images, attributes, partition, filenames, meta)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @property
    def attribute_names(self) -> list[str]:
        return list(self.meta.get("attribute_names", []))

    @property
    def num_attributes(self) -> int:
        return int(self.attributes.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def indices(self, split: str = "train") -> np.ndarray:
        """Row indices (int64, ascending) of ``split``: train, valid, test or all."""
        if split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLITS:
            raise FacelibError(f"unknown split {split!r}: use one of train, valid, test, all")
        return np.flatnonzero(self.partition == SPLITS[split]).astype(np.int64)

    def __repr__(self) -> str:
        return f"FaceCache({str(self.path)!r}, n={len(self)}, resolution={self.resolution})"
