"""ipywidgets views over a ``JudgeSession``: the real-or-fake test (untimed, rapid) and the
pairwise preference test.

The view only draws and forwards clicks; the session decides what is on screen and logs
answers. Every face, real or fake, goes through the same path (its PNG at native resolution,
upscaled to ``display_size`` with one interpolation and re-encoded as PNG), so size, framing or
resampling give nothing away; the image widget is given exactly that pixel size so the browser
does not rescale it again. In the rapid mode the face is replaced by a noise mask after the
exposure (backward masking, as in rapid scene categorization and HYPE). By default the browser
times it (``timing="browser"``, facelib.human.exposure, needs anywidget): the face is shown for
a whole number of display frames closest to the exposure, the mask follows, the answer buttons
come on once the face is masked, and each answer's record holds the exposure measured on screen
(``screen_ms``, ``screen_frames``). ``timing="kernel"`` (and any view given a ``scheduler``)
hides the face from the kernel instead: its time on screen then also holds the jitter between two
front-end updates, tens of ms on a busy machine and more on a remote kernel such as Colab's.

Compatible with ipywidgets 7.7 and 8: only Image (PNG bytes, width/height as strings), Button,
HTML, Label, Text, Dropdown, IntSlider, HBox/VBox, ``observe(names="value")`` and
``on_click`` are used, all present with these signatures in both (checked against 7.7.1's
widget_button.py, widget_media.py, widget_string.py, widget_selection.py, widget_int.py).
The browser-timed face is an anywidget (ipywidgets 7 and 8, Colab included); tests/browser/
drives all of this in Chromium.
"""

from __future__ import annotations

import asyncio
import html
import threading
from typing import Any, Callable

import numpy as np
import ipywidgets as widgets

from facelib.errors import FacelibError
from facelib.human.session import AnswerLog, JudgeSession
from facelib.human.study import MODES, Study

INTERPOLATIONS = ("nearest", "linear", "cubic", "area", "lanczos")
TIMINGS = ("auto", "browser", "kernel")
# Browser timing: if no measurement came back this long after the exposure (the widget's script
# did not load, the tab is hidden), the kernel masks the face and lets the judge answer.
BROWSER_REPORT_TIMEOUT_S = 5.0


def click(button: "widgets.Button") -> None:
    """Press a button from code: ``click()`` exists from ipywidgets 7.6 on (7.7 and 8 included);
    older 7.x only have the ``_click_handlers`` dispatcher that ``click()`` calls."""
    if hasattr(button, "click"):
        button.click()
    else:  # pragma: no cover - ipywidgets < 7.7
        button._click_handlers(button)


def upscale(image: np.ndarray, size: int, interpolation: str = "nearest") -> np.ndarray:
    """Resize a uint8 HWC face to size x size, the same way for every face."""
    import cv2

    if interpolation not in INTERPOLATIONS:
        raise FacelibError(f"interpolation {interpolation!r}: choose one of {INTERPOLATIONS}")
    flag = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}[interpolation]
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=flag)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 RGB HWC image as PNG bytes (lossless, for widgets.Image)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise FacelibError("could not encode an image as PNG")
    return buf.tobytes()


