"""python -m facelib evaluate: every metric of a run in one report (report.json + report.md)."""

from __future__ import annotations

HELP = ("evaluate a run against held-out real faces: FID, KID, precision/recall, density/coverage,"
        " memorization, mode collapse, attribute marginals; writes report.json, report.md, figures")


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder written by `train`")
    p.add_argument("--real", help="real faces: a prepared cache, a CelebA folder or a folder of "
                   "images (default: the run's training cache, whose valid+test splits are used)")
    p.add_argument("--out", required=True, help="folder for report.json, report.md and figures")
    p.add_argument("--n", type=int, default=1000, help="generated faces (default 1000)")
    p.add_argument("--n-real", type=int, help="real faces at most (default: --n)")
    p.add_argument("--classifier", help="attribute classifier folder (train-classifier); without "
                   "it the attribute entries are null")
    p.add_argument("--checkpoint", help="latest (default), best, step-NNNNNNNN or a checkpoint "
                   "folder; --run RUN@CKPT says the same")
    p.add_argument("--feature-network", default="standard", choices=("standard", "test"),
                   help="standard: the FID Inception (comparable numbers); test: a small random "
                   "network for quick checks (NOT comparable)")
    p.add_argument("--convention", choices=("pytorch-fid", "tensorflow", "clean"),
                   help="FID/KID resize convention of the standard network: pytorch-fid "
                   "(default), tensorflow (StyleGAN2-ADA) or clean (clean-fid); recorded in "
                   "report.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train-features", type=int, default=5000,
                   help="training faces whose features are the memorization reference in "
                   "feature space (default 5000)")
    p.add_argument("--no-figures", action="store_true", help="numbers only")


def run(args) -> int:
    from facelib.classifier import AttributeClassifier
    from facelib.errors import FacelibError
    from facelib.evaluation import evaluate_run
    from facelib.run.interface import open_run

    if args.n_real is not None and args.n_real < 1:
        raise FacelibError(f"--n-real {args.n_real}: ask for at least one real face")
    run = open_run(args.run, checkpoint=args.checkpoint)
    classifier = AttributeClassifier.load(args.classifier) if args.classifier else None
    report = evaluate_run(run, args.real, args.out, n=args.n, classifier=classifier,
                          network=args.feature_network, convention=args.convention,
                          seed=args.seed, n_real=args.n_real,
                          max_train_features=args.max_train_features,
                          figures=not args.no_figures, progress=True)
    if not report["feature_network"]["comparable"]:
        print("NOTE: measured with the TEST feature network; these numbers are NOT comparable "
              "with published FID/KID")
    print(f"FID {report['fid']:.2f} | KID {report['kid_mean']:.4f} | see {args.out}/report.md")
    return 0
