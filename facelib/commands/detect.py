"""python -m facelib detect / train-detector: is a face real or synthetic?

``detect`` prints one line per image: the probability that it is synthetic, the verdict at 0.5
and the path. ``train-detector`` (module ``train_detector`` below) trains the detector.
"""

from __future__ import annotations

HELP = ("print, for each face image, the probability that it is synthetic (the shipped detector, "
        "or --detector)")


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="face images or folders: square crops of any size, CelebA-shaped 178x218 "
                        "portraits (CelebA's face box), other shapes by their centre square")
    p.add_argument("--detector", default="pretrained:detector",
                   help="detector folder written by train-detector (default: pretrained:detector, "
                        "the one shipped with facelib; see README, 'Real or synthetic')")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="probability above which a face is called synthetic (default 0.5)")


def _expand(paths):
    from pathlib import Path

    from facelib.data.sources import list_image_files

    out = []
    for p in map(Path, paths):
        out.extend(list_image_files(p) if p.is_dir() else [p])
    return out


def run(args) -> int:
    import numpy as np

    from facelib.detector import load_detector, read_face
    from facelib.errors import FacelibError

    if not 0.0 < args.threshold < 1.0:
        raise FacelibError(f"--threshold {args.threshold}: use a probability between 0 and 1")
    detector = load_detector(args.detector)
    files = _expand(args.images)
    if not files:
        raise FacelibError(f"no image files found in {' '.join(args.images)}")
    faces, good, problems = [], [], []
    for path in files:
        try:
            faces.append(read_face(path, detector.resolution))
            good.append(path)
        except FacelibError as e:
            problems.append(str(e))
    if faces:
        probs = detector.predict_proba(np.stack(faces))
        for path, p in zip(good, probs):
            verdict = "synthetic" if p >= args.threshold else "real"
            print(f"{p:.4f}\t{verdict}\t{path}", flush=True)
    if problems:
        raise FacelibError(f"{len(problems)} of {len(files)} image(s) could not be checked:\n  "
                           + "\n  ".join(problems))
    return 0
