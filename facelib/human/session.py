"""A judge's session: the state machine of one sitting, and its crash-proof JSONL answer log.

``JudgeSession`` holds no widgets, so its timing is testable headless: it shows a trial (the
onset is read from an injectable clock), hides it after the exposure in the rapid mode, and
records the answer with the response time measured from the onset. Every answer is appended as
one JSON line, flushed and fsynced before ``answer()`` returns, so closing the browser tab, a
dead kernel or a power cut loses at most the answer being written; starting a session again for
the same judge and mode skips what is already in the log.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
import uuid
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from facelib.errors import FacelibError
from facelib.human.study import MODES, Study, Trial, check_judge, check_mode

ANSWERS = {"untimed": ("real", "fake"), "rapid": ("real", "fake"), "pairwise": ("left", "right")}


class AnswerLog:
    """Append-only JSONL: one answer per line, each one durable on disk when append() returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Cut a torn last line (a crash mid-write) so the next answer starts on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            warnings.warn(f"{self.path}: dropped an incomplete last line ({len(data) - keep} "
                          "bytes) left by an interrupted write", stacklevel=3)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete answer in one log; a torn last line is skipped with a warning.

    Read line by line. Any other line that is not a JSON object (not UTF-8, not JSON, nested
    too deep, a list or a number) is one FacelibError naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):  # JSON and UTF-8 errors are ValueErrors
                if not raw.endswith(b"\n"):  # no newline after it: an interrupted write
                    warnings.warn(f"{path}:{n}: skipped an incomplete last line", stacklevel=2)
                    continue
                raise FacelibError(
                    f"{path}:{n} is not valid JSON: the answer log was edited or corrupted; "
                    "fix or delete that line"
                ) from None
            if not isinstance(record, dict):
                raise FacelibError(
                    f"{path}:{n} is a JSON {type(record).__name__}, not an answer record (an "
                    "object): the answer log was edited or corrupted; fix or delete that line")
            out.append(record)
    return out


# What every answer record holds (JudgeSession.answer writes them), checked on reading so that
# the scores never meet a record they cannot use.
_RECORD_FIELDS = {"study": str, "judge": str, "mode": str, "key": str, "answer": str,
                  "items": list, "sources": list}


def _check_record(r: dict[str, Any], path: Path, n: int) -> None:
    for name, kind in _RECORD_FIELDS.items():
        if not isinstance(r.get(name), kind):
            raise FacelibError(f"{path}, record {n}: field {name!r} is missing or not a "
                               f"{kind.__name__}: the answer log was edited or corrupted; fix or "
                               "delete that line")
    mode = r["mode"]
    ok = (mode in MODES and r["answer"] in ANSWERS[mode]
          and len(r["sources"]) == (2 if mode == "pairwise" else 1)
          and all(isinstance(x, str) for x in r["sources"] + r["items"])
          and (mode == "pairwise" or r.get("truth") in ("real", "fake"))
          and (mode != "rapid" or isinstance(r.get("exposure_ms"), int))
          and isinstance(r.get("response_ms"), (int, float))
          and not isinstance(r.get("response_ms"), bool))
    if not ok:
        raise FacelibError(f"{path}, record {n}: not a valid {mode!r:.20} answer (mode, answer, "
                           "sources, truth, exposure_ms or response_ms): the answer log was "
                           "edited or corrupted; fix or delete that line")