def mask_image(size: int, seed: int = 0, block: int = 8) -> np.ndarray:
    """A colour block-noise mask: it overwrites the face's afterimage in the rapid mode."""
    rng = np.random.default_rng(seed)
    n = max(1, size // block)
    small = rng.integers(0, 256, size=(n, n, 3), dtype=np.uint8)
    return upscale(small, size, "nearest")


def fixation_image(size: int) -> np.ndarray:
    """A mid-grey field with a small central cross: where to look before a rapid trial."""
    img = np.full((size, size, 3), 128, np.uint8)
    c, arm, w = size // 2, max(3, size // 24), max(1, size // 128)
    img[c - arm:c + arm + 1, c - w:c + w + 1] = 0
    img[c - w:c + w + 1, c - arm:c + arm + 1] = 0
    return img


def default_scheduler(delay_s: float, callback: Callable[[], None]):
    """Run ``callback`` after ``delay_s``: on the kernel's event loop when called from a widget
    callback (ipykernel runs on asyncio), else on a daemon timer thread. Returns a handle with
    ``cancel()``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        timer = threading.Timer(delay_s, callback)
        timer.daemon = True
        timer.start()
        return timer
    return loop.call_later(delay_s, callback)


class _MeasuredLog(AnswerLog):
    """A session's answer log that adds the browser's measurement of the exposure (set in
    ``extra`` before ``JudgeSession.answer``) to the record it writes, so one line holds both."""

    def __init__(self, path):
        super().__init__(path)
        self.extra: dict[str, Any] = {}

    def append(self, record: dict[str, Any]) -> None:
        record.update(self.extra)  # in place: the record answer() returns has them too
        self.extra = {}
        super().append(record)


def _exposure_screen():
    """The browser-timed face widget class, or None where anywidget is not installed."""
    try:
        from facelib.human.exposure import ExposureScreen
    except ImportError:
        return None
    return ExposureScreen


class JudgeView:
    """The widget for one ``JudgeSession``; ``view.widget`` is what to display.

    Untimed: the next face appears as soon as the judge answers. Rapid: the judge presses
    "Show face", the face is shown for the exposure and then masked. Timed by the browser
    (``timing="browser"``, the default where anywidget is installed) the answer buttons come on
    once the face is masked, and the record gets ``screen_ms``/``screen_frames``/``timing``;
    timed by the kernel (``timing="kernel"``, or a ``scheduler`` given) answers are accepted
    while it is shown or masked. Pairwise: two faces side by side, "left/right looks more real".
    ``scheduler(delay_s, callback)`` hides the kernel-timed face (and is the browser timing's
    watchdog); tests pass a fake one.
    """

    def __init__(self, session: JudgeSession, display_size: int = 256,
                 interpolation: str = "nearest",
                 scheduler: Callable[[float, Callable[[], None]], Any] | None = None,
                 timing: str = "auto"):
        if not 32 <= int(display_size) <= 1024:
            raise FacelibError(f"display_size={display_size}: choose 32 to 1024 pixels")
        upscale(np.zeros((2, 2, 3), np.uint8), 2, interpolation)  # validates the name early
        if timing not in TIMINGS:
            raise FacelibError(f"timing={timing!r}: choose one of {TIMINGS}")
        self.session = session
        self.size, self.interpolation = int(display_size), interpolation
        screen_cls = _exposure_screen() if session.mode == "rapid" and timing != "kernel" else None
        if timing == "browser" and screen_cls is None and session.mode == "rapid":
            raise FacelibError("timing='browser' needs anywidget: pip install anywidget (or "
                               "use timing='kernel')")
        if session.mode != "rapid":
            self.timing = None
        elif timing == "browser" or (timing == "auto" and scheduler is None and screen_cls):
            self.timing = "browser"
        else:
            self.timing = "kernel"
        self.scheduler = scheduler or default_scheduler
        self._pending = None
        n_images = 2 if session.mode == "pairwise" else 1
        s = str(self.size)
        self._blank = png_bytes(fixation_image(self.size))
        self._mask = png_bytes(mask_image(self.size, seed=session.study.seed))
        self.screen = None  # the browser-timed face (rapid mode, timing="browser")
        if self.timing == "browser":
            if type(session.log) is AnswerLog:
                session.log = _MeasuredLog(session.log.path)
            self.screen = screen_cls(self.size, self._blank, self._mask, self._on_screen_report)
            self.images = []
        else:
            self.images = [widgets.Image(value=self._blank, format="png", width=s, height=s)
                           for _ in range(n_images)]
        labels = {"real": "Real", "fake": "Fake", "left": "Left looks more real",
                  "right": "Right looks more real"}
        self.buttons = {}
        for choice in session.choices:
            b = widgets.Button(description=labels[choice], disabled=True,
                               button_style="info", tooltip=f"answer: {choice}")
            b.on_click(lambda _b, c=choice: self._on_answer(c))
            self.buttons[choice] = b
        self.next_button = widgets.Button(description="Show face", button_style="primary",
                                          disabled=session.state == "done")
        self.next_button.on_click(lambda _b: self._show_next())
        self.status = widgets.Label(value="")
        question = ("Which face looks more like a real photograph?" if n_images == 2
                    else "Is this face a real photograph or generated?")
        if session.mode == "rapid":
            question += f" Each face is shown for {session.exposure_ms} ms, then masked."
        self.info = widgets.HTML(value=f"<b>{html.escape(question)}</b>")
        controls = [self.next_button] if session.mode == "rapid" else []
        self.widget = widgets.VBox([self.info, widgets.HBox(self.images or [self.screen]),
                                    widgets.HBox(list(self.buttons.values()) + controls),
                                    self.status])
        self._update_status()
        if session.mode != "rapid" and session.state == "ready":
            self._show_next()

    # -- actions ------------------------------------------------------------------------------
    def _face_png(self, item_id: str) -> bytes:
        return png_bytes(upscale(self.session.study.image(item_id), self.size,
                                 self.interpolation))

    def _show_next(self) -> None:
        if self.session.state != "ready":
            return
        pngs = [self._face_png(i) for i in self.session.current.items]  # encode before onset
        if self.screen is not None:  # browser timing: the answers wait for the mask
            self.session.show()
            token = self.session.token
            self._set_buttons(answer=False, next_=False)
            self.screen.show(pngs[0], token, self.session.exposure_ms)
            self._pending = self.scheduler(self.session.exposure_s + BROWSER_REPORT_TIMEOUT_S,
                                           lambda: self._no_screen_report(token))
            return
        for img, png in zip(self.images, pngs):
            img.value = png
        self.session.show()
        self._set_buttons(answer=True, next_=False)
        if self.session.mode == "rapid":
            token = self.session.token
            self._pending = self.scheduler(self.session.exposure_s, lambda: self._hide(token))

    def _hide(self, token: int) -> None:
        if self.session.hide(token):
            for img in self.images:
                img.value = self._mask

    def _on_screen_report(self, report: dict) -> None:
        """The browser masked the face: note what it measured, let the judge answer."""
        token, screen_ms = report.get("token"), report.get("screen_ms")
        if not isinstance(token, int) or not isinstance(screen_ms, (int, float)):
            return
        if self.session.hide(token):  # the first report of this trial (one per view shown)
            self.session.log.extra = {"timing": "browser", "screen_ms": round(screen_ms, 3),
                                      "screen_frames": report.get("frames")}
            self._cancel_pending()
            self._set_buttons(answer=True, next_=False)

    def _no_screen_report(self, token: int) -> None:
        """No measurement came back in time: mask from the kernel, let the judge answer."""
        if self.session.hide(token):
            self.session.log.extra = {"timing": "kernel", "screen_ms": None,
                                      "screen_frames": None}
            self.screen.mask()
            self._set_buttons(answer=True, next_=False)
            self.status.value = ("the browser did not report the exposure (is the tab in the "
                                 "background?); masked by the kernel")

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _on_answer(self, choice: str) -> None:
        try:
            self.session.answer(choice)
        except FacelibError as e:
            self.status.value = f"error: {e}"
            return
        self._cancel_pending()
        self._update_status()
        if self.screen is not None:
            self.screen.blank()
        if self.session.state == "done":
            for img in self.images:
                img.value = self._blank
            self._set_buttons(answer=False, next_=False)
        elif self.session.mode == "rapid":
            for img in self.images:
                img.value = self._blank
            self._set_buttons(answer=False, next_=True)
        else:
            self._show_next()

    def _set_buttons(self, answer: bool, next_: bool) -> None:
        for b in self.buttons.values():
            b.disabled = not answer
        self.next_button.disabled = not next_

    def _update_status(self) -> None:
        s = self.session
        if s.state == "done":
            self.status.value = (f"Done: {s.answered} of {s.total} answered, saved in "
                                 f"{s.log.path}. Thank you!")
        else:
            self.status.value = (f"{s.answered} of {s.total} answered (saved as you go; you "
                                 "can close the tab and resume later)")


def judge(study: Study | str, judge_id: str, mode: str = "untimed", exposure_ms: int = 250,
          display_size: int = 256, **kwargs: Any) -> JudgeView:
    """Start (or resume) ``judge_id``'s session in ``mode`` and return its view."""
    session = JudgeSession(study, judge_id, mode, exposure_ms=exposure_ms)
    return JudgeView(session, display_size=display_size, **kwargs)


class Launcher:
    """A form (judge id, mode, exposure) that starts a judge's view below itself."""

    def __init__(self, study: Study | str, display_size: int = 256, **view_kwargs: Any):
        self.study = study if isinstance(study, Study) else Study.open(study)
        self.display_size, self.view_kwargs = display_size, view_kwargs
        modes = [m for m in MODES if m != "pairwise" or self.study.pairs]
        self.judge_id = widgets.Text(value="", description="Judge id")
        self.mode = widgets.Dropdown(options=modes, value=modes[0], description="Mode")
        self.exposure = widgets.IntSlider(value=250, min=50, max=2000, step=50,
                                          description="Exposure ms")
        self.exposure.disabled = True
        self.mode.observe(self._on_mode, names="value")
        self.start = widgets.Button(description="Start", button_style="success")
        self.start.on_click(lambda _b: self._start())
        self.message = widgets.Label(value="")
        self.view: JudgeView | None = None
        self.widget = widgets.VBox([widgets.HBox([self.judge_id, self.mode, self.exposure,
                                                  self.start]), self.message])

    def _on_mode(self, change: dict) -> None:
        self.exposure.disabled = change["new"] != "rapid"

    def _start(self) -> None:
        try:
            self.view = judge(self.study, self.judge_id.value.strip(), self.mode.value,
                              exposure_ms=int(self.exposure.value),
                              display_size=self.display_size, **self.view_kwargs)
        except FacelibError as e:
            self.message.value = f"error: {e}"
            return
        self.message.value = ""
        self.widget.children = (self.widget.children[0], self.message, self.view.widget)
