"""Preprocess CelebA once into a compact uint8 cache: crop, antialiased resize, stream to disk.

Why a cache: decoding 200k JPEGs every epoch costs more than training a small GAN on them.
Why streaming: images are decoded by a thread pool in bounded windows and appended to a
preallocated ``.npy`` with plain file writes, so peak memory stays flat however many images there
are. Skipped images are compacted away, then the ``.npy`` header is rewritten with the true count
(padded to the same length) and the file truncated. Everything is written into a temporary sibling
folder renamed into place at the end: an interrupted run never leaves a cache that looks valid.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import struct
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import numpy as np

from facelib.data.cache import is_cache
from facelib.data.celeba import (
    IMAGE_EXTENSIONS, CelebaFiles, get_celeba, parse_attributes, parse_partition, seeded_partition,
)
from facelib.atomic import replace_dir
from facelib.errors import FacelibError

RESOLUTIONS = (32, 64, 128)
CROPS = ("auto", "celeba", "none")

# The standard CelebA face box: 148x148 pixels of the aligned 178x218 image, centred horizontally,
# top at row 40; kept as fractions so it works at any scale (e.g. the 89x109 half-size copy).
CELEBA_BOX = (40 / 218, 15 / 178, 148 / 218, 148 / 178)  # (top, left, height, width)


def _round(x: float) -> int:
    return math.floor(x + 0.5)


@functools.lru_cache(maxsize=256)
def crop_box(height: int, width: int, crop: str = "auto") -> tuple[int, int, int, int]:
    """The (top, left, size, size) square to keep from an image of ``height`` x ``width``.

    ``celeba``: the CelebA face box scaled to the image; ``auto``: that box for non-square images,
    the whole image for square ones (e.g. the bundled, already-cropped sample); ``none``: no face
    crop. A region that is still not square is centre-cropped to a square: aspect ratio is never
    distorted.
    """
    if crop not in CROPS:
        raise FacelibError(f"unknown crop {crop!r}: use one of {', '.join(CROPS)}")
    top, left, h, w = 0, 0, height, width
    if crop == "celeba" or (crop == "auto" and height != width):
        t, l_, hh, ww = CELEBA_BOX
        top, left = _round(t * height), _round(l_ * width)
        h, w = _round(hh * height), _round(ww * width)
        h, w = min(h, height - top), min(w, width - left)
    side = min(h, w)
    top += (h - side) // 2
    left += (w - side) // 2
    return top, left, side, side


def resize_square(img: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a square image: area averaging when shrinking (antialiased), bicubic when enlarging."""
    import cv2

    if img.shape[0] == resolution and img.shape[1] == resolution:
        return img
    interp = cv2.INTER_AREA if img.shape[0] >= resolution else cv2.INTER_CUBIC
    return cv2.resize(img, (resolution, resolution), interpolation=interp)


def process_image(img: np.ndarray, resolution: int, crop: str = "auto") -> np.ndarray:
    """Crop (see ``crop_box``) and resize one HWC image to ``resolution`` x ``resolution``."""
    top, left, side, _ = crop_box(img.shape[0], img.shape[1], crop)
    return resize_square(img[top:top + side, left:left + side], resolution)


