"""The pretrained network that ``config.d_features`` names, loaded for D (facelib.models.projected).

It lives in the run layer because names like ``pretrained:celeba32-attributes`` resolve here
(facelib.run.pretrained), below the classifier module that wrote the folder. Only the Keras file
is read: D needs the layers and their weights, not the classifier's metadata or report.
"""

from __future__ import annotations

from pathlib import Path

import keras

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.run.pretrained import is_pretrained, pretrained_path

MODEL_FILE = "classifier.keras"  # facelib.classifier.MODEL_FILE, the file train-classifier writes


def load(config: Config) -> keras.Model | None:
    """``config.d_features``'s network (None when it is off); one FacelibError line, naming the
    fix, when it cannot be read."""
    spec = config.d_features
    if not spec:
        return None
    folder = pretrained_path(spec, kind="classifier") if is_pretrained(spec) else Path(spec)
    if folder.suffix == ".keras":
        folder = folder.parent
    path = folder / MODEL_FILE
    if not path.is_file():
        raise FacelibError(f"d_features={spec!r}: {path} not found; name an attribute classifier "
                           "folder written by train-classifier, or pretrained:celeba32-attributes")
    try:
        # safe_mode: a .keras file whose config holds Python code is refused, not run
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises ValueError, OSError or zipfile errors here
        raise FacelibError(f"d_features={spec!r}: {path} could not be loaded ({type(e).__name__}:"
                           f" {str(e).splitlines()[0][:160] if str(e) else ''}); retrain it with "
                           "train-classifier or use pretrained:celeba32-attributes") from None
