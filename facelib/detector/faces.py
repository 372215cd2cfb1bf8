"""The detector's faces: one input geometry, the augmentations and perturbations, and where
real and synthetic faces come from.

Every face a detector sees, real or synthetic, in training or from a user's file, reaches it by
the same path: ``align_face`` (the CelebA face box for portraits, the whole square for crops) and
``facelib.images.resize_square`` to the detector's resolution. A generator's 32 px faces are
enlarged by the same resize a 32 px photo would get, and a 1024 px photo is shrunk by it; so the
size or resize history of a file cannot be the answer, only what the face looks like.

Augmentation follows CNNDetection (Wang et al., CVPR 2020): with probability 0.5 a Gaussian blur,
sigma ~ U[0, 3], then with probability 0.5 a JPEG re-compression, quality ~ U{30..100}, then a
horizontal flip; optionally a resolution history (shrink to a random size and enlarge back), so
that "was enlarged" is seen on real faces as often as on synthetic ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from facelib.data.cache import FaceCache
from facelib.errors import FacelibError
from facelib.images import (MIN_FACE_SIDE, align_face, face_frame, process_image, read_image,
                            resize_batch, to_uint8)

# The CNNDetection "Blur+JPEG(0.5)" recipe (Wang et al. 2020, train.py --blur_prob 0.5
# --blur_sig 0.0,3.0 --jpg_prob 0.5 --jpg_qual 30,100).
BLUR_PROB = 0.5
BLUR_SIGMA = (0.0, 3.0)
JPEG_PROB = 0.5
JPEG_QUALITY = (30, 100)

FAKE_SEED_OFFSET = 1_000_003  # evaluation fakes use latents disjoint from the training fakes'

# ---------------------------------------------------------------------------------------------
# Image operations (uint8 RGB HWC in, uint8 out)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size from sigma)."""
    image = np.ascontiguousarray(image)
    if sigma <= 1e-3:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1-100) with OpenCV and decode again."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]),
                           [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise FacelibError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def resize_down_up(image: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Shrink by ``factor`` (area averaging) and enlarge back (bilinear): loses fine detail the
    way re-uploaded thumbnails do."""
    h, w = image.shape[:2]
    small = cv2.resize(np.ascontiguousarray(image), (max(1, round(w / factor)),
                                                     max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_history(image: np.ndarray, side: int) -> np.ndarray:
    """Shrink a square face to ``side`` px (area averaging) and enlarge it back with the resize
    every detector input gets (``resize_batch``): the trace a lower-resolution origin leaves."""
    n = image.shape[0]
    if side >= n:
        return image.copy()
    return resize_batch(resize_batch(image[None], side), n)[0]


def augment_batch(images: np.ndarray, rng: np.random.Generator, *, blur_prob: float = BLUR_PROB,
                  blur_sigma: tuple[float, float] = BLUR_SIGMA, jpeg_prob: float = JPEG_PROB,
                  jpeg_quality: tuple[int, int] = JPEG_QUALITY, flip: bool = True,
                  resize_prob: float = 0.0, resize_scale: tuple[float, float] = (0.5, 1.0)
                  ) -> np.ndarray:
    """CNNDetection's training augmentation on uint8 NHWC faces, one independent draw per face:
    a resolution history first (prob ``resize_prob``: shrink to ``U[resize_scale]`` of the side,
    enlarge back; off by default), then blur (prob ``blur_prob``, sigma ~ U[blur_sigma]), then
    JPEG (prob ``jpeg_prob``, quality uniform over the integers in ``jpeg_quality``), then a
    horizontal flip with probability 0.5. Deterministic given ``rng``'s state; with
    ``resize_prob=0`` the draws are those of the original recipe."""
    out = np.array(images, dtype=np.uint8, copy=True)
    n = len(out)
    do_blur = rng.random(n) < blur_prob
    sigmas = rng.uniform(blur_sigma[0], blur_sigma[1], n)
    do_jpeg = rng.random(n) < jpeg_prob
    qualities = rng.integers(jpeg_quality[0], jpeg_quality[1] + 1, n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    if resize_prob > 0:
        do_resize = rng.random(n) < resize_prob
        sides = np.round(rng.uniform(resize_scale[0], resize_scale[1], n) * out.shape[1])
    for i in range(n):
        if resize_prob > 0 and do_resize[i]:
            out[i] = resize_history(out[i], max(4, int(sides[i])))
        if do_blur[i]:
            out[i] = gaussian_blur(out[i], sigmas[i])
        if do_jpeg[i]:
            out[i] = jpeg_compress(out[i], qualities[i])
        if flips[i]:
            out[i] = out[i, :, ::-1]
    return out


# The perturbations of the robustness report (applied to real and fake faces alike).
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda img: img,
    "jpeg90": lambda img: jpeg_compress(img, 90),
    "jpeg75": lambda img: jpeg_compress(img, 75),
    "jpeg50": lambda img: jpeg_compress(img, 50),
    "blur1": lambda img: gaussian_blur(img, 1.0),
    "blur2": lambda img: gaussian_blur(img, 2.0),
    "resize0.5": lambda img: resize_down_up(img, 2.0),
}


def perturb(images: np.ndarray, name: str) -> np.ndarray:
    """Apply one named perturbation (see ``PERTURBATIONS``) to every face of a uint8 batch."""
    if name not in PERTURBATIONS:
        raise FacelibError(f"unknown perturbation {name!r}: use one of {', '.join(PERTURBATIONS)}")
    fn = PERTURBATIONS[name]
    images = np.asarray(images, np.uint8)
    return np.stack([fn(img) for img in images]) if len(images) else images.copy()


def high_frequency_energy(images: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image: how much fine detail a batch carries."""
    grey = np.asarray(images, np.float32).mean(axis=-1)
    return float(np.mean([np.mean(cv2.Laplacian(g, cv2.CV_32F) ** 2) for g in grey]))


# ---------------------------------------------------------------------------------------------
# Getting faces into the detector's input shape


def read_face(path: str | Path, resolution: int) -> np.ndarray:
    """Read one image file and bring it to the detector's input: a CelebA-shaped portrait or a
    square crop by ``facelib.images.align_face`` (the rule ``edit`` uses); any other framing by
    its centre square, so that every input, real or synthetic, gets one crop and one resize.
    FacelibError when the file is unreadable or its face region is under
    ``max(MIN_FACE_SIDE, resolution // 2)`` px."""
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"{path}: no such file; pass image files (JPEG/PNG)")
    try:
        image = read_image(path)
    except ValueError:
        raise FacelibError(f"{path}: not a readable image; pass a JPEG or PNG file") from None
    h, w = image.shape[:2]
    if face_frame(h, w) is not None:
        return align_face(image, resolution, name=str(path))
    need = max(MIN_FACE_SIDE, resolution // 2)
    if min(h, w) < need:
        raise FacelibError(f"{path} is {w}x{h}: too small for a {resolution} px detector (its "
                           f"centre square needs at least {need} px); use a larger image")
    return np.ascontiguousarray(process_image(image, resolution, "none"))


def detector_input(images, resolution: int) -> np.ndarray:
    """uint8 or float [-1, 1] NHWC faces of any size -> uint8 (N, R, R, 3) for the detector."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FacelibError(f"expected faces as NHWC RGB arrays, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = to_uint8(x)
    if x.shape[1:3] != (resolution, resolution):
        x = np.stack([align_face(img, resolution, name=f"face {i}") for i, img in enumerate(x)])
    return x


# ---------------------------------------------------------------------------------------------
# Faces from generators


def generate_fakes(runs: Sequence, n: int, resolution: int, seed: int = 0,
                   batch_size: int = 256) -> np.ndarray:
    """``n`` uint8 faces split evenly over ``runs`` (Run objects), resized to ``resolution``."""
    if not runs:
        raise FacelibError("no generator runs given: pass at least one run folder")
    counts = [n // len(runs) + (i < n % len(runs)) for i in range(len(runs))]
    out = []
    for i, (run, k) in enumerate(zip(runs, counts)):
        if k == 0:
            continue
        faces = run.generate(k, seed=seed + 7919 * i, batch_size=batch_size)
        out.append(resize_batch(faces, resolution))
    return np.concatenate(out)


def real_faces(cache, split: str = "train", n: int | None = None, seed: int = 0,
               resolution: int | None = None) -> np.ndarray:
    """Up to ``n`` real faces (a seeded random subset) of one split of a prepared cache."""
    cache = FaceCache.open(cache)
    rows = cache.indices(split)
    if len(rows) == 0:
        raise FacelibError(f"{cache.path} has no faces in its {split!r} split; prepare it again "
                           f"or use split='all'")
    if n is not None and n < len(rows):
        rows = np.sort(np.random.default_rng([seed, 99]).choice(rows, n, replace=False))
    faces = np.asarray(cache.images[rows])
    return faces if resolution is None else resize_batch(faces, resolution)


