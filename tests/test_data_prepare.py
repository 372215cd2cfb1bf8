"""Preprocessing into a cache: crop boxes, exact pixel values, skipped files, streaming .npy,
atomic writes, the cache reader and the `prepare` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelib.data.cache import FaceCache, is_cache
from facelib.data.celeba import ATTR_FILE, ATTRIBUTE_NAMES, IMAGES_DIR, PARTITION_FILE, parse_attributes
from facelib.data.prepare import load_processed, prepare, shrink_npy
from facelib.errors import FacelibError
from facelib.images import crop_box

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"
NAMES = [f"{i:06d}.jpg" for i in range(1, 25)]


def npy_data_offset(path: str | Path) -> int:
    """Byte offset where the array data of an .npy file starts: numpy's own header reading."""
    return np.load(path, mmap_mode="r").offset


@pytest.fixture
def celeba_copy(tmp_path) -> Path:
    """A writable copy of the fixture (to damage)."""
    dst = tmp_path / "celeba"
    shutil.copytree(FIXTURE, dst)
    return dst


# ------------------------------------------------------------------------------- crop and values


def test_crop_boxes_are_relative_to_the_image_size():
    assert crop_box(218, 178, "celeba") == (40, 15, 148, 148)  # the standard box, full size
    assert crop_box(109, 89, "celeba") == (20, 8, 74, 74)  # the same box at half size
    assert crop_box(109, 89, "auto") == (20, 8, 74, 74)  # non-square: the face box
    assert crop_box(64, 64, "auto") == (0, 0, 64, 64)  # square (already cropped): untouched
    assert crop_box(64, 64, "none") == (0, 0, 64, 64)
    assert crop_box(109, 89, "none") == (10, 0, 89, 89)  # never distorted: centre square
    with pytest.raises(FacelibError, match="unknown crop 'middle'.*auto, celeba, none"):
        crop_box(10, 10, "middle")


