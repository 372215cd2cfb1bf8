"""Real or synthetic? Detectors that tell real faces from generated ones, and how to measure them.

- ``faces``: the one input path (crop and resize) every face takes, augmentations, perturbations,
  real faces from a cache and synthetic ones from runs;
- ``cnn``: a small CNN on pixels (CNNDetection's recipe); ``probe``: a linear probe on fixed
  features (FID Inception, frequency spectra); ``spectrum``: the spectra themselves;
- ``report``: accuracy, AP, robustness, AP against the training step;
- ``validation``: leave-one-generator-out, how the shipped detector was chosen.

``load_detector(path)`` opens either kind; ``load_detector()`` the detector shipped with facelib
(``pretrained:detector``), which ``python -m facelib detect`` uses without ``--detector``.
"""

from __future__ import annotations

from pathlib import Path

from facelib.detector.cnn import (Detector, build_detector_model, detectability_by_step, fit_cnn,
                                  make_training_dataset, train_detector)
from facelib.detector.faces import (BLUR_PROB, BLUR_SIGMA, FAKE_SEED_OFFSET, JPEG_PROB,
                                    JPEG_QUALITY, PERTURBATIONS, augment_batch, detector_input,
                                    gaussian_blur, generate_fakes, high_frequency_energy,
                                    jpeg_compress, perturb, read_face, real_faces, resize_down_up,
                                    resize_history)
from facelib.detector.folder import MODEL_FILE, PROBE_FILE, TRAIN_HINT
from facelib.detector.probe import ProbeDetector, face_features, fit_probe
from facelib.detector.report import (ap_by_step, average_precision, detection_report, evaluate,
                                     format_table, plot_ap_by_step, robustness)
from facelib.detector.spectrum import azimuthal_spectrum, mean_spectra, plot_spectra
from facelib.detector.validation import leave_one_generator_out, recipes, summarize
from facelib.errors import FacelibError

DEFAULT_DETECTOR = "pretrained:detector"


def load_detector(path: str | Path = DEFAULT_DETECTOR):
    """A detector folder (a CNN's ``detector.keras`` or a probe's ``probe.npz``, with
    ``meta.json``), or ``pretrained:NAME``; the default is the detector shipped with facelib."""
    from facelib.run.pretrained import is_pretrained, pretrained_path

    path = pretrained_path(str(path), kind="detector") if is_pretrained(str(path)) else Path(path)
    if (path / PROBE_FILE).is_file():
        return ProbeDetector.load(path)
    if (path / MODEL_FILE).is_file():
        return Detector.load(path)
    raise FacelibError(f"{path} is not a detector folder (needs {MODEL_FILE} or {PROBE_FILE} "
                       f"beside meta.json); train one with {TRAIN_HINT}, or leave --detector out "
                       "to use the shipped one")


__all__ = [
    "BLUR_PROB", "BLUR_SIGMA", "DEFAULT_DETECTOR", "FAKE_SEED_OFFSET", "JPEG_PROB",
    "JPEG_QUALITY", "PERTURBATIONS", "Detector", "ProbeDetector", "ap_by_step", "augment_batch",
    "average_precision", "azimuthal_spectrum", "build_detector_model", "detectability_by_step",
    "detection_report", "detector_input", "evaluate", "face_features", "fit_cnn", "fit_probe",
    "format_table", "gaussian_blur", "generate_fakes", "high_frequency_energy", "jpeg_compress",
    "leave_one_generator_out", "load_detector", "make_training_dataset", "mean_spectra", "perturb",
    "plot_spectra",
    "plot_ap_by_step", "read_face", "real_faces", "recipes", "resize_down_up", "resize_history",
    "robustness", "summarize", "train_detector",
]
