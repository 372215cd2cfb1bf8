"""The browser-timed rapid mode without a browser: what the kernel sends the widget, and what it
does with the browser's reports (and with their absence). Fast; the browser tests beside this
file run the same view in Chromium."""

from __future__ import annotations

import pytest

from facelib.errors import FacelibError
from facelib.human.session import JudgeSession, SimulatedClock, read_jsonl
from facelib.human.study import build_study
from facelib.human.widgets import JudgeView, click, judge
from helpers import FakeScheduler, TinyRun

pytest.importorskip("anywidget")


@pytest.fixture()
def study(tmp_path, cache32):
    return build_study(tmp_path / "study", TinyRun(), cache32, n_fake=3)


def _view(study, scheduler=None, **kwargs):
    session = JudgeSession(study, "ann", "rapid", exposure_ms=250, clock=SimulatedClock())
    view = JudgeView(session, display_size=64, scheduler=scheduler, timing="browser", **kwargs)
    sent = []
    view.screen.send = lambda content, buffers=None: sent.append((content, buffers))
    return view, sent


def _report(view, **fields):
    """What the widget's script sends when the mask went up."""
    view.screen._handle(view.screen, {"type": "shown", **fields}, [])


def test_browser_timing_is_the_default_where_anywidget_is_installed(study):
    from facelib.human.exposure import ExposureScreen

    view = judge(study, "bob", "rapid")
    assert view.timing == "browser" and isinstance(view.screen, ExposureScreen)
    assert view.images == [] and view.screen in view.widget.children[1].children
    kernel = judge(study, "cy", "rapid", timing="kernel")
    assert kernel.timing == "kernel" and kernel.screen is None and len(kernel.images) == 1
    assert judge(study, "dee", "untimed").timing is None
    with pytest.raises(FacelibError, match="timing"):
        judge(study, "eve", "rapid", timing="client")


def test_the_browser_shows_masks_and_reports_each_exposure(study):
    scheduler = FakeScheduler()
    view, sent = _view(study, scheduler)
    click(view.next_button)
    (content, buffers), = sent
    assert content == {"type": "show", "token": 1, "exposure_ms": 250}
    assert buffers[0].startswith(b"\x89PNG")
    # the answers wait for the mask
    assert view.buttons["real"].disabled and view.next_button.disabled
    watchdog = scheduler.calls[0]
    assert watchdog.delay_s == pytest.approx(0.25 + 5.0)
    _report(view, token=0, screen_ms=250.0, frames=15)  # a stale trial's report: ignored
    assert view.buttons["real"].disabled
    _report(view, token=1, screen_ms=249.96, frames=15)
    assert not view.buttons["real"].disabled and watchdog.cancelled
    _report(view, token=1, screen_ms=300.0, frames=18)  # a second view of the same widget
    click(view.buttons["fake"])
    assert sent[-1][0] == {"type": "blank"} and not view.next_button.disabled
    rec = read_jsonl(view.session.log.path)[-1]
    assert rec["timing"] == "browser" and rec["screen_ms"] == 249.96 and rec["screen_frames"] == 15
    assert rec["answer"] == "fake" and rec["exposure_ms"] == 250


def test_no_report_masks_from_the_kernel(study):
    scheduler = FakeScheduler()
    view, sent = _view(study, scheduler)
    click(view.next_button)
    scheduler.calls[0].fire()  # nothing came back from the browser
    assert sent[-1][0] == {"type": "mask"} and not view.buttons["real"].disabled
    assert "did not report" in view.status.value
    _report(view, token=1, screen_ms=250.0, frames=15)  # too late: the kernel already masked
    click(view.buttons["real"])
    rec = read_jsonl(view.session.log.path)[-1]
    assert rec["timing"] == "kernel" and rec["screen_ms"] is None