def area_resize_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Independent antialiased downsampling: each output pixel averages the input area it covers."""
    def weights(n_in: int) -> np.ndarray:
        s, w = n_in / size, np.zeros((size, n_in))
        for i in range(size):
            a, b = i * s, (i + 1) * s
            for j in range(int(np.floor(a)), int(np.ceil(b))):
                w[i, j] = max(0.0, min(b, j + 1) - max(a, j)) / s
        return w

    wy, wx = weights(img.shape[0]), weights(img.shape[1])
    return np.einsum("ij,jkc,lk->ilc", wy, img.astype(np.float64), wx)


@pytest.mark.parametrize("resolution", [32, 64])
def test_prepare_fixture_matches_an_independent_computation(tmp_path, resolution):
    from PIL import Image

    report = prepare(FIXTURE, tmp_path / "cache", resolution, progress=False)
    assert (report.written, report.skipped, report.skipped_files, report.missing) == (24, 0, [], 0)
    cache = FaceCache.open(tmp_path / "cache")
    assert cache.images.shape == (24, resolution, resolution, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    assert cache.resolution == resolution and len(cache) == 24 and cache.filenames == NAMES
    table = parse_attributes(FIXTURE / ATTR_FILE)
    assert cache.attributes.dtype == np.int8 and np.array_equal(cache.attributes, table.values)
    assert cache.attribute_names == list(ATTRIBUTE_NAMES)
    # 000005.jpg decoded by Pillow, the 148/178 x 148/218 box at (40/218, 15/178) of 89x109 is
    # rows 20..93, cols 8..81; then area averaging to R x R.
    rgb = np.asarray(Image.open(FIXTURE / IMAGES_DIR / "000005.jpg").convert("RGB"))
    ref = area_resize_reference(rgb[20:94, 8:82], resolution)
    diff = np.abs(cache.images[4].astype(np.float64) - ref)
    assert diff.max() < 1.0 and diff.mean() < 0.3  # equal up to rounding
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["resolution"] == resolution and meta["count"] == 24 and meta["crop"] == "auto"
    assert meta["skipped"] == [] and meta["source"] == str(FIXTURE) and meta["created"]
    assert meta["attribute_names"] == list(ATTRIBUTE_NAMES)
    assert meta["partition"].startswith("seeded")


def test_load_processed_rejects_broken_files(tmp_path):
    good = (FIXTURE / IMAGES_DIR / "000001.jpg").read_bytes()
    cases = {"truncated.jpg": (good[: len(good) // 2], "truncated JPEG"),
             "garbage.jpg": (b"GIF89a not really", "not a readable image"),
             "empty.jpg": (b"", "not a readable image")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message):
            load_processed(tmp_path / name, 32)
    (tmp_path / "padded.jpg").write_bytes(good + b"\0" * 16)  # bytes after the end marker are fine
    assert load_processed(tmp_path / "padded.jpg", 32).shape == (32, 32, 3)
    with pytest.raises(OSError):
        load_processed(tmp_path / "absent.jpg", 32)


def test_corrupt_and_missing_images_are_skipped_listed_and_compacted(celeba_copy, tmp_path):
    images = celeba_copy / IMAGES_DIR
    (images / "000003.jpg").write_bytes(b"this is not a jpeg")
    (images / "000007.jpg").write_bytes((images / "000007.jpg").read_bytes()[:2000])  # cut short
    (images / "000010.jpg").unlink()  # a row whose image is missing
    shutil.copy(images / "000001.jpg", images / "999999.jpg")  # an image without a row
    out = tmp_path / "cache"
    report = prepare(celeba_copy, out, 32, progress=False)
    bad = ["000003.jpg", "000007.jpg", "000010.jpg"]
    assert report.written == 21 and report.skipped == 3 and report.skipped_files == bad
    assert report.missing == 1 and report.unlabeled == 1
    assert report.skip_reasons["000010.jpg"] == "missing file"
    assert "not a readable image" in report.skip_reasons["000003.jpg"]
    assert "truncated JPEG" in report.skip_reasons["000007.jpg"]
    assert "skipped 3 (1 missing, 2 unreadable" in report.summary() and "meta.json" in report.summary()
    # The .npy header was rewritten for the true count and the file truncated after it.
    loaded = np.load(out / "images.npy")
    assert loaded.shape == (21, 32, 32, 3)
    assert os.path.getsize(out / "images.npy") == npy_data_offset(out / "images.npy") + 21 * 32 * 32 * 3
    # Rows stay aligned: kept files, their attribute rows and their pixels correspond.
    kept = [n for n in NAMES if n not in bad]
    cache = FaceCache.open(out)
    assert cache.filenames == kept
    table = parse_attributes(FIXTURE / ATTR_FILE)
    assert np.array_equal(cache.attributes, table.values[[NAMES.index(n) for n in kept]])
    clean = FaceCache.open(prepare(FIXTURE, tmp_path / "clean", 32, progress=False).out)
    assert np.array_equal(loaded, clean.images[[NAMES.index(n) for n in kept]])
    meta = json.loads((out / "meta.json").read_text())
    assert [s["file"] for s in meta["skipped"]] == bad and meta["missing"] == 1 and meta["unlabeled"] == 1


def _set_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG ``data`` with its frame header (SOF0) claiming ``width`` x ``height``."""
    at = data.index(b"\xff\xc0") + 5
    return data[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[at + 4:]


def _cache_files(out: Path) -> dict[str, bytes]:
    meta = json.loads((out / "meta.json").read_text())
    del meta["created"]
    files = {f: (out / f).read_bytes() for f in ("images.npy", "attributes.npy", "partition.npy",
                                                 "filenames.txt")}
    return {**files, "meta": json.dumps(meta, sort_keys=True).encode()}


def test_worker_processes_write_the_same_cache_and_skip_the_same_files(celeba_copy, tmp_path,
                                                                       monkeypatch):
    import facelib.data.prepare as prep

    images = celeba_copy / IMAGES_DIR
    good = (images / "000001.jpg").read_bytes()
    (images / "000003.jpg").write_bytes(b"this is not a jpeg")
    (images / "000007.jpg").write_bytes((images / "000007.jpg").read_bytes()[:2000])  # cut short
    (images / "000010.jpg").unlink()
    (images / "000016.jpg").write_bytes(_set_jpeg_size(good, 60_000, 60_000))  # a bomb's header
    exif = (images / "000020.jpg").read_bytes()
    (images / "000020.jpg").write_bytes(exif[:2] + b"\xff\xe1\x00\x08Exif\0\0" + exif[2:])  # full check
    bad = ["000003.jpg", "000007.jpg", "000010.jpg", "000016.jpg"]
    # Record which process loads each image (forked workers inherit the patch).
    log = tmp_path / "pids.txt"
    real = prep.load_processed

    def logged(path, *args):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(path, *args)

    monkeypatch.setattr(prep, "load_processed", logged)
    reports, caches = {}, {}
    for workers in (1, 2, 3):
        log.write_text("")
        # chunk=8: tasks of 1-2 images, many in flight at once, so order is really exercised.
        reports[workers] = prepare(celeba_copy, tmp_path / f"w{workers}", 32, progress=False,
                                   workers=workers, chunk=8)
        caches[workers] = _cache_files(tmp_path / f"w{workers}")
        pids = set(log.read_text().split())
        if workers == 1:
            assert pids == {str(os.getpid())}
        elif sys.platform.startswith("linux"):  # forked: the patch is there
            # The workers load every image and there are no more of them than asked for; how
            # the tasks spread over them is the scheduler's (on busy cores one worker can take
            # them all before another starts), so their number is not asserted.
            assert pids and len(pids) <= workers and str(os.getpid()) not in pids
    assert caches[1] == caches[2] == caches[3]  # byte for byte
    for r in reports.values():
        assert r.written == 20 and r.skipped_files == bad and r.missing == 1
        assert r.skip_reasons == reports[1].skip_reasons
    assert "not a readable image" in reports[2].skip_reasons["000003.jpg"]
    assert "truncated JPEG" in reports[2].skip_reasons["000007.jpg"]
    assert "60000x60000" in reports[2].skip_reasons["000016.jpg"]  # ImageTooLarge, from a worker
    kept = [n for n in NAMES if n not in bad]
    assert FaceCache.open(tmp_path / "w2").filenames == kept
    clean = FaceCache.open(prepare(FIXTURE, tmp_path / "clean", 32, progress=False, workers=1).out)
    assert np.array_equal(np.load(tmp_path / "w2" / "images.npy"),
                          clean.images[[NAMES.index(n) for n in kept]])
    with pytest.raises(FacelibError, match="workers must be at least 1"):
        prepare(FIXTURE, tmp_path / "w0", 32, progress=False, workers=0)


def test_spawned_workers_send_their_images_back(celeba_copy, tmp_path, monkeypatch):
    """Where processes are not forked (macOS, Windows) there is no shared ring: the images come
    back through the pipe, and the cache is the same."""
    import multiprocessing

    import facelib.data.prepare as prep

    (celeba_copy / IMAGES_DIR / "000005.jpg").write_bytes(b"broken")
    serial = prepare(celeba_copy, tmp_path / "serial", 32, progress=False, workers=1)
    monkeypatch.setattr(prep, "_worker_context", lambda: multiprocessing.get_context("spawn"))
    spawned = prepare(celeba_copy, tmp_path / "spawned", 32, progress=False, workers=2, chunk=16)
    assert spawned.skip_reasons == serial.skip_reasons and spawned.skipped_files == ["000005.jpg"]
    assert _cache_files(tmp_path / "spawned") == _cache_files(tmp_path / "serial")


def test_plain_jpeg_size_agrees_with_pillows_header_check(tmp_path):
    from facelib.data.prepare import plain_jpeg_size
    from facelib.images import ImageTooLarge, image_header_size

    for name in NAMES:
        data = (FIXTURE / IMAGES_DIR / name).read_bytes()
        assert plain_jpeg_size(data) == image_header_size(data) == (89, 109)
    good = (FIXTURE / IMAGES_DIR / "000001.jpg").read_bytes()
    # Not plain (EXIF, a junk byte, a short DQT, 12-bit, a cut header, not a JPEG): None, and the
    # caller runs the full check.
    sof = good.index(b"\xff\xc0")
    for other in (good[:2] + b"\xff\xe1\x00\x08Exif\0\0" + good[2:], good[:2] + b"\0" + good[2:],
                  good[:2] + b"\xff\xdb\x00\x10" + bytes(14) + good[2:],
                  good[:sof + 4] + b"\x0c" + good[sof + 5:], good[:sof + 6], b"GIF89a", b""):
        assert plain_jpeg_size(other) is None
    bomb = _set_jpeg_size(good, 60_000, 60_000)
    assert plain_jpeg_size(bomb) == image_header_size(bomb) == (60_000, 60_000)
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    with pytest.raises(ImageTooLarge, match="60000x60000"):
        load_processed(tmp_path / "bomb.jpg", 32)


def test_no_readable_image_is_an_error_and_leaves_nothing(celeba_copy, tmp_path):
    for p in (celeba_copy / IMAGES_DIR).iterdir():
        p.write_bytes(b"garbage")
    with pytest.raises(FacelibError, match="no readable images"):
        prepare(celeba_copy, tmp_path / "cache", 32, progress=False)
    assert not (tmp_path / "cache").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    for p in (celeba_copy / IMAGES_DIR).iterdir():
        p.unlink()
    with pytest.raises(FacelibError, match="none of the 24 images"):
        prepare(celeba_copy, tmp_path / "cache", 32, progress=False)


def test_interrupted_prepare_leaves_no_cache(tmp_path, monkeypatch):
    import facelib.data.prepare as prep

    real, calls = prep.load_processed, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prep, "load_processed", flaky)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(FIXTURE, tmp_path / "cache", 32, progress=False, workers=1, chunk=4)
    assert not (tmp_path / "cache").exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(FacelibError, match="not a prepared facelib cache"):
        FaceCache.open(tmp_path / "cache")


