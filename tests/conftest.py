"""Shared fixtures: real faces from the bundled sample, a prepared 32 px cache, a tiny trained run.

Everything here works on a fresh machine without ../shared; tests that want the 8k faces use
``celeba_8k`` and skip with the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One BLAS thread: the tests' matrices are small, and OpenBLAS threads fighting over two busy
# cores made a 300x1024 SVD take 10 s instead of 0.1 s.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CELEBA_8K = REPO.parent / "shared" / "data" / "celeba-8k"


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    """Keep caches (prepared sample, features) out of the user's home during tests."""
    old = os.environ.get("FACELIB_CACHE")
    os.environ["FACELIB_CACHE"] = str(tmp_path_factory.mktemp("facelib-cache"))
    yield
    if old is None:
        os.environ.pop("FACELIB_CACHE", None)
    else:
        os.environ["FACELIB_CACHE"] = old


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from facelib.data.sample import bundled_sample_dir

    return bundled_sample_dir()


@pytest.fixture(scope="session")
def cache32(_hermetic_cache) -> Path:
    """The bundled 500 real faces prepared at 32x32."""
    from facelib.data.sample import sample_cache

    return Path(sample_cache(32))


@pytest.fixture(scope="session")
def celeba_8k() -> Path:
    if not (CELEBA_8K / "list_attr_celeba.txt").exists():
        pytest.skip(f"needs the 8k CelebA faces at {CELEBA_8K} (only in the facelib workplace)")
    return CELEBA_8K


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, cache32) -> Path:
    """A smoke-preset unconditional run trained for a few steps on real faces."""
    from facelib.config import preset
    from facelib.run.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train(preset("smoke", steps=6, checkpoint_every=3, log_every=2), run_dir, data=cache32,
          verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def tiny_conditional_run(tmp_path_factory, cache32) -> Path:
    """A smoke-preset conditional (40-attribute) run trained for a few steps on real faces."""
    from facelib.config import preset
    from facelib.run.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "tiny-conditional"
    train(preset("smoke", steps=6, checkpoint_every=3, log_every=2, conditional=True), run_dir,
          data=cache32, verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def run(tiny_run):
    """``tiny_run`` loaded with its output layer scaled (``helpers.boosted_run``), fresh per
    module: tests may change the loaded networks."""
    from helpers import boosted_run

    return boosted_run(tiny_run)


@pytest.fixture(scope="module")
def crun(tiny_conditional_run):
    """``tiny_conditional_run`` loaded and scaled the same way, fresh per module."""
    from helpers import boosted_run

    return boosted_run(tiny_conditional_run)
