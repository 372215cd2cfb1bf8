"""facelib.human.scores: error rates with bootstrap CIs, HYPE, run comparisons, Bradley-Terry,
and the combined report, checked on simulated judges with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.human.scores import (bootstrap_rates, bradley_terry, combine, compare_runs,
                                  error_rates, hype_score, preference_ranking, summarize,
                                  two_proportion_p, write_report)


def answers(policy, n_real=100, n_fake=100, judges=("ann",), seed=0, runs=("runs/a",)):
    """Real-or-fake records for a balanced item set; policy(judge, truth, rng) -> answer."""
    rng = np.random.default_rng(seed)
    items = [("real", f"real:c#{i}", "real") for i in range(n_real)]
    items += [("fake", f"fake:{runs[i % len(runs)]}#seed1/{i}", runs[i % len(runs)])
              for i in range(n_fake)]
    out = []
    for j in judges:
        for truth, key, source in items:
            a = policy(j, truth, rng)
            out.append(dict(study="s", judge=j, mode="untimed", key=key, items=[key],
                            sources=[source], truth=truth, answer=a, correct=a == truth,
                            exposure_ms=None, response_ms=900.0, shown_ms=900.0))
    return out


def always_real(j, truth, rng):
    return "real"


def coin(j, truth, rng):
    return "real" if rng.random() < 0.5 else "fake"


def perfect(j, truth, rng):
    return truth


def test_always_real_judge():
    e = error_rates(answers(always_real))
    assert e["fake_judged_real"] == 1.0 and e["real_judged_fake"] == 0.0
    assert e["error"] == 0.5 and e["balanced_error"] == 0.5
    assert (e["n"], e["n_real"], e["n_fake"], e["n_judges"]) == (200, 100, 100, 1)


def test_random_judge_error_is_chance_and_the_ci_covers_it():
    r = bootstrap_rates(answers(coin, 200, 200, seed=1), n_boot=1000, seed=0)
    lo, hi = r["error"]["ci"]
    assert abs(r["error"]["value"] - 0.5) < 0.05
    assert lo < 0.5 < hi and hi - lo < 0.15
    assert r["balanced_error"]["ci"][0] < 0.5 < r["balanced_error"]["ci"][1]


def test_perfect_judge():
    r = bootstrap_rates(answers(perfect), n_boot=500, seed=0)
    assert r["error"]["value"] == 0.0 and r["error"]["ci"] == [0.0, 0.0]
    assert r["fake_judged_real"]["ci"] == [0.0, 0.0]
    assert hype_score(r) == {"score": 0.0, "ci": [0.0, 0.0]}


def test_bootstrap_is_seeded_and_the_unit_matters():
    """Judges who differ (one perfect, one guessing 'real') make answers clustered: resampling
    judges and items gives a wider interval than pretending answers are independent."""
    recs = answers(lambda j, t, rng: t if j == "good" else "real", 50, 50,
                   judges=("good", "lazy", "good2", "lazy2"))
    for r in recs:
        if r["judge"] == "good2":
            r["answer"] = r["truth"]
    a = bootstrap_rates(recs, n_boot=800, seed=7)
    assert a == bootstrap_rates(recs, n_boot=800, seed=7)
    assert a["error"]["ci"] != bootstrap_rates(recs, n_boot=800, seed=8)["error"]["ci"]
    wide = np.diff(a["error"]["ci"])[0]
    narrow = np.diff(bootstrap_rates(recs, n_boot=800, seed=7, unit="answers")["error"]["ci"])[0]
    assert wide > 2 * narrow
    with pytest.raises(FacelibError, match="unknown bootstrap unit"):
        bootstrap_rates(recs, unit="faces")


def test_two_proportion_p_known_values():
    # 30/50 vs 20/50: pooled 0.5, se 0.1, z 2 -> p = erfc(2 / sqrt 2) = 0.0455
    assert two_proportion_p(30, 50, 20, 50) == pytest.approx(math.erfc(2 / math.sqrt(2)))
    assert two_proportion_p(30, 50, 20, 50) == pytest.approx(0.0455, abs=1e-4)
    assert two_proportion_p(10, 10, 20, 20) == 1.0
    with pytest.raises(FacelibError):
        two_proportion_p(1, 0, 1, 2)


def test_compare_runs_detects_the_more_realistic_run():
    recs = answers(always_real, 0, 200, judges=("ann", "bob"), runs=("runs/a", "runs/b"))
    rng = np.random.default_rng(0)
    for r in recs:  # fakes of run a pass as real 80% of the time, of run b 20%
        p = 0.8 if r["sources"][0] == "runs/a" else 0.2
        r["answer"] = "real" if rng.random() < p else "fake"
    c = compare_runs(recs, "runs/a", "runs/b", n_boot=500)
    assert c["diff"] == pytest.approx(c["fake_judged_real_a"] - c["fake_judged_real_b"])
    assert 0.5 < c["diff"] < 0.7 and c["ci"][0] > 0.4 and c["p_value"] < 1e-10
    assert c["n_a"] == c["n_b"] == 200
    same = answers(always_real, 0, 40, runs=("runs/a", "runs/b"))
    c = compare_runs(same, "runs/a", "runs/b", n_boot=200)
    assert c["diff"] == 0 and c["p_value"] == 1.0 and c["ci"] == [0.0, 0.0]
    with pytest.raises(FacelibError, match="runs/c"):
        compare_runs(same, "runs/a", "runs/c")


def test_bradley_terry_recovers_a_known_ordering():
    rng = np.random.default_rng(0)
    true = {"e": -1.5, "d": -0.5, "c": 0.0, "b": 0.7, "a": 1.6}
    names = list(true)
    comps = []
    for _ in range(3000):
        i, j = rng.choice(len(names), 2, replace=False)
        pi = 1 / (1 + math.exp(true[names[j]] - true[names[i]]))
        comps.append((names[i], names[j]) if rng.random() < pi else (names[j], names[i]))
    ranking = bradley_terry(comps)
    assert [r["name"] for r in ranking] == ["a", "b", "c", "d", "e"]
    score = {r["name"]: r["score"] for r in ranking}
    for x in names:  # log-strength differences match the truth
        assert score[x] - score["c"] == pytest.approx(true[x] - true["c"], abs=0.2)
    assert sum(r["games"] for r in ranking) == 2 * 3000


def test_bradley_terry_stays_finite_for_an_unbeaten_player():
    ranking = bradley_terry([("a", "b")] * 5 + [("b", "c")] * 3 + [("c", "b")])
    assert [r["name"] for r in ranking] == ["a", "b", "c"]
    assert all(np.isfinite(r["score"]) for r in ranking)
    with pytest.raises(FacelibError, match="no pairwise"):
        bradley_terry([])
    with pytest.raises(FacelibError, match="itself"):
        bradley_terry([("a", "a")])


def test_preference_ranking_from_pairwise_records():
    recs = []
    for k in range(30):  # run A's face wins 24 of 30, on either side
        a_left = k % 2 == 0
        a_wins = k < 24
        items = [f"fake:A#seed1/{k}", f"fake:B#seed1/{k}"]
        srcs = ["A", "B"]
        if not a_left:
            items, srcs = items[::-1], srcs[::-1]
        answer = ("left" if a_left else "right") if a_wins else ("right" if a_left else "left")
        recs.append(dict(mode="pairwise", judge="ann", items=items, sources=srcs,
                         answer=answer, truth=None))
    runs = preference_ranking(recs, by="run")
    assert [r["name"] for r in runs] == ["A", "B"] and runs[0]["wins"] == 24
    assert len(preference_ranking(recs, by="image")) == 60
    with pytest.raises(FacelibError, match="'run' or 'image'"):
        preference_ranking(recs, by="judge")


def test_report_combines_judges_and_writes_json_and_markdown(tmp_path):
    from facelib.human.session import AnswerLog

    recs = answers(always_real, 20, 20, judges=("ann",), runs=("runs/a", "runs/b"))
    recs += answers(perfect, 20, 20, judges=("bob",), runs=("runs/a", "runs/b"))
    for judge in ("ann", "bob"):
        log = AnswerLog(tmp_path / "sessions" / f"{judge}__untimed.jsonl")
        for r in recs:
            if r["judge"] == judge:
                log.append(r)
    report = combine([tmp_path], n_boot=300, seed=0)
    assert report["judges"] == ["ann", "bob"] and report["n_answers"] == 80
    m = report["real_vs_fake"]["untimed"]
    assert m["fake_judged_real"]["value"] == 0.5 and m["real_judged_fake"]["value"] == 0.0
    assert m["error"]["value"] == 0.25 and m["hype"]["score"] == 25.0
    assert set(m["by_run"]) == {"runs/a", "runs/b"}
    assert m["per_judge"]["ann"]["said_real"] == 1.0 and m["per_judge"]["bob"]["error"] == 0.0
    assert [(c["a"], c["b"]) for c in m["comparisons"]] == [("runs/a", "runs/b")]
    assert report["bootstrap"]["unit"] == "judges+items" and report["pairwise"] is None
    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["real_vs_fake"]["untimed"]["n"] == 80
    md = md_path.read_text()
    assert "| fakes judged real | 50.0% [" in md and "| bob | 40 | 0.0% |" in md
    j2, m2 = write_report(report, tmp_path / "r.json")
    assert (j2.name, m2.name) == ("r.json", "r.md")
    with pytest.raises(FacelibError, match="no real-or-fake answers"):
        error_rates([])
    with pytest.raises(FacelibError, match="empty"):
        summarize([])


def test_human_report_command(tmp_path, capsys):
    """The optional CLI verb (facelib/commands/human_report.py), driven through its parser."""
    import argparse

    from facelib.commands import human_report
    from facelib.human.session import AnswerLog

    log = AnswerLog(tmp_path / "study" / "sessions" / "ann__untimed.jsonl")
    for r in answers(always_real, 10, 10):
        log.append(r)
    parser = argparse.ArgumentParser()
    human_report.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "study"), "--out", str(tmp_path / "rep"),
                              "--boot", "200"])
    assert human_report.run(args) == 0
    out = capsys.readouterr().out
    assert "20 answers from 1 judge(s)" in out and "balanced error 50.0%" in out
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["n_answers"] == 20
    assert (tmp_path / "rep" / "report.md").read_text().startswith("# Human evaluation")
    with pytest.raises(FacelibError, match="not found"):
        human_report.run(parser.parse_args([str(tmp_path / "nope"), "--out", "x"]))
    with pytest.raises(FacelibError, match="--boot"):
        human_report.run(parser.parse_args([str(tmp_path / "study"), "--out", "x",
                                            "--boot", "5"]))
