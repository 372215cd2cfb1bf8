"""Preprocess CelebA once into a compact uint8 cache: crop, antialiased resize, stream to disk.

Why a cache: decoding 200k JPEGs every epoch costs more than training a small GAN on them.
Why streaming: images are decoded by a pool of worker processes (one per CPU by default) in
bounded windows of tasks and appended, in input order, to a preallocated ``.npy`` with plain file
writes, so peak memory stays flat however many images there are and the cache does not depend on
the number of workers. Skipped images are compacted away, then the ``.npy`` header is rewritten
with the true count (padded to the same length) and the file truncated. Everything is written
into a temporary sibling folder renamed into place at the end: an interrupted run never leaves a
cache that looks valid.
"""

from __future__ import annotations

import json
import mmap
import multiprocessing
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections import deque
from contextlib import closing
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from facelib.atomic import replace_dir
from facelib.data.cache import is_cache
from facelib.data.celeba import (
    IMAGE_EXTENSIONS, CelebaFiles, get_celeba, parse_attributes, parse_partition, seeded_partition,
)
from facelib.errors import FacelibError
from facelib.images import crop_box, decode_image, process_image
from facelib.limits import limit as read_limit  # `limit` is also prepare's row count

RESOLUTIONS = (32, 64, 128)


def load_processed(path: str | Path, resolution: int, crop: str = "auto") -> np.ndarray:
    """Decode, crop and resize one image file to uint8 RGB; ValueError if it is unreadable.

    A JPEG without its end-of-image marker is rejected as truncated: libjpeg would "decode" it
    with the missing rows filled in grey, and such a face would be training data.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        # Inside the compressed scan 0xFF is always followed by 0x00 or a restart marker, so the
        # end marker can be missing from the tail only when the file was cut short.
        raise ValueError("truncated JPEG (no end-of-image marker)")
    # Header dimensions are checked before decoding (ImageTooLarge, a ValueError: skipped and
    # reported like any unreadable image); some broken files make OpenCV raise, not return None.
    # A plain JPEG (all of CelebA) is checked here without Pillow's header parser, which costs as
    # much as decoding a CelebA image; anything else, or what OpenCV cannot decode, takes the full
    # path, so errors and their messages are decode_image's.
    img = None
    size = plain_jpeg_size(data)
    if size is not None and size[0] * size[1] <= read_limit("FACELIB_MAX_IMAGE_PIXELS"):
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            img = None
    if img is None:
        img = decode_image(data)
    out = process_image(img, resolution, crop)  # BGR still: converting 64x64 is cheaper
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


_PLAIN_SOF = (0xC0, 0xC1, 0xC2)  # baseline, extended and progressive Huffman frames
_PLAIN_OTHER = (0xC4, 0xDB, 0xDD, 0xE0, 0xFE)  # DHT, DQT, DRI, APP0 (JFIF), COM


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a plain JPEG, the same as ``facelib.images.image_header_size`` returns,
    read with a few byte lookups; None when the file is anything else.

    Plain: the segments before the scan are only APP0, DQT, DHT, DRI, COM and an 8-bit SOF0/1/2
    frame with 1, 3 or 4 components, each well formed as Pillow's parser requires (so Pillow
    would accept the header: the cache keeps or skips exactly the same files). EXIF, ICC, Adobe,
    MPO and other segments, odd padding or any irregularity give None: the caller then runs the
    full check.
    """
    n = len(data)
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos, size = 2, None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if end < pos + 4 or end > n:
            return None
        if marker == 0xDA:  # start of scan (its own header complete): the header is over
            return size
        payload = data[pos + 4:end]
        if marker in _PLAIN_SOF:
            if len(payload) < 6 or payload[0] != 8 or payload[5] not in (1, 3, 4):
                return None
            width, height = (payload[3] << 8) | payload[4], (payload[1] << 8) | payload[2]
            size = (width, height) if width and height else None
        elif marker == 0xDB:  # quantization tables: each complete, as Pillow checks
            while payload:
                length = 65 if payload[0] < 16 else 129
                if len(payload) < length:
                    return None
                payload = payload[length:]
        elif marker == 0xE0:
            if payload.startswith(b"JFIF") and len(payload) < 7:  # Pillow reads the version
                return None
        elif marker not in _PLAIN_OTHER:
            return None
        pos = end
    return None


