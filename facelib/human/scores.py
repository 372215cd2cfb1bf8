"""Scores from judges' answers: error rates with bootstrap CIs, HYPE, run comparisons, rankings.

Real-or-fake answers give the rate at which fakes are judged real (the realism of a run), reals
judged fake (how suspicious judges are), and the error rate: 50% on a balanced study means the
judges could not tell real from fake. Intervals are percentile bootstraps that by default
resample judges and items together (see ``bootstrap_rates``). Pairwise answers ("which face
looks more real?") are turned into a ranking of runs or images with a Bradley-Terry model.

``combine(paths)`` reads every judge's log and returns the whole report as a dict;
``write_report(report, path)`` writes it as JSON and Markdown.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facelib.errors import FacelibError
from facelib.human.session import load_answers

UNITS = ("judges+items", "items", "judges", "answers")
UNIT_WHY = {
    "judges+items": "judges and items are resampled independently (a two-way 'pigeonhole' "
                    "bootstrap): one judge's answers share that judge's skill and bias, and one "
                    "face's answers share its quality, so answers are not independent and "
                    "resampling them one by one would give too narrow intervals; the two-way "
                    "bootstrap errs slightly wide, the safe side for a claim of "
                    "indistinguishability. With one judge it reduces to resampling items.",
    "items": "items are resampled (the judges are taken as fixed)",
    "judges": "judges are resampled (the faces are taken as fixed)",
    "answers": "answers are resampled as if independent (narrowest; ignores judge and item "
               "effects)",
}


def _single(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("mode") in ("untimed", "rapid")
            and r.get("truth") in ("real", "fake")]


class _Table:
    """Real-or-fake answers as arrays: judge and item indices, truth and answer flags."""

    def __init__(self, records: list[dict]):
        if not records:
            raise FacelibError("no real-or-fake answers to score: judge some faces first "
                               "(JudgeSession / the widget), then combine their logs")
        self.records = records
        self.judges, self.judge = np.unique([r["judge"] for r in records], return_inverse=True)
        self.item_ids, self.item = np.unique([r["key"] for r in records], return_inverse=True)
        self.fake = np.array([r["truth"] == "fake" for r in records])
        self.said_real = np.array([r["answer"] == "real" for r in records])
        self.sources = np.array([r["sources"][0] for r in records])

    def __len__(self) -> int:
        return len(self.records)


def _rates(t: _Table, w: np.ndarray) -> dict[str, np.ndarray]:
    """The four rates for weight rows w (B, N): one bootstrap replicate per row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        wf, wr = w * t.fake, w * ~t.fake
        fjr = (wf * t.said_real).sum(1) / wf.sum(1)
        rjf = (wr * ~t.said_real).sum(1) / wr.sum(1)
        wrong = t.said_real == t.fake
        err = (w * wrong).sum(1) / w.sum(1)
    return dict(fake_judged_real=fjr, real_judged_fake=rjf, error=err,
                balanced_error=(fjr + rjf) / 2)


def _replicate_weights(t: _Table, unit: str, n_boot: int, rng: np.random.Generator):
    """Yield blocks of bootstrap weights (b, N): how often each answer enters each replicate."""
    if unit not in UNITS:
        raise FacelibError(f"unknown bootstrap unit {unit!r}: choose one of {UNITS}")
    nj, ni, n = len(t.judges), len(t.item_ids), len(t)
    block = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        w = np.ones((b, n))
        if unit in ("judges+items", "judges"):
            w = w * rng.multinomial(nj, np.full(nj, 1 / nj), size=b)[:, t.judge]
        if unit in ("judges+items", "items"):
            w = w * rng.multinomial(ni, np.full(ni, 1 / ni), size=b)[:, t.item]
        if unit == "answers":
            w = rng.multinomial(n, np.full(n, 1 / n), size=b).astype(float)
        done += b
        yield w


def _ci(samples: np.ndarray, level: float) -> list[float | None]:
    s = samples[np.isfinite(samples)]
    if not s.size:
        return [None, None]
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def error_rates(records: Iterable[dict]) -> dict[str, Any]:
    """Point estimates: fake-judged-real, real-judged-fake, error and balanced error, counts."""
    t = _Table(_single(records))
    est = {k: _num(v[0]) for k, v in _rates(t, np.ones((1, len(t)))).items()}
    return dict(est, n=len(t), n_fake=int(t.fake.sum()), n_real=int((~t.fake).sum()),
                n_judges=len(t.judges), n_items=len(t.item_ids))