def load_processed(path: str | Path, resolution: int, crop: str = "auto") -> np.ndarray:
    """Decode, crop and resize one image file to uint8 RGB; ValueError if it is unreadable.

    A JPEG without its end-of-image marker is rejected as truncated: libjpeg would "decode" it
    with the missing rows filled in grey, and such a face would be training data.
    """
    import cv2

    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        # Inside the compressed scan 0xFF is always followed by 0x00 or a restart marker, so the
        # end marker can be missing from the tail only when the file was cut short.
        raise ValueError("truncated JPEG (no end-of-image marker)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error as e:  # some broken files raise instead of returning None
        raise ValueError(f"not a readable image ({e})") from None
    if img is None:
        raise ValueError("not a readable image")
    out = process_image(img, resolution, crop)  # BGR still: converting 64x64 is cheaper
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def bounded_map(pool: ThreadPoolExecutor, fn, items, window: int):
    """``pool.map`` in order but with at most ``window`` tasks in flight (bounded memory)."""
    it = iter(items)
    pending = deque(pool.submit(fn, x) for x in islice(it, window))
    while pending:
        fut = pending.popleft()
        for x in islice(it, 1):
            pending.append(pool.submit(fn, x))
        yield fut.result()


# ---------------------------------------------------------------------------------------------
# .npy files written in a stream


def npy_data_offset(path: str | Path) -> int:
    """Byte offset where the array data of an .npy file starts."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def shrink_npy(path: str | Path, count: int) -> None:
    """Keep only the first ``count`` rows of an .npy file in place.

    The header is rewritten with the new shape and padded to its old length (so the data offset and
    the format's 64-byte alignment stay), then the file is truncated after the last kept row.
    """
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        offset = f.tell()
        if fortran or not shape or count > shape[0] or count < 0:
            raise ValueError(f"cannot shrink {path} with shape {shape} to {count} rows")
        new_shape = (count,) + tuple(shape[1:])
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": new_shape})
        len_size = 2 if version == (1, 0) else 4
        room = offset - 8 - len_size  # magic string (6) + version (2), then the length field
        if len(text) + 1 > room:
            raise ValueError(f"new header of {path} does not fit in {room} bytes")
        header = (text + " " * (room - len(text) - 1) + "\n").encode("latin1")
        f.seek(8)
        f.write(struct.pack("<H" if len_size == 2 else "<I", room))
        f.write(header)
        f.truncate(offset + count * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


# ---------------------------------------------------------------------------------------------
# The prepare step


@dataclass
class PrepareReport:
    """What a prepare run did; ``skipped_files`` lists unreadable and missing images."""

    out: Path
    resolution: int
    written: int
    skipped: int
    skipped_files: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    missing: int = 0  # attribute rows whose image file is missing (part of ``skipped``)
    unlabeled: int = 0  # image files without an attribute row (ignored, only counted)
    seconds: float = 0.0

    def summary(self) -> str:
        s = (f"wrote {self.written} images ({self.resolution}x{self.resolution}) to {self.out} in "
             f"{self.seconds:.1f} s; skipped {self.skipped}")
        if self.skipped:
            s += (f" ({self.missing} missing, {self.skipped - self.missing} unreadable; listed under "
                  f"\"skipped\" in {self.out / 'meta.json'})")
        if self.unlabeled:
            s += f"; ignored {self.unlabeled} image files that have no attribute row"
        return s


def _list_images(folder: Path) -> set[str]:
    with os.scandir(folder) as it:
        return {e.name for e in it if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS}


def _resolve_source(source, workdir, downloader, progress) -> CelebaFiles:
    if isinstance(source, CelebaFiles):
        return source
    return get_celeba(source, workdir, downloader, progress=progress)


def prepare(source, out: str | Path, resolution: int = 64, crop: str = "auto", *,
            workers: int | None = None, progress: bool = True, limit: int | None = None,
            overwrite: bool = False, seed: int = 0, workdir: str | Path | None = None,
            downloader=None, chunk: int = 256) -> PrepareReport:
    """Prepare a cache at ``out`` from CelebA (``source``: folder, zip, ``"celeba"`` or CelebaFiles).

    Rows whose image is missing and images that cannot be decoded are skipped, counted and listed;
    the run goes on. The split is the official one when list_eval_partition.txt is present, else
    ``seeded_partition(seed)``. ``limit`` keeps the first N attribute rows (quick runs).
    """
    started = time.perf_counter()
    if resolution not in RESOLUTIONS:
        raise FacelibError(f"resolution {resolution} is not supported: use one of {RESOLUTIONS}")
    crop_box(218, 178, crop)  # validates ``crop``
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not overwrite:
            raise FacelibError(f"{out} already exists; choose another folder or pass --force to replace it")
        if not is_cache(out):
            raise FacelibError(f"{out} exists and is not a facelib cache; refusing to replace it, "
                               f"choose another folder")
    files = _resolve_source(source, workdir, downloader, progress)
    table = parse_attributes(files.attributes)
    if limit is not None:
        table = table.select(np.arange(min(limit, len(table))))
    present = _list_images(files.images)
    labeled = set(table.filenames)
    unlabeled = len(present - labeled) if limit is None else 0
    missing = [name for name in table.filenames if name not in present]
    missing_set = set(missing)
    rows = [i for i, name in enumerate(table.filenames) if name not in missing_set]

    if not rows:
        raise FacelibError(
            f"none of the {len(table)} images listed in {files.attributes} is in {files.images}; "
            f"pass the folder that holds both the images and their attribute file"
        )
    partition_map = parse_partition(files.partition) if files.partition is not None else None
    if partition_map is not None:
        absent = [table.filenames[i] for i in rows if table.filenames[i] not in partition_map]
        if absent:
            raise FacelibError(
                f"{files.partition} has no split for {len(absent)} file(s), e.g. {absent[0]}; "
                f"fix it or delete it to use a seeded 80/10/10 split"
            )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        n = len(rows)
        mm = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(n, resolution, resolution, 3))
        offset = mm.offset
        del mm  # only used to preallocate and write the header; rows go in with plain writes
        row_bytes = resolution * resolution * 3
        skip_reasons = {name: "missing file" for name in missing}
        kept: list[int] = []
        workers = workers or min(8, os.cpu_count() or 1)

        folder = str(files.images)

        def load(batch: list[int]) -> list:
            results = []
            for i in batch:
                try:
                    results.append(load_processed(os.path.join(folder, table.filenames[i]), resolution, crop))
                except (ValueError, OSError) as e:
                    results.append(e)
            return results

        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"prepare {resolution}px", unit="img", disable=not progress,
                   mininterval=0.5)
        # Tasks of `task` images keep per-image thread overhead small; at most `chunk` images
        # are in flight and at most `chunk` wait in the write buffer: memory does not grow with n.
        task = max(1, min(32, chunk // (2 * workers)))
        tasks = [rows[k:k + task] for k in range(0, n, task)]
        import cv2

        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # parallel over images; OpenCV's own pool would only spin and contend
        try:
            with open(tmp / "images.npy", "r+b") as f, ThreadPoolExecutor(workers) as pool:
                f.seek(offset)
                buffer: list[np.ndarray] = []
                for batch, results in zip(tasks, bounded_map(pool, load, tasks, window=max(1, chunk // task))):
                    for i, result in zip(batch, results):
                        if isinstance(result, Exception):
                            skip_reasons[table.filenames[i]] = str(result) or type(result).__name__
                        else:
                            buffer.append(result)
                            kept.append(i)
                    if len(buffer) >= chunk:
                        f.writelines(buffer)  # contiguous uint8 rows, written without copying
                        buffer.clear()
                    bar.update(len(batch))
                f.writelines(buffer)
        finally:
            cv2.setNumThreads(cv2_threads)
        bar.close()
        written = len(kept)
        if written == 0:
            raise FacelibError(
                f"no readable images in {files.images} for the {len(table)} rows of "
                f"{files.attributes}; check that the folder holds the CelebA JPEGs"
            )
        if written < n:
            shrink_npy(tmp / "images.npy", written)
        assert os.path.getsize(tmp / "images.npy") == offset + written * row_bytes

        final = table.select(kept)
        if partition_map is not None:
            partition = np.array([partition_map[name] for name in final.filenames], np.int8)
            partition_kind = "official"
        else:
            partition = seeded_partition(final.filenames, seed=seed)
            partition_kind = f"seeded 80/10/10 (seed {seed})"
        np.save(tmp / "attributes.npy", final.values.astype(np.int8))
        np.save(tmp / "partition.npy", partition)
        (tmp / "filenames.txt").write_text("\n".join(final.filenames) + "\n")
        skipped_files = [name for name in table.filenames if name in skip_reasons]
        meta = {
            "format": 1,
            "resolution": resolution,
            "count": written,
            "attribute_names": final.names,
            "crop": crop,
            "source": str(source if not isinstance(source, CelebaFiles) else files.root),
            "images_dir": str(files.images),
            "partition": partition_kind,
            "skipped": [{"file": name, "reason": skip_reasons[name]} for name in skipped_files],
            "missing": len(missing),
            "unlabeled": unlabeled,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PrepareReport(out, resolution, written, len(skipped_files), skipped_files,
                         {k: skip_reasons[k] for k in skipped_files}, len(missing), unlabeled,
                         time.perf_counter() - started)
