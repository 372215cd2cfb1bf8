"""facelib.human.session: the judge's state machine, its timing, and the crash-proof JSONL log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from facelib.errors import FacelibError
from helpers import TinyRun
from facelib.human.session import (AnswerLog, JudgeSession, SimulatedClock, load_answers,
                                   read_jsonl, simulate_judge)
from facelib.human.study import build_study

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture()
def study(tmp_path, cache32):
    return build_study(tmp_path / "study", TinyRun(), cache32, n_fake=5, n_pairs=4)


def test_untimed_answer_logs_response_time_from_onset(study):
    clock = SimulatedClock(100.0)
    s = JudgeSession(study, "ann", "untimed", clock=clock, now=lambda: 0.0, session_id="s1")
    assert (s.state, s.total, s.answered, s.exposure_ms) == ("ready", 10, 0, None)
    trial = s.show()
    clock.advance(1.25)
    rec = s.answer("real")
    assert rec["response_ms"] == pytest.approx(1250.0) and rec["shown_ms"] == pytest.approx(1250.0)
    assert rec["items"] == [trial.key] and rec["key"] == trial.key
    assert rec["truth"] == study.item(trial.key).kind
    assert rec["correct"] == (rec["truth"] == "real")
    assert rec["judge"] == "ann" and rec["mode"] == "untimed" and rec["session"] == "s1"
    assert rec["sources"] == [study.item(trial.key).source]
    assert rec["timestamp"] == "1970-01-01T00:00:00.000+00:00" and rec["trial"] == 0
    assert read_jsonl(s.log.path) == [rec]
    assert s.state == "ready" and s.answered == 1 and s.current.key != trial.key


def test_rapid_hides_after_exposure_and_ignores_stale_timers(study):
    clock = SimulatedClock()
    s = JudgeSession(study, "ann", "rapid", exposure_ms=250, clock=clock)
    s.show()
    first = s.token
    clock.advance(0.25)
    assert s.hide(first) and s.state == "masked"
    assert not s.hide(first)  # already hidden
    clock.advance(0.5)
    rec = s.answer("fake")
    assert rec["exposure_ms"] == 250
    assert rec["shown_ms"] == pytest.approx(250.0) and rec["response_ms"] == pytest.approx(750.0)
    s.show()
    assert not s.hide(first)  # the previous trial's timer must not hide this face
    assert s.state == "showing"
    clock.advance(0.1)  # answered before the mask: it was on screen until the answer
    rec = s.answer("real")
    assert rec["shown_ms"] == pytest.approx(100.0) == rec["response_ms"]


def test_state_machine_rejects_out_of_order_calls(study):
    s = JudgeSession(study, "ann", "untimed")
    with pytest.raises(FacelibError, match="show\\(\\) before answer"):
        s.answer("real")
    s.show()
    with pytest.raises(FacelibError, match="already on screen"):
        s.show()
    with pytest.raises(FacelibError, match="one of \\('real', 'fake'\\)"):
        s.answer("left")
    assert not s.hide()  # nothing to hide outside the rapid mode
    with pytest.raises(FacelibError, match="exposure_ms"):
        JudgeSession(study, "ann", "rapid", exposure_ms=0)
    with pytest.raises(FacelibError, match="unknown mode"):
        JudgeSession(study, "ann", "blink")


def test_pairwise_records_the_chosen_image(study):
    clock = SimulatedClock()
    s = JudgeSession(study, "ann", "pairwise", clock=clock)
    trial = s.show()
    clock.advance(2.0)
    rec = s.answer("right")
    assert rec["chosen"] == trial.items[1] and rec["truth"] is None and len(rec["items"]) == 2


@pytest.mark.slow
def test_log_survives_a_crash_and_the_session_resumes(study):
    """A process that dies mid-session (os._exit: no cleanup, no close) leaves every answer."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from facelib.human.session import JudgeSession
        s = JudgeSession({str(study.folder)!r}, "ann", "untimed", session_id="first")
        for _ in range(3):
            s.show(); s.answer("real")
        s.show()          # a face on screen, never answered
        os._exit(1)       # the tab closes / the kernel dies
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    path = study.session_path("ann", "untimed")
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["session"] == "first" for x in lines)

    s = JudgeSession(study, "ann", "untimed", session_id="second")
    assert (s.answered, s.total) == (3, 10)
    done = {json.loads(x)["key"] for x in lines}
    order = [t.key for t in study.trials("ann", "untimed")]
    assert s.current.key == order[3]  # continues where it stopped, in the same order
    while s.state != "done":
        s.show()
        assert s.current.key not in done
        s.answer("fake")
    recs = read_jsonl(path)
    assert [r["key"] for r in recs] == order
    assert [r["trial"] for r in recs] == list(range(10))
    assert JudgeSession(study, "ann", "untimed").state == "done"


def test_torn_last_line_is_dropped_and_appending_goes_on(tmp_path):
    path = tmp_path / "log.jsonl"
    log = AnswerLog(path)
    log.append({"key": "a"})
    with open(path, "a") as f:
        f.write('{"key": "b", "ans')  # killed mid-write
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert read_jsonl(path) == [{"key": "a"}]
    with pytest.warns(UserWarning, match="dropped an incomplete"):
        log = AnswerLog(path)
    log.append({"key": "c"})
    assert read_jsonl(path) == [{"key": "a"}, {"key": "c"}]
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(FacelibError, match=":2 is not valid JSON"):
        read_jsonl(path)


def test_combining_judges_logs(study):
    simulate_judge(study, "ann", "untimed", "always-real")
    simulate_judge(study, "bob", "untimed", "perfect", limit=4)
    simulate_judge(study, "bob", "pairwise", "random")
    recs = load_answers([study.folder])
    assert len(recs) == 10 + 4 + 4
    assert {(r["judge"], r["mode"]) for r in recs} == {("ann", "untimed"), ("bob", "untimed"),
                                                       ("bob", "pairwise")}
    assert all(Path(r["log"]).parent == study.sessions_dir for r in recs)
    # a log listed twice (or two tabs answering one trial) counts each answer once
    again = load_answers([study.session_path("ann", "untimed"), study.folder])
    assert len(again) == 18
    with pytest.raises(FacelibError, match="not found"):
        load_answers([study.folder / "missing.jsonl"])


def test_simulated_judges_follow_their_policy(study):
    perfect = simulate_judge(study, "p", "rapid", "perfect", exposure_ms=300)
    assert len(perfect) == 10 and all(r["correct"] for r in perfect)
    assert all(r["shown_ms"] <= 300 + 1e-6 and r["response_ms"] > 0 for r in perfect)
    real = simulate_judge(study, "r", "untimed", "always-real")
    assert {r["answer"] for r in real} == {"real"}
    assert simulate_judge(study, "r", "untimed", "always-real") == []  # resumed: nothing left
    with pytest.raises(FacelibError, match="policy"):
        simulate_judge(study, "x", "untimed", "sometimes")