def bootstrap_rates(records: Iterable[dict], n_boot: int = 2000, seed: int = 0,
                    unit: str = "judges+items", level: float = 0.95) -> dict[str, Any]:
    """Each rate with a percentile bootstrap CI: ``{rate: {"value": v, "ci": [lo, hi]}}``.

    ``unit`` says what is resampled; the default, "judges+items", is explained in UNIT_WHY.
    A rate a replicate cannot compute (e.g. no real faces drawn) is left out of its interval.
    """
    t = _Table(_single(records))
    point = _rates(t, np.ones((1, len(t))))
    rng = np.random.default_rng(seed)
    reps = {k: [] for k in point}
    for w in _replicate_weights(t, unit, n_boot, rng):
        for k, v in _rates(t, w).items():
            reps[k].append(v)
    out = {k: dict(value=_num(point[k][0]), ci=_ci(np.concatenate(reps[k]), level))
           for k in point}
    out.update(n=len(t), n_fake=int(t.fake.sum()), n_real=int((~t.fake).sum()),
               n_judges=len(t.judges), n_items=len(t.item_ids))
    return out


def hype_score(rates: dict[str, Any]) -> dict[str, Any]:
    """HYPE-style score (Zhou et al. 2019): the error rate in percent, 50 = indistinguishable.

    HYPE-infinity is the error on a 50/50 real/fake set; using the balanced error (the mean of
    the two error rates) gives the same number when the study is balanced and the number a
    balanced study would give when it is not.
    """
    b = rates["balanced_error"]
    ci = [None if c is None else 100 * c for c in b["ci"]]
    return dict(score=None if b["value"] is None else 100 * b["value"], ci=ci)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (answers taken as independent)."""
    if min(n1, n2) < 1:
        raise FacelibError("a two-proportion test needs answers in both groups")
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def compare_runs(records: Iterable[dict], run_a: str, run_b: str, n_boot: int = 2000,
                 seed: int = 0, unit: str = "judges+items", level: float = 0.95) -> dict:
    """Is run A more realistic than run B? Difference of fake-judged-real rates (A - B).

    The CI comes from the same bootstrap as the rates (so judge effects shared by both runs
    cancel); the p-value is a two-proportion z-test, which treats answers as independent and
    so is only a quick check next to the CI.
    """
    recs = [r for r in _single(records) if r["truth"] == "fake"
            and r["sources"][0] in (run_a, run_b)]
    t = _Table(recs) if recs else None
    if t is None or run_a not in t.sources or run_b not in t.sources:
        have = sorted(set(t.sources)) if t is not None else []
        raise FacelibError(f"cannot compare runs {run_a!r} and {run_b!r}: answers exist for "
                           f"{have}; use the run labels in the study's manifest")
    a = t.sources == run_a

    def diff(w):
        with np.errstate(invalid="ignore", divide="ignore"):
            fa = (w * a * t.said_real).sum(1) / (w * a).sum(1)
            fb = (w * ~a * t.said_real).sum(1) / (w * ~a).sum(1)
        return fa - fb

    rng = np.random.default_rng(seed)
    reps = np.concatenate([diff(w) for w in _replicate_weights(t, unit, n_boot, rng)])
    ka, na = int(t.said_real[a].sum()), int(a.sum())
    kb, nb = int(t.said_real[~a].sum()), int((~a).sum())
    return dict(a=run_a, b=run_b, fake_judged_real_a=ka / na, fake_judged_real_b=kb / nb,
                n_a=na, n_b=nb, diff=ka / na - kb / nb, ci=_ci(reps, level),
                p_value=two_proportion_p(ka, na, kb, nb))


def bradley_terry(comparisons: Iterable[tuple[str, str]], prior: float = 0.5,
                  max_iter: int = 10000, tol: float = 1e-10) -> list[dict[str, Any]]:
    """Rank players from (winner, loser) pairs with Bradley-Terry, fitted by MM (Hunter 2004).

    P(i beats j) = p_i / (p_i + p_j). Each player also plays ``prior`` wins and ``prior``
    losses against a virtual opponent of strength 1: a weak prior that keeps strengths finite
    when a player wins or loses every game (the plain MLE then does not exist). Returns players
    best first with ``score`` = log strength (so P(i beats j) = sigmoid(score_i - score_j)).
    """
    pairs = list(comparisons)
    if not pairs:
        raise FacelibError("no pairwise choices to rank: judge some pairs first")
    if prior <= 0:
        raise FacelibError(f"prior={prior}: must be > 0 to keep the strengths finite")
    names = sorted({x for p in pairs for x in p})
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    wins = np.zeros(k)
    games = np.zeros((k, k))
    for w, l in pairs:
        if w == l:
            raise FacelibError(f"a comparison of {w!r} with itself: drop it")
        wins[index[w]] += 1
        games[index[w], index[l]] += 1
        games[index[l], index[w]] += 1
    p = np.ones(k)
    for _ in range(max_iter):
        denom = (games / (p[:, None] + p[None, :])).sum(1) + 2 * prior / (p + 1)
        new = (wins + prior) / denom
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    score = np.log(p)
    order = np.argsort(-score, kind="stable")
    return [dict(name=names[i], score=float(score[i]), wins=int(wins[i]),
                 games=int(games[i].sum())) for i in order]


def preference_ranking(records: Iterable[dict], by: str = "run", prior: float = 0.5) -> list:
    """Bradley-Terry ranking from the pairwise mode, of runs (``by="run"``) or images."""
    if by not in ("run", "image"):
        raise FacelibError(f"by={by!r}: rank by 'run' or 'image'")
    comps = []
    for r in records:
        if r.get("mode") != "pairwise":
            continue
        i = 0 if r["answer"] == "left" else 1
        names = r["sources"] if by == "run" else r["items"]
        if names[0] != names[1]:  # a pair within one run says nothing about runs
            comps.append((names[i], names[1 - i]))
    return bradley_terry(comps, prior=prior)


def _mode_key(r: dict) -> str:
    return "untimed" if r["mode"] == "untimed" else f"rapid@{r['exposure_ms']}ms"


def _verdict(err: dict) -> str:
    """Read the balanced error's interval: unlike the plain error it does not move with a
    judge's bias towards answering "real" or "fake"."""
    lo, hi = err["ci"]
    if lo is None:
        return "not enough answers for an interval"
    if lo <= 0.5 <= hi:
        return ("the interval contains 50%: no evidence that these judges could tell fakes "
                "from real faces (a wide interval means more answers are needed to say more)")
    if hi < 0.5:
        return "below 50%: the judges told fakes from real faces better than chance"
    return "above 50%: the judges took fakes for real more often than reals"


