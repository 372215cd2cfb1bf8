"""A detector folder on disk: ``meta.json`` (what the detector is, how it was made and measured)
beside its weights: ``detector.keras`` for the CNN, ``probe.npz`` for a linear probe."""

from __future__ import annotations

import json
from pathlib import Path

from facelib.atomic import write_json
from facelib.errors import FacelibError

MODEL_FILE = "detector.keras"
PROBE_FILE = "probe.npz"
META_FILE = "meta.json"
TRAIN_HINT = "python -m facelib train-detector --data CACHE --runs RUN --out DIR"


def read_meta(path: str | Path) -> dict:
    """``PATH/meta.json`` as a dict with an int ``resolution``; FacelibError naming the fix."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise FacelibError(f"{path} is not a detector folder (no {META_FILE}); train one with "
                           f"{TRAIN_HINT}, or leave --detector out to use the shipped one")
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        meta["resolution"] = int(meta["resolution"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise FacelibError(f"{path / META_FILE} is not a detector's meta.json ({type(e).__name__}"
                           f": {str(e).splitlines()[0][:100] if str(e) else ''}); restore it "
                           "or retrain the detector") from None
    return meta


def write_meta(path: str | Path, meta: dict) -> None:
    write_json(Path(path) / META_FILE, meta, default=str)