def test_existing_output_is_protected(tmp_path):
    out = tmp_path / "cache"
    prepare(FIXTURE, out, 32, progress=False)
    with pytest.raises(FacelibError, match="already exists.*--force"):
        prepare(FIXTURE, out, 32, progress=False)
    prepare(FIXTURE, out, 64, progress=False, overwrite=True, limit=6)
    assert FaceCache.open(out).images.shape == (6, 64, 64, 3)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FacelibError, match="not a facelib cache; refusing"):
        prepare(FIXTURE, other, 32, progress=False, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert prepare(FIXTURE, tmp_path / "empty", 32, progress=False, limit=3).written == 3
    with pytest.raises(FacelibError, match="resolution 48 is not supported"):
        prepare(FIXTURE, tmp_path / "x", 48, progress=False)


def test_official_partition_is_used_and_checked(celeba_copy, tmp_path):
    splits = [i % 3 for i in range(24)]
    lines = "".join(f"{n} {s}\n" for n, s in zip(NAMES, splits))
    (celeba_copy / PARTITION_FILE).write_text(lines)
    cache = FaceCache.open(prepare(celeba_copy, tmp_path / "c", 32, progress=False).out)
    assert cache.partition.tolist() == splits and cache.meta["partition"] == "official"
    assert cache.indices("valid").tolist() == [i for i in range(24) if i % 3 == 1]
    (celeba_copy / PARTITION_FILE).write_text("".join(lines.splitlines(True)[:-1]))
    with pytest.raises(FacelibError, match="no split for 1 file.*000024.jpg"):
        prepare(celeba_copy, tmp_path / "d", 32, progress=False)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------- streaming .npy


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_shrink_npy_rewrites_the_header_and_truncates(tmp_path, version):
    path = tmp_path / "a.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(10, 4, 4, 3), version=version)
    mm[:] = np.arange(10, dtype=np.uint8)[:, None, None, None]
    offset = mm.offset
    del mm
    shrink_npy(path, 7)
    got = np.load(path)
    assert got.shape == (7, 4, 4, 3) and got[:, 0, 0, 0].tolist() == list(range(7))
    assert npy_data_offset(path) == offset and offset % 64 == 0
    assert os.path.getsize(path) == offset + 7 * 48
    assert np.load(path, mmap_mode="r").shape == (7, 4, 4, 3)
    with pytest.raises(ValueError):
        shrink_npy(path, 8)


# ------------------------------------------------------------------------------- the cache reader


def test_cache_reader_rejects_what_is_not_a_cache(tmp_path):
    with pytest.raises(FacelibError, match="no such folder.*python -m facelib prepare SRC"):
        FaceCache.open(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "images.npy").write_bytes(b"")
    with pytest.raises(FacelibError, match="missing attributes.npy.*run `python -m facelib prepare"):
        FaceCache.open(tmp_path / "half")
    out = prepare(FIXTURE, tmp_path / "c", 32, progress=False).out
    assert is_cache(out) and not is_cache(tmp_path / "half")
    (out / "filenames.txt").write_text("\n".join(NAMES[:-1]) + "\n")
    with pytest.raises(FacelibError, match=r"24 rows but \{'filenames.txt': 23\}"):
        FaceCache.open(out)


def test_cache_splits_are_disjoint_and_complete(tmp_path):
    cache = FaceCache.open(prepare(FIXTURE, tmp_path / "c", 32, progress=False).out)
    parts = [cache.indices(s) for s in ("train", "valid", "test")]
    assert [len(p) for p in parts] == [19, 2, 3]
    assert sorted(np.concatenate(parts).tolist()) == cache.indices("all").tolist() == list(range(24))
    with pytest.raises(FacelibError, match="unknown split 'dev'"):
        cache.indices("dev")


# ------------------------------------------------------------------------------- the command


def test_prepare_command_in_process(tmp_path, capsys, celeba_copy):
    from facelib.cli import main

    (celeba_copy / IMAGES_DIR / "000002.jpg").write_bytes(b"broken")
    out = tmp_path / "cache"
    code = main(["prepare", str(celeba_copy), str(out), "--resolution", "32", "--no-progress",
                 "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "wrote 23 images (32x32)" in printed
    assert "skipped 1 (0 missing, 1 unreadable" in printed and str(out / "meta.json") in printed
    assert FaceCache.open(out).images.shape == (23, 32, 32, 3)
    assert main(["prepare", str(celeba_copy), str(out), "--no-progress"]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "missing"), str(tmp_path / "o"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_prepare_command_in_a_subprocess(tmp_path):
    out = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "facelib", "prepare", str(FIXTURE), str(out),
                           "--resolution", "32", "--crop", "celeba", "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 24 images (32x32)" in proc.stdout and "skipped 0" in proc.stdout
    assert FaceCache.open(out).meta["crop"] == "celeba"