def log_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand study folders (their sessions/*.jsonl) and folders of logs to a list of files."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted((p / "sessions").glob("*.jsonl")) + sorted(p.glob("*.jsonl"))
            if not found:
                raise FacelibError(f"{p} holds no *.jsonl answer logs (nor sessions/*.jsonl)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FacelibError(f"{p} not found: pass answer logs (*.jsonl) or study folders")
    return files


def load_answers(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """All answers of several judges' logs (files or study folders) as one list of records.

    If a judge answered the same trial twice in one mode (two tabs on one log), the first
    answer counts; each record gets ``"log"``, the file it came from, for audits.
    """
    seen: set[tuple] = set()
    out = []
    for f in log_files(paths if not isinstance(paths, (str, Path)) else [paths]):
        for n, r in enumerate(read_jsonl(f), 1):
            _check_record(r, f, n)
            key = (r["study"], r["judge"], r["mode"], r["key"])
            if key in seen:
                continue
            seen.add(key)
            out.append({**r, "log": str(f)})
    return out


def answers_table(records: list[dict[str, Any]]):
    """The answers as a pandas DataFrame (one row per answer) for browsing in a notebook."""
    return pd.DataFrame.from_records(records)


def _utc_iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="milliseconds")


class JudgeSession:
    """The judge's state machine: ``ready -> showing (-> masked) -> ready ... -> done``.

    ``show()`` puts the next trial on screen and notes the onset; in the rapid mode the view
    calls ``hide(token)`` after ``exposure_s`` (the token ignores a timer that fires after the
    judge already moved on); ``answer(choice)`` logs the answer with its response time from the
    onset and moves on. ``clock`` (monotonic seconds) and ``now`` (wall-clock seconds, for the
    timestamp) are injectable for tests.

    A judge answers each face once per mode (as in HYPE, a face seen before is no longer a
    fresh judgement): to try another exposure, use another study or judge id.
    """

    def __init__(self, study: Study | str | Path, judge: str, mode: str = "untimed", *,
                 exposure_ms: int = 250, clock: Callable[[], float] = time.perf_counter,
                 now: Callable[[], float] = time.time, session_id: str | None = None,
                 log_path: str | Path | None = None):
        self.study = study if isinstance(study, Study) else Study.open(study)
        self.judge = check_judge(judge)
        self.mode = check_mode(mode)
        if mode == "rapid" and not (isinstance(exposure_ms, int) and 10 <= exposure_ms <= 10000):
            raise FacelibError(f"exposure_ms={exposure_ms!r}: give an integer from 10 to 10000 "
                               "(HYPE and rapid categorization use 100-500 ms)")
        self.exposure_ms = int(exposure_ms) if mode == "rapid" else None
        self.clock, self.now = clock, now
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.log = AnswerLog(log_path or self.study.session_path(judge, mode))
        done = {r.get("key") for r in self.log.read()
                if r.get("judge") == judge and r.get("mode") == mode
                and r.get("study") == self.study.name and isinstance(r.get("key"), str)}
        all_trials = self.study.trials(judge, mode)
        self.total = len(all_trials)
        self.answered = sum(t.key in done for t in all_trials)
        self._queue = [t for t in all_trials if t.key not in done]
        self.state = "ready" if self._queue else "done"
        self.token = 0  # counts presentations; a stale hide timer carries an old token
        self._onset = self._hidden_at = None
        self._lock = threading.Lock()

    @property
    def exposure_s(self) -> float | None:
        return None if self.exposure_ms is None else self.exposure_ms / 1000.0

    @property
    def current(self) -> Trial | None:
        return self._queue[0] if self._queue else None

    @property
    def choices(self) -> tuple[str, str]:
        return ANSWERS[self.mode]

    def show(self) -> Trial:
        """Put the next trial on screen now; returns it (its ids say which images to draw)."""
        with self._lock:
            if self.state == "done":
                raise FacelibError("the session is finished: every trial has an answer")
            if self.state != "ready":
                raise FacelibError(f"a trial is already on screen ({self.state}): answer it first")
            self.token += 1
            self.state = "showing"
            self._onset, self._hidden_at = self.clock(), None
            return self._queue[0]

    def hide(self, token: int | None = None) -> bool:
        """Mask the face (rapid mode); False when there is nothing to hide or the token is stale."""
        with self._lock:
            if self.mode != "rapid" or self.state != "showing":
                return False
            if token is not None and token != self.token:
                return False
            self.state = "masked"
            self._hidden_at = self.clock()
            return True

    def answer(self, choice: str) -> dict[str, Any]:
        """Log the answer to the trial on screen (durably), advance, and return the record."""
        with self._lock:
            if choice not in self.choices:
                raise FacelibError(f"answer {choice!r} is not valid in the {self.mode} mode: "
                                   f"answer one of {self.choices}")
            if self.state not in ("showing", "masked"):
                raise FacelibError("no face is on screen: call show() before answer()")
            t = self.clock()
            trial = self._queue[0]
            shown_until = self._hidden_at if self._hidden_at is not None else t
            record = dict(
                study=self.study.name, session=self.session_id, judge=self.judge,
                mode=self.mode, trial=self.answered, key=trial.key, items=list(trial.items),
                sources=list(trial.sources), truth=trial.truth, answer=choice,
                exposure_ms=self.exposure_ms,
                shown_ms=round((shown_until - self._onset) * 1000.0, 3),
                response_ms=round((t - self._onset) * 1000.0, 3),
                timestamp=_utc_iso(self.now()),
            )
            if self.mode == "pairwise":
                record["chosen"] = trial.items[0 if choice == "left" else 1]
            else:
                record["correct"] = choice == trial.truth
            self.log.append(record)  # durable before the state moves on
            self._queue.pop(0)
            self.answered += 1
            self.state = "ready" if self._queue else "done"
            return record


class SimulatedClock:
    """A clock that only moves when told: simulated judges and tests run in no real time."""

    def __init__(self, t: float = 0.0):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += float(seconds)


POLICIES = ("always-real", "random", "perfect")


def simulate_judge(study: Study | str | Path, judge: str, mode: str = "untimed",
                   policy: str | float | Callable = "random", *, seed: int = 0,
                   exposure_ms: int = 250, limit: int | None = None,
                   log_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Let a simulated judge answer (e.g. where no human is around, such as CI).

    ``policy``: "always-real", "random", "perfect", a float (the chance of a correct answer;
    in the pairwise mode, of picking the left face), or ``f(trial, rng) -> choice``. Response
    times are drawn from a log-normal around 0.8 s on a simulated clock. It goes through the
    same ``JudgeSession`` and log as a human, so it also resumes; returns the new records.
    """
    rng = np.random.default_rng([seed, zlib.crc32(judge.encode())])
    clock = SimulatedClock()
    session = JudgeSession(study, judge, mode, exposure_ms=exposure_ms, clock=clock,
                           log_path=log_path)
    if not (callable(policy) or policy in POLICIES or isinstance(policy, float)):
        raise FacelibError(f"policy {policy!r}: use one of {POLICIES}, a float in [0, 1], "
                           "or a function (trial, rng) -> answer")
    records = []
    while session.state != "done" and (limit is None or len(records) < limit):
        trial = session.show()
        rt = float(rng.lognormal(np.log(0.8), 0.4))
        if session.mode == "rapid" and rt > session.exposure_s:
            clock.advance(session.exposure_s)
            session.hide()
            clock.advance(rt - session.exposure_s)
        else:
            clock.advance(rt)
        if callable(policy):
            choice = policy(trial, rng)
        elif mode == "pairwise":
            p_left = 0.5 if not isinstance(policy, float) else policy
            choice = "left" if rng.random() < p_left else "right"
        elif policy == "always-real":
            choice = "real"
        elif policy == "perfect":
            choice = trial.truth
        else:
            p_correct = 0.5 if policy == "random" else float(policy)
            wrong = "fake" if trial.truth == "real" else "real"
            choice = trial.truth if rng.random() < p_correct else wrong
        records.append(session.answer(choice))
    return records


__all__ = ["ANSWERS", "MODES", "POLICIES", "AnswerLog", "JudgeSession", "SimulatedClock",
           "answers_table", "load_answers", "log_files", "read_jsonl", "simulate_judge"]
