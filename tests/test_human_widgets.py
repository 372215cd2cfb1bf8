"""facelib.human.widgets, headless: clicking the buttons records answers and changes the image;
the rapid mode masks the face when its (fake) timer fires."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from facelib.errors import FacelibError
from helpers import FakeScheduler, TinyRun
from facelib.human.session import JudgeSession, SimulatedClock, read_jsonl
from facelib.human.study import build_study
from facelib.human.widgets import (JudgeView, Launcher, click, default_scheduler, mask_image,
                                   png_bytes, upscale)
from facelib.images import read_image



@pytest.fixture()
def study(tmp_path, cache32):
    return build_study(tmp_path / "study", TinyRun(), cache32, n_fake=3, n_pairs=2)


def decode(png: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_untimed_view_records_clicks_and_advances(study):
    clock = SimulatedClock()
    session = JudgeSession(study, "ann", "untimed", clock=clock)
    view = JudgeView(session, display_size=96)
    assert session.state == "showing"  # untimed: the first face is up at once
    first = session.current
    shown = view.images[0].value
    # what is on screen is the exported PNG upscaled by nearest neighbour, pixel for pixel
    face = read_image(study.folder / study.item(first.key).png)
    np.testing.assert_array_equal(decode(shown), np.repeat(np.repeat(face, 3, 0), 3, 1))
    assert view.images[0].width == "96" and view.images[0].height == "96"
    clock.advance(0.8)
    click(view.buttons["fake"])
    recs = read_jsonl(session.log.path)
    assert len(recs) == 1 and recs[0]["answer"] == "fake" and recs[0]["key"] == first.key
    assert recs[0]["response_ms"] == pytest.approx(800.0)
    assert view.images[0].value != shown and session.current.key != first.key
    assert "1 of 6 answered" in view.status.value
    while session.state != "done":
        click(view.buttons["real"])
    assert len(read_jsonl(session.log.path)) == 6
    assert all(b.disabled for b in view.buttons.values()) and "Done" in view.status.value


def test_rapid_view_masks_after_the_exposure(study):
    clock, scheduler = SimulatedClock(), FakeScheduler()
    session = JudgeSession(study, "ann", "rapid", exposure_ms=250, clock=clock)
    view = JudgeView(session, display_size=64, scheduler=scheduler)
    assert session.state == "ready" and view.buttons["real"].disabled  # waits for "Show face"
    fixation = view.images[0].value
    click(view.next_button)
    assert session.state == "showing" and view.images[0].value != fixation
    assert not view.buttons["real"].disabled and view.next_button.disabled
    (timer,) = scheduler.calls
    assert timer.delay_s == 0.25
    clock.advance(0.25)
    timer.fire()
    assert session.state == "masked"
    assert view.images[0].value == png_bytes(mask_image(64, seed=study.seed))
    clock.advance(0.4)
    click(view.buttons["real"])
    rec = read_jsonl(session.log.path)[-1]
    assert rec["shown_ms"] == pytest.approx(250.0) and rec["response_ms"] == pytest.approx(650.0)
    assert view.images[0].value == fixation and not view.next_button.disabled

    # answered before the mask: the timer is cancelled, and if it fires anyway on the next
    # face it must not hide that one
    click(view.next_button)
    clock.advance(0.1)
    click(view.buttons["fake"])
    assert scheduler.calls[1].cancelled
    click(view.next_button)
    on_screen = view.images[0].value
    scheduler.calls[1].fire()
    assert session.state == "showing" and view.images[0].value == on_screen
    scheduler.calls[2].fire()
    assert session.state == "masked"


def test_pairwise_view_shows_two_faces(study):
    session = JudgeSession(study, "ann", "pairwise", clock=SimulatedClock())
    view = JudgeView(session, display_size=64)
    assert len(view.images) == 2 and set(view.buttons) == {"left", "right"}
    trial = session.current
    before = [im.value for im in view.images]
    click(view.buttons["left"])
    assert read_jsonl(session.log.path)[0]["chosen"] == trial.items[0]
    assert [im.value for im in view.images] != before


def test_resumed_view_starts_after_the_answered_faces(study):
    session = JudgeSession(study, "ann", "untimed")
    view = JudgeView(session, display_size=64)
    click(view.buttons["real"])
    click(view.buttons["real"])
    again = JudgeSession(study, "ann", "untimed")
    view2 = JudgeView(again, display_size=64)
    assert again.answered == 2 and "2 of 6 answered" in view2.status.value
    assert again.current.key == study.trials("ann", "untimed")[2].key


def test_launcher_starts_a_view_and_reports_bad_input(study):
    launcher = Launcher(study, display_size=64, scheduler=FakeScheduler())
    assert launcher.exposure.disabled
    launcher.mode.value = "rapid"
    assert not launcher.exposure.disabled
    launcher.judge_id.value = "bad id!"
    click(launcher.start)
    assert "judge id" in launcher.message.value and launcher.view is None
    launcher.judge_id.value = "ann"
    launcher.exposure.value = 500
    click(launcher.start)
    assert launcher.view is not None and launcher.view.widget in launcher.widget.children
    assert launcher.view.session.exposure_ms == 500 and launcher.view.session.mode == "rapid"


def test_display_helpers():
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = upscale(img, 4)
    np.testing.assert_array_equal(big[:2, :2], np.broadcast_to(img[0, 0], (2, 2, 3)))
    np.testing.assert_array_equal(decode(png_bytes(big)), big)
    with pytest.raises(FacelibError, match="interpolation"):
        upscale(img, 4, "bicubic-ish")
    with pytest.raises(FacelibError, match="display_size"):
        JudgeView(None, display_size=8)


def test_default_scheduler_without_an_event_loop_uses_a_timer_thread():
    fired = threading.Event()
    handle = default_scheduler(0.01, fired.set)
    assert isinstance(handle, threading.Timer)
    assert fired.wait(5)
    cancelled = threading.Event()
    default_scheduler(0.2, cancelled.set).cancel()
    assert not cancelled.wait(0.4)


def test_default_scheduler_inside_the_kernel_loop_uses_call_later():
    """Widget callbacks run on ipykernel's asyncio loop: the hide is scheduled on that loop."""
    import asyncio

    async def main():
        fired = asyncio.Event()
        handle = default_scheduler(0.01, fired.set)
        assert isinstance(handle, asyncio.TimerHandle)
        await asyncio.wait_for(fired.wait(), 5)

    asyncio.run(main())