def bounded_map(pool: Executor, fn, items, window: int):
    """``pool.map`` in order but with at most ``window`` tasks in flight (bounded memory)."""
    it = iter(items)
    pending = deque(pool.submit(fn, x) for x in islice(it, window))
    while pending:
        fut = pending.popleft()
        for x in islice(it, 1):
            pending.append(pool.submit(fn, x))
        yield fut.result()


MAX_DEFAULT_WORKERS = 16  # a cap for big machines: one parent still receives and writes every image
TASK_IMAGES = 32  # images per worker task at most (the inter-process cost is paid per task)


def default_workers() -> int:
    """Worker processes ``prepare`` uses by default: one per CPU this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))  # a container's or taskset's share, not the host's
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus))


def load_batch(folder: str, names: list[str], resolution: int, crop: str,
               out: np.ndarray | None = None):
    """``load_processed`` for each of ``names`` in ``folder``: the processed images stacked in
    order as one uint8 (k, R, R, 3) array (k <= len(names); the first k rows of ``out`` when
    given), and the (position in ``names``, reason) of each image that could not be read."""
    if out is None:
        out = np.empty((len(names), resolution, resolution, 3), np.uint8)
    failed: list[tuple[int, str]] = []
    k = 0
    for j, name in enumerate(names):
        try:
            out[k] = load_processed(os.path.join(folder, name), resolution, crop)
        except (ValueError, OSError) as e:
            failed.append((j, str(e) or type(e).__name__))
            continue
        k += 1
    return out[:k], failed


_ring = None  # in a forked worker: the buffer shared with the parent that results are written to


def _init_worker(ring=None) -> None:
    global _ring
    _ring = ring
    # Ctrl-C reaches the whole process group: the parent alone handles it (and removes its partial
    # output); workers keep quiet and are shut down by it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cv2.getNumThreads() != 1:  # spawned (not forked from the parent, which already set 1)
        cv2.setNumThreads(1)


def _load_into_ring(start: int, folder: str, names: list[str], resolution: int, crop: str):
    """A worker's task when it shares the parent's ring: the images go to the ring from byte
    ``start`` on; only their count and the failures travel back through the pipe."""
    out = np.frombuffer(_ring, np.uint8, count=len(names) * resolution * resolution * 3,
                        offset=start).reshape(len(names), resolution, resolution, 3)
    images, failed = load_batch(folder, names, resolution, crop, out)
    return len(images), failed


def _worker_context():
    """Forked workers start in milliseconds and need no imports (spawned ones take ~0.5 s each,
    as long as preparing a few thousand images) and share an anonymous memory map with the
    parent; they only run OpenCV, numpy, Pillow and file reads, never TensorFlow, so a parent
    with TensorFlow's threads is no obstacle. Elsewhere (macOS, Windows) the platform's default."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def load_batches(folder: str, batches, resolution: int, crop: str, workers: int, in_flight: int):
    """Yield ``(pixels, failed)`` for each list of file names in ``batches``, in order: the bytes
    of the kept images' uint8 rows and ``load_batch``'s failures. Use it in ``with closing(...)``.

    ``workers`` > 1: that many processes work on up to ``in_flight`` batches at a time (memory
    stays flat). Forked workers write the pixels straight into a ring of ``in_flight`` slots
    shared with this process, so no image is pickled or sent through a pipe (a tenth or more of
    the work otherwise); a slot is reused only once its pixels have been consumed. ``pixels`` is
    valid until the next batch is asked for.
    """
    if workers == 1:
        for names in batches:
            images, failed = load_batch(folder, names, resolution, crop)
            yield images.data, failed
        return
    batches = iter(batches)
    first = list(islice(batches, in_flight))
    if not first:
        return
    ctx = _worker_context()
    slot = max(len(b) for b in first) * resolution * resolution * 3  # batches never grow
    ring = mmap.mmap(-1, in_flight * slot) if ctx.get_start_method() == "fork" else None
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(ring,))
    try:
        def submit(k: int, names: list[str]):
            if ring is None:
                return pool.submit(load_batch, folder, names, resolution, crop)
            return pool.submit(_load_into_ring, k % in_flight * slot, folder, names, resolution, crop)

        pending = deque(submit(k, names) for k, names in enumerate(first))
        k = 0
        while pending:
            result, failed = pending.popleft().result()
            if ring is None:
                yield result.data, failed
            else:
                start = k % in_flight * slot
                view = memoryview(ring)[start:start + result * resolution * resolution * 3]
                try:
                    yield view, failed
                finally:
                    view.release()
            for names in islice(batches, 1):  # the slot just consumed takes the next batch
                pending.append(submit(k + in_flight, names))
            k += 1
    except BrokenProcessPool as e:  # a worker killed (out of memory, say)
        raise FacelibError(f"a worker process of prepare died ({e}); run it again, or with "
                           f"--workers 1 to prepare in a single process") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if ring is not None:
            ring.close()


