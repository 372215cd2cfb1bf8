"""The bundled 500-face sample: contents, terms, size, reproducibility and its prepared cache."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facelib.data.cache import FaceCache
from facelib.data.celeba import ATTR_FILE, IMAGES_DIR, parse_attributes
from facelib.data.prepare import load_processed
from facelib.data.sample import build_sample, bundled_sample_dir, sample_cache
from facelib.errors import FacelibError

FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"


def test_bundled_sample_has_500_labelled_64px_faces_and_terms():
    import cv2

    root = bundled_sample_dir()
    table = parse_attributes(root / ATTR_FILE)
    assert len(table) == 500 and table.filenames == [f"{i:06d}.jpg" for i in range(1, 501)]
    files = sorted(p.name for p in (root / IMAGES_DIR).iterdir())
    assert files == table.filenames
    for name in files[::50]:
        img = cv2.imread(str(root / IMAGES_DIR / name))
        assert img.shape == (64, 64, 3)
    # Real faces: label shares near CelebA's (Male ~42%, Smiling ~48%).
    assert 0.3 < table.column("Male").mean() < 0.55 and 0.35 < table.column("Smiling").mean() < 0.6
    notice = (root / "NOTICE.md").read_text()
    for words in ("non-commercial research and educational use only", "ICCV 2015", "MMLAB",
                  "first 500", "64x64"):
        assert words in notice
    du = subprocess.run(["du", "-sk", str(root)], capture_output=True, text=True)
    if du.returncode == 0:
        assert int(du.stdout.split()[0]) < 5 * 1024
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 5 * 1024 * 1024


def test_build_sample_writes_the_celeba_layout(tmp_path):
    dst = build_sample(FIXTURE, tmp_path / "s", n=5)
    table = parse_attributes(dst / ATTR_FILE)
    assert table.filenames == [f"{i:06d}.jpg" for i in range(1, 6)]
    full = parse_attributes(FIXTURE / ATTR_FILE)
    assert np.array_equal(table.values, full.values[:5])
    jpeg = load_processed(dst / IMAGES_DIR / "000003.jpg", 64, "auto")  # square: not cropped again
    exact = load_processed(FIXTURE / IMAGES_DIR / "000003.jpg", 64, "celeba")
    assert np.abs(jpeg.astype(int) - exact).mean() < 3  # JPEG quality 95
    assert "first 5 image ids (000001.jpg .. 000005.jpg)" in (dst / "NOTICE.md").read_text()
    with pytest.raises(FacelibError, match="only 24 labelled images, fewer than n=30"):
        build_sample(FIXTURE, tmp_path / "t", n=30)


def test_bundled_sample_is_reproducible_from_celeba(celeba_8k, tmp_path):
    rebuilt = build_sample(celeba_8k, tmp_path / "s", n=500)
    root = bundled_sample_dir()
    assert (rebuilt / ATTR_FILE).read_text() == (root / ATTR_FILE).read_text()
    for name in ("000001.jpg", "000250.jpg", "000500.jpg"):
        a = load_processed(rebuilt / IMAGES_DIR / name, 64)
        b = load_processed(root / IMAGES_DIR / name, 64)
        assert np.abs(a.astype(int) - b).max() <= 2


def test_sample_cache_is_prepared_once_and_reused(tmp_path, monkeypatch):
    path = sample_cache(32, cache_root=tmp_path)
    assert path == tmp_path / "celeba-sample-32"
    cache = FaceCache.open(path)
    assert cache.images.shape == (500, 32, 32, 3) and cache.meta["crop"] == "auto"
    assert [len(cache.indices(s)) for s in ("train", "valid", "test")] == [400, 50, 50]
    stamp = (path / "images.npy").stat().st_mtime_ns
    assert sample_cache(32, cache_root=tmp_path) == path
    assert (path / "images.npy").stat().st_mtime_ns == stamp
    (path / "meta.json").unlink()  # a damaged cache is rebuilt
    assert sample_cache(32, cache_root=tmp_path) == path
    assert json.loads((path / "meta.json").read_text())["count"] == 500
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path / "env"))
    assert sample_cache(32) == tmp_path / "env" / "celeba-sample-32"