def summarize(records: list[dict], n_boot: int = 2000, seed: int = 0,
              unit: str = "judges+items", level: float = 0.95) -> dict[str, Any]:
    """The full report for a list of answer records (see ``combine`` for the file version)."""
    if unit not in UNITS:
        raise FacelibError(f"unknown bootstrap unit {unit!r}: choose one of {UNITS}")
    records = list(records)
    if not records:
        raise FacelibError("no answers to report: the logs are empty")
    report: dict[str, Any] = dict(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        n_answers=len(records), judges=sorted({r["judge"] for r in records}),
        studies=sorted({r["study"] for r in records}),
        logs=sorted({r["log"] for r in records if "log" in r}),
        bootstrap=dict(n_boot=n_boot, seed=seed, unit=unit, level=level, why=UNIT_WHY[unit]),
        real_vs_fake={}, pairwise=None,
    )
    single = _single(records)
    for mode in sorted({_mode_key(r) for r in single}):
        recs = [r for r in single if _mode_key(r) == mode]
        rates = bootstrap_rates(recs, n_boot, seed, unit, level)
        runs = sorted({r["sources"][0] for r in recs if r["truth"] == "fake"})
        by_run = {}
        for run in runs:
            fakes = [r for r in recs if r["truth"] == "fake" and r["sources"][0] == run]
            b = bootstrap_rates(fakes, n_boot, seed, unit, level)
            by_run[run] = dict(n=b["n"], fake_judged_real=b["fake_judged_real"])
        per_judge = {}
        for j in sorted({r["judge"] for r in recs}):
            rj = [r for r in recs if r["judge"] == j]
            e = error_rates(rj)
            per_judge[j] = dict(n=len(rj), error=e["error"],
                                said_real=float(np.mean([r["answer"] == "real" for r in rj])),
                                median_response_ms=float(np.median([r["response_ms"]
                                                                    for r in rj])))
        report["real_vs_fake"][mode] = dict(
            **rates, hype=hype_score(rates), verdict=_verdict(rates["balanced_error"]), by_run=by_run,
            comparisons=[compare_runs(recs, a, b, n_boot, seed, unit, level)
                         for a, b in combinations(runs, 2)],
            per_judge=per_judge)
    pair = [r for r in records if r.get("mode") == "pairwise"]
    if pair:
        cross = [r for r in pair if r["sources"][0] != r["sources"][1]]
        report["pairwise"] = dict(n=len(pair), images=preference_ranking(pair, by="image"),
                                  runs=preference_ranking(cross, by="run") if cross else [])
    return report


