"""The rapid mode's face, timed in the browser: a small custom widget (anywidget) that shows a
face for exactly the exposure and measures what it showed.

Timed from the kernel, a face's time on screen is the exposure plus the difference between two
trips kernel -> server -> browser -> screen (the face's, then the mask's), and each trip waits
for whatever else the kernel and the browser are doing: measured in Chromium on two busy cores,
250 ms exposures were on screen 150-250 ms (median 217 ms, a third within 250 +/- 30 ms) while
the kernel logged 251 ms (README, "Widgets in a browser"). Here the kernel only sends the
face: the browser decodes it first (``createImageBitmap``), draws it on a canvas in one
animation frame, draws the mask in the frame closest to the onset + exposure, and sends back
what it measured: the time between those two frames (``screen_ms``, from the frames' own
timestamps) and how many frames that was. So the exposure is a whole number of display frames
(15 at 60 Hz for 250 ms), whatever the kernel or the network does.

Works where anywidget does: JupyterLab/Notebook 7 (ipywidgets 8), the classic notebook
(ipywidgets 7) and Colab. A browser tab in the background pauses animation frames: the face then
stays until the tab is shown again, and the measured time says so.
"""

from __future__ import annotations

from typing import Any, Callable

import anywidget
import traitlets

_ESM = r"""
const bitmap = (buf) => createImageBitmap(new Blob([buf], { type: "image/png" }));

export default {
  render({ model, el }) {
    const size = model.get("size");
    const canvas = document.createElement("canvas");
    canvas.width = size;
    canvas.height = size;
    canvas.style.width = size + "px";
    canvas.style.height = size + "px";
    canvas.className = "facelib-exposure";
    el.appendChild(canvas);
    const ctx = canvas.getContext("2d");
    let blank = null, mask = null, raf = 0, seq = 0, alive = true;
    const draw = (img, what) => {
      ctx.drawImage(img, 0, 0, size, size);
      canvas.dataset.shown = what;  // what is on screen: "blank", "face" or "mask"
    };
    const fixed = Promise.all([bitmap(model.get("blank_png")), bitmap(model.get("mask_png"))]).then(
      ([b, m]) => { blank = b; mask = m; if (!canvas.dataset.shown) draw(blank, "blank"); });
    const stop = () => { if (raf) cancelAnimationFrame(raf); raf = 0; };

    const show = async (msg, buffer, mine) => {
      const face = await bitmap(buffer);  // decoded before the onset, not during it
      await fixed;
      if (!alive || mine !== seq) return;  // the kernel moved on meanwhile
      stop();
      const exposure = msg.exposure_ms;
      let onset = null, last = 0, frame = 1000 / 60, frames = 0;
      const step = (ts) => {
        if (!alive || mine !== seq) return;
        if (onset === null) {  // this frame shows the face
          draw(face, "face");
          onset = last = ts;
          raf = requestAnimationFrame(step);
          return;
        }
        frame = Math.min(frame, ts - last);
        last = ts;
        frames += 1;
        // the mask goes up in the frame closest to onset + exposure
        if (ts - onset >= exposure - frame / 2) {
          draw(mask, "mask");
          raf = 0;
          model.send({ type: "shown", token: msg.token, screen_ms: ts - onset, frames,
                       frame_ms: frame });
        } else {
          raf = requestAnimationFrame(step);
        }
      };
      raf = requestAnimationFrame(step);
    };

    const onMessage = (msg, buffers) => {
      seq += 1;
      const mine = seq;
      if (msg.type === "show") {
        show(msg, buffers[0], mine);
      } else {
        stop();
        fixed.then(() => {
          if (alive && mine === seq) draw(msg.type === "mask" ? mask : blank, msg.type);
        });
      }
    };
    model.on("msg:custom", onMessage);
    return () => { alive = false; stop(); model.off("msg:custom", onMessage); };
  },
};
"""

_CSS = """
.facelib-exposure { display: block; image-rendering: pixelated; }
"""


class ExposureScreen(anywidget.AnyWidget):
    """One face-sized canvas: ``show(png, token, exposure_ms)`` shows the face for the exposure
    then the mask, ``blank()`` the fixation image, ``mask()`` the mask at once. Each exposure's
    measurement comes back as ``on_report({"token", "screen_ms", "frames", "frame_ms"})``."""

    _esm = _ESM
    _css = _CSS
    size = traitlets.Int(256).tag(sync=True)
    blank_png = traitlets.Bytes(b"").tag(sync=True)
    mask_png = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, size: int, blank: bytes, mask: bytes,
                 on_report: Callable[[dict[str, Any]], None]):
        super().__init__(size=int(size), blank_png=blank, mask_png=mask)
        self._on_report = on_report
        self.on_msg(self._handle)

    def show(self, png: bytes, token: int, exposure_ms: int) -> None:
        self.send({"type": "show", "token": int(token), "exposure_ms": int(exposure_ms)}, [png])

    def blank(self) -> None:
        self.send({"type": "blank"})

    def mask(self) -> None:
        self.send({"type": "mask"})

    def _handle(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "shown":
            self._on_report(content)
