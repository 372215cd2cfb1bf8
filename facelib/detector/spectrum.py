"""Frequency spectra of faces: where in frequency an image keeps its energy.

Upsampling layers leave periodic traces that show in the Fourier spectrum long before they show to
the eye: transposed convolutions a checkerboard at the Nyquist frequency, nearest-neighbour or
bilinear upsampling a deficit of energy in the top octave (Durall et al., CVPR 2020, "Watch your
up-convolution"; Frank et al., ICML 2020, "Leveraging frequency analysis for deep fake image
recognition"). Durall et al. reduce each image to its azimuthally averaged power spectrum, one
number per spatial frequency, and a linear classifier on that vector already separates real from
GAN faces; that is what ``azimuthal_spectrum`` computes, per colour channel.

``SpectrumNetwork`` wraps it as a ``facelib.metrics.features.FeatureNetwork`` so that detectors use
the same content-keyed feature cache as FID, and ``mean_spectra`` gives the curves notebook 07
plots for real against generated faces.
"""

from __future__ import annotations

import numpy as np

from facelib.errors import FacelibError
from facelib.metrics.features import FeatureNetwork, as_uint8_images

EPS = 1e-6  # floor under the normalised power before the log: a flat image must not give -inf


def radial_bins(size: int) -> np.ndarray:
    """(size, size) int: the rounded radius, in cycles per image, of every FFT coefficient of a
    square image (``np.fft.fftfreq`` layout). Radii above size/2 (the corners beyond Nyquist on
    one axis) are clipped into the last bin, so there are ``size // 2 + 1`` bins."""
    f = np.fft.fftfreq(size) * size
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return np.minimum(np.rint(r).astype(np.int64), size // 2)


def azimuthal_spectrum(images) -> np.ndarray:
    """float32 (N, 3, size // 2 + 1): per image and colour channel, the log10 of the mean power
    at each spatial frequency (radius bin), after removing the channel's mean and normalising the
    power to sum to 1, so overall brightness and contrast do not move the curve, only its shape.

    Images: uint8 or float [-1, 1], (N, S, S, 3), square.
    """
    x = as_uint8_images(images).astype(np.float64)
    n, h, w, _ = x.shape
    if h != w:
        raise FacelibError(f"spectra need square images, got {h}x{w}; crop them square first "
                           f"(facelib.images.align_face)")
    bins = radial_bins(h).reshape(-1)
    counts = np.bincount(bins, minlength=h // 2 + 1).astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2  # (N, S, S, 3)
    power = power / np.maximum(power.sum(axis=(1, 2), keepdims=True), 1e-12)
    flat = power.transpose(0, 3, 1, 2).reshape(n * 3, h * w)
    out = np.stack([np.bincount(bins, weights=row, minlength=h // 2 + 1) for row in flat])
    out = np.log10(out / counts + EPS)
    return out.reshape(n, 3, h // 2 + 1).astype(np.float32)


def mean_spectra(images) -> np.ndarray:
    """float32 (size // 2 + 1,): the mean over images and channels of ``azimuthal_spectrum``; the
    curve to plot against frequency for one image set."""
    return azimuthal_spectrum(images).mean(axis=(0, 1))


def plot_spectra(image_sets, resolution: int | None = None, ax=None):
    """One curve per named image set (``{name: uint8 faces}``): ``mean_spectra`` against spatial
    frequency, every set first brought to ``resolution`` by the detector's input path (default:
    the first set's size), so that curves compare faces, not file sizes."""
    import matplotlib.pyplot as plt  # only for this plot

    from facelib.images import resize_batch

    sets = {k: np.asarray(v) for k, v in dict(image_sets).items()}
    if not sets:
        raise FacelibError("no image sets to plot: pass {name: faces}")
    size = int(resolution or next(iter(sets.values())).shape[1])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    freq = np.arange(size // 2 + 1) / size
    for name, faces in sets.items():
        ax.plot(freq, mean_spectra(resize_batch(faces, size)), label=f"{name} (n={len(faces)})")
    ax.set_xlabel(f"spatial frequency (cycles per pixel, at {size} px)")
    ax.set_ylabel("log10 share of power")
    ax.set_title("mean azimuthal power spectrum")
    ax.legend(fontsize=8)
    return ax


class SpectrumNetwork(FeatureNetwork):
    """``azimuthal_spectrum`` of ``resolution`` px faces, flattened: a feature network with no
    weights (its id names the resolution and the formula's version, for the feature cache)."""

    default_batch_size = 256

    def __init__(self, resolution: int):
        if resolution < 8:
            raise FacelibError(f"spectrum resolution {resolution}: use at least 8 px")
        self.resolution = int(resolution)
        self.name = f"azimuthal log power spectrum ({resolution} px)"
        self.id = f"azimuthal-spectrum-v1-{resolution}px"
        self.dim = 3 * (resolution // 2 + 1)
        self.preprocessing = "mean removed, power normalised to 1, log10, per RGB channel"

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:3] != (self.resolution, self.resolution):
            raise FacelibError(f"{self.name} takes {self.resolution}x{self.resolution} faces, got "
                               f"{batch.shape[1]}x{batch.shape[2]}; resize them first "
                               "(facelib.detector.detector_input)")
        return azimuthal_spectrum(batch).reshape(len(batch), -1)


__all__ = ["SpectrumNetwork", "azimuthal_spectrum", "mean_spectra", "plot_spectra", "radial_bins"]