def combine(paths: Iterable[str | Path] | str | Path, **kwargs: Any) -> dict[str, Any]:
    """Read several judges' logs (JSONL files or study folders) into one report dict."""
    return summarize(load_answers(paths), **kwargs)


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3g}"


def _fmt_ci(d: dict) -> str:
    lo, hi = d["ci"]
    return f"{_fmt(d['value'])} [{_fmt(lo)}, {_fmt(hi)}]"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown document (the JSON holds everything)."""
    b = report["bootstrap"]
    lines = [
        "# Human evaluation: real or fake?", "",
        f"{report['n_answers']} answers from {len(report['judges'])} judge(s) "
        f"({', '.join(report['judges'])}); studies: {', '.join(report['studies'])}.", "",
        f"Intervals: {int(100 * b['level'])}% percentile bootstrap, {b['n_boot']} replicates, "
        f"seed {b['seed']}, resampling {b['unit']}: {b['why']}", "",
    ]
    for mode, m in report["real_vs_fake"].items():
        lines += [
            f"## Real or fake ({mode})", "",
            f"{m['n']} answers ({m['n_real']} real, {m['n_fake']} fake faces shown), "
            f"{m['n_judges']} judge(s), {m['n_items']} faces.", "",
            "| rate | value [CI] |", "|---|---|",
            f"| fakes judged real | {_fmt_ci(m['fake_judged_real'])} |",
            f"| reals judged fake | {_fmt_ci(m['real_judged_fake'])} |",
            f"| error | {_fmt_ci(m['error'])} |",
            f"| balanced error | {_fmt_ci(m['balanced_error'])} |", "",
            f"HYPE score: {_fmt(m['hype']['score'], pct=False)} (the balanced error in %, "
            f"50 = indistinguishable). Verdict: {m['verdict']}.", "",
            "| run | fakes judged real [CI] | answers |", "|---|---|---|",
        ]
        lines += [f"| {run} | {_fmt_ci(r['fake_judged_real'])} | {r['n']} |"
                  for run, r in m["by_run"].items()]
        if m["comparisons"]:
            lines += ["", "| A | B | A - B [CI] | p (two-proportion) |", "|---|---|---|---|"]
            lines += [f"| {c['a']} | {c['b']} | {_fmt(c['diff'])} [{_fmt(c['ci'][0])}, "
                      f"{_fmt(c['ci'][1])}] | {c['p_value']:.3g} |" for c in m["comparisons"]]
        lines += ["", "| judge | answers | error | said real | median response |",
                  "|---|---|---|---|---|"]
        lines += [f"| {j} | {p['n']} | {_fmt(p['error'])} | {_fmt(p['said_real'])} | "
                  f"{p['median_response_ms']:.0f} ms |" for j, p in m["per_judge"].items()]
        lines.append("")
    if report["pairwise"]:
        p = report["pairwise"]
        lines += ["## Pairwise preference (Bradley-Terry)", "", f"{p['n']} choices.", ""]
        for what in ("runs", "images"):
            rows = p[what] if what == "runs" else p[what][:10]
            if not rows:
                continue
            title = what if what == "runs" else "images (top 10)"
            lines += [f"| rank | {title} | score | wins / games |", "|---|---|---|---|"]
            lines += [f"| {i + 1} | {r['name']} | {r['score']:.2f} | "
                      f"{r['wins']} / {r['games']} |" for i, r in enumerate(rows)]
            lines.append("")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md``: into a folder, or next to ``path`` if it ends
    in .json or .md. Returns both paths."""
    path = Path(path)
    if path.suffix in (".json", ".md"):
        json_path, md_path = path.with_suffix(".json"), path.with_suffix(".md")
    else:
        json_path, md_path = path / "report.json", path / "report.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.write_text(to_markdown(report) + "\n")
    return json_path, md_path
