"""python -m facelib human-report: combine judges' answer logs into one report (JSON + Markdown)."""

from __future__ import annotations

HELP = "combine human-evaluation answer logs (study folders or *.jsonl) into report.json/.md"


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="STUDY_DIR",
                   help="study folders (their sessions/*.jsonl are read) or answer log files")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for report.json and report.md")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--unit", default="judges+items",
                   choices=("judges+items", "items", "judges", "answers"),
                   help="what the bootstrap resamples (default: judges and items)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")


def run(args) -> int:
    from facelib.errors import FacelibError
    from facelib.human.scores import combine, write_report

    if args.boot < 100:
        raise FacelibError(f"--boot {args.boot}: use at least 100 replicates (2000 is usual)")
    if not 0.5 <= args.level < 1:
        raise FacelibError(f"--level {args.level}: give a level in [0.5, 1), e.g. 0.95")
    report = combine(args.paths, n_boot=args.boot, seed=args.seed, unit=args.unit,
                     level=args.level)
    json_path, md_path = write_report(report, args.out)
    print(f"{report['n_answers']} answers from {len(report['judges'])} judge(s)")
    for mode, m in report["real_vs_fake"].items():
        e = m["balanced_error"]
        lo, hi = e["ci"]
        print(f"  {mode}: balanced error {100 * e['value']:.1f}% "
              f"[{'n/a' if lo is None else f'{100 * lo:.1f}'}, "
              f"{'n/a' if hi is None else f'{100 * hi:.1f}'}] - {m['verdict']}")
    print(f"wrote {json_path} and {md_path}")
    return 0