# ---------------------------------------------------------------------------------------------
# .npy files written in a stream


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
            downloader=None, chunk: int = 512) -> PrepareReport:
    """Prepare a cache at ``out`` from CelebA (``source``: folder, zip, ``"celeba"`` or CelebaFiles).

    Rows whose image is missing and images that cannot be decoded are skipped, counted and listed;
    the run goes on. The split is the official one when list_eval_partition.txt is present, else
    ``seeded_partition(seed)``. ``limit`` keeps the first N attribute rows (quick runs).
    ``workers``: processes that decode, crop and resize (default ``default_workers()``, one per
    CPU; 1 does it all in this process); the cache is the same whatever their number. At most
    about ``chunk`` images are in flight at once (memory does not grow with the image count).
    """
    started = time.perf_counter()
    if workers is not None and workers < 1:
        raise FacelibError(f"workers must be at least 1, got {workers}")
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
        workers = min(workers or default_workers(), -(-n // 8))  # no worker for fewer than 8 images

        bar = None
        if progress:
            from tqdm.auto import tqdm  # loads ipywidgets (~0.4 s): only when a bar is shown

            bar = tqdm(total=n, desc=f"prepare {resolution}px", unit="img", mininterval=0.5)
        # A task is a batch of `task` images (at least 4 tasks per worker: all busy to the end);
        # at most `chunk` images are in flight and each finished batch is written at once, so
        # memory does not grow with n. Batches come back in input order whatever the workers: the
        # cache does not depend on their number.
        task = max(1, min(TASK_IMAGES, chunk // (2 * workers), -(-n // (4 * workers))))
        batches = [rows[k:k + task] for k in range(0, n, task)]
        names = ([table.filenames[i] for i in batch] for batch in batches)
        results = load_batches(str(files.images), names, resolution, crop, workers,
                               in_flight=max(2 * workers, chunk // task))
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # parallel over images (and forked workers inherit 1 thread)
        try:
            with closing(results), open(tmp / "images.npy", "r+b") as f:
                f.seek(offset)
                for batch, (pixels, failed) in zip(batches, results):
                    bad = dict(failed)
                    for j, i in enumerate(batch):
                        if j in bad:
                            skip_reasons[table.filenames[i]] = bad[j]
                        else:
                            kept.append(i)
                    f.write(pixels)  # contiguous uint8 rows
                    if bar is not None:
                        bar.update(len(batch))
        finally:
            cv2.setNumThreads(cv2_threads)
            if bar is not None:
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
