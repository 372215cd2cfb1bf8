"""Helpers for the browser tests: which Jupyter front end to drive, a notebook page that runs
cells as a person does (click into the cell, Shift+Enter), pixel comparisons of screenshots and
the on-screen exposure instrument. Imported by conftest.py and the tests (tests/browser is on
sys.path like tests/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "assets" / "figures"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REPORTS: list[str] = []  # lines printed in the terminal summary (conftest.pytest_terminal_summary)


@dataclass(frozen=True)
class FrontEnd:
    """One Jupyter front end: how to start its server and where things are on its page."""

    name: str  # what to report
    module: str  # python -m MODULE starts the server
    install: str  # what to pip install when it is missing
    url: str  # the notebook page, relative to the server
    server_args: tuple[str, ...]
    cell: str  # one notebook cell
    editor: str  # the cell's input editor (click to type into the cell)
    prompt: str  # the cell's execution count, "[3]:" / "In [3]:"
    output: str  # the cell's output area
    ready: str  # JS: the kernel is connected, idle and the widget comm target registered


# ipywidgets 8: Notebook 7 (the JupyterLab 4 front end with jupyterlab_widgets 3).
NOTEBOOK7 = FrontEnd(
    name="Notebook 7", module="notebook", install="pip install 'notebook>=7'",
    url="/notebooks/{path}",
    server_args=("--JupyterNotebookApp.expose_app_in_browser=True",),
    cell=".jp-Notebook .jp-Cell.jp-CodeCell", editor=".jp-InputArea-editor .cm-content",
    prompt=".jp-InputPrompt", output=".jp-OutputArea",
    ready="""() => {
      const app = window.jupyterapp, w = app && app.shell.currentWidget;
      const s = w && w.sessionContext && w.sessionContext.session, k = s && s.kernel;
      return !!k && k.connectionStatus === "connected" && k.status === "idle"
        && (!k._targetRegistry || !!k._targetRegistry["jupyter.widget"]);
    }""")

# ipywidgets 7: the classic notebook (nbclassic) with widgetsnbextension 3.x, whose widget
# manager is ipywidgets 7's own JavaScript, as in the notebooks of Colab's ipywidgets 7 days.
NBCLASSIC = FrontEnd(
    name="classic notebook (nbclassic)", module="nbclassic", install="pip install nbclassic",
    url="/nbclassic/notebooks/{path}", server_args=(),
    cell="#notebook-container > .cell.code_cell", editor=".CodeMirror",
    prompt=".input_prompt", output=".output_wrapper .output",
    ready="""() => {
      const k = window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel;
      return !!k && k.is_connected() && !!k.comm_manager.targets["jupyter.widget"]
        && !!document.querySelector("#kernel_indicator_icon.kernel_idle_icon");
    }""")

FRONT_ENDS = {"notebook": NOTEBOOK7, "nbclassic": NBCLASSIC}


def ipywidgets_major() -> int:
    import ipywidgets

    return int(ipywidgets.__version__.split(".")[0])


def pick_front_end() -> FrontEnd:
    """FACELIB_BROWSER_SERVER (notebook or nbclassic), else by the installed ipywidgets: 8 ->
    Notebook 7, 7 -> the classic notebook (widgetsnbextension 3 brings ipywidgets 7's manager)."""
    name = os.environ.get("FACELIB_BROWSER_SERVER") or (
        "notebook" if ipywidgets_major() >= 8 else "nbclassic")
    if name not in FRONT_ENDS:
        raise ValueError(f"FACELIB_BROWSER_SERVER={name!r}: use one of {sorted(FRONT_ENDS)}")
    return FRONT_ENDS[name]


def find_chromium() -> str | None:
    path = os.environ.get("FACELIB_CHROMIUM")
    if path:
        return path if Path(path).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def http_get(url: str, timeout: float = 5.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost only
    with opener.open(url, timeout=timeout) as r:
        return r.read()


def http_delete(url: str, timeout: float = 10.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method="DELETE")
    with opener.open(req, timeout=timeout):
        pass


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, str(path))


# What JupyterLab/Notebook 7 and the classic notebook show instead of a widget they cannot draw.
WIDGET_ERRORS = (r"Click to show javascript error|Error displaying widget|Failed to load model "
                 r"class|Traceback \(most recent call last\)")


class NotebookPage:
    """A notebook open in Chromium; ``run(i, expect)`` runs cell i as a person does."""

    def __init__(self, server, page, path: str):
        self.server, self.page, self.path = server, page, path
        self.fe: FrontEnd = server.front_end
        page.on("dialog", lambda d: d.accept())  # "leave the page?" on reload
        self.open()

    def open(self, reload: bool = False) -> None:
        if reload:
            self.page.reload()
        else:
            self.page.goto(self.server.url(self.fe.url.format(path=self.path)))
        self.page.locator(self.fe.editor).first.wait_for(timeout=90_000)
        self.page.wait_for_function(self.fe.ready, timeout=120_000, polling=250)

    def cell(self, i: int):
        return self.page.locator(self.fe.cell).nth(i)

    def output(self, i: int):
        return self.cell(i).locator(self.fe.output)

    def run(self, i: int, expect: str | None = None, timeout: float = 180.0):
        """Click into cell i, press Shift+Enter, wait until it ran (its prompt shows a new
        execution count) and, if given, until ``expect`` (a selector) shows in its output.
        A traceback in the output fails with its text."""
        cell = self.cell(i)
        prompt = cell.locator(self.fe.prompt).first
        before = prompt.inner_text().strip()
        cell.locator(self.fe.editor).first.click()
        self.page.keyboard.press("Shift+Enter")
        self.page.wait_for_function(
            """([el, before]) => { const t = el.innerText.trim();
                 return /\\[\\d+\\]/.test(t) && t !== before; }""",
            arg=[prompt.element_handle(), before], timeout=timeout * 1000, polling=200)
        out = self.output(i)
        text = out.inner_text() if out.count() else ""
        if "Traceback" in text or "Error" in text[:200]:
            raise AssertionError(f"cell {i} of {self.path} failed:\n{text[-4000:]}")
        if expect:
            # the widget, or a front end's word that it could not draw it (fail at once)
            broken = out.get_by_text(re.compile(WIDGET_ERRORS)).first
            try:
                out.locator(expect).first.or_(broken).wait_for(timeout=timeout * 1000)
            except Exception as e:  # noqa: BLE001 - add what the cell showed
                raise AssertionError(f"cell {i} of {self.path}: no {expect!r} in its output "
                                     f"({e.__class__.__name__}); it shows:\n"
                                     f"{out.inner_text()[-3000:]}") from None
            if not out.locator(expect).count():
                if broken.count() and "javascript error" in broken.inner_text():
                    broken.click()  # ipywidgets' error view shows the message when clicked
                raise AssertionError(f"cell {i} of {self.path}: the {self.fe.name} front end "
                                     f"could not draw the widget:\n{out.inner_text()[-3000:]}")
        return out

    def close(self) -> None:
        """Close the page and shut the notebook's kernel down (frees the cores)."""
        try:
            self.page.close()
        finally:
            self.server.shutdown_kernels(self.path)


# -- pixels -------------------------------------------------------------------------------------

def decode_png(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img[..., ::-1].astype(np.int16)


def shot(locator) -> np.ndarray:
    """What the element shows on screen, as RGB pixels (its box snapped to whole pixels, so a
    256 px image at y = 100.5 gives 256 rows, not 257)."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    clip = {k: float(round(box[k])) for k in ("x", "y", "width", "height")}
    return decode_png(locator.page.screenshot(clip=clip, animations="disabled"))


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def wait_src_change(page, img, old: str, timeout: float = 60.0) -> str:
    """Wait until the <img> shows a new picture (ipywidgets gives each value a new blob URL) and
    it is decoded; returns the new src."""
    page.wait_for_function(
        "([el, old]) => el.src !== old && el.complete && el.naturalWidth > 0",
        arg=[img.element_handle(), old], timeout=timeout * 1000, polling=100)
    return img.get_attribute("src")


RIGHT_EDGE_JS = """el => Math.max(...[...el.querySelectorAll('*')]
  .filter(e => !e.children.length && e.getClientRects().length)
  .map(e => {  // a text's own extent, not its (maybe page-wide) box; else the element's
    if (!e.textContent.trim() || ["BUTTON", "INPUT"].includes(e.tagName))
      return e.getBoundingClientRect().right;
    const r = document.createRange(); r.selectNodeContents(e);
    return r.getBoundingClientRect().right; }))"""


def save_figure(locator, name: str, max_height: int = 800) -> Path | None:
    """Screenshot an element (its top ``max_height`` pixels) into assets/figures/NAME, only with
    FACELIB_UPDATE_FIGURES=1, so that test runs never rewrite tracked files."""
    if os.environ.get("FACELIB_UPDATE_FIGURES") != "1":
        return None
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / name
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    box = locator.bounding_box()
    right = locator.evaluate(RIGHT_EDGE_JS)  # where the drawn content ends: no empty page
    clip = {"x": box["x"], "y": box["y"], "width": min(box["width"], right - box["x"] + 8),
            "height": min(box["height"], max_height)}
    locator.page.screenshot(path=str(path), clip=clip, animations="disabled")
    return path


# -- exposure on screen ---------------------------------------------------------------------------

OBSERVE_JS = """([el, attr]) => {
  // Every change of the face element (img src, or the canvas's data-shown) with the time of the
  // change and of the first animation frame after it is decoded: when it reaches the screen.
  const events = [];
  window.__facelibExposure = events;
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.attributeName !== attr) continue;
      const ev = { t_change: performance.now(), t_frame: null,
                   what: el.dataset ? (el.dataset.shown || null) : null };
      events.push(ev);
      const frame = () => requestAnimationFrame((ts) => { ev.t_frame = ts; });
      if (el.tagName === "IMG") el.decode().then(frame, frame); else frame();
    }
  });
  observer.observe(el, { attributes: true, attributeFilter: [attr] });
  window.__facelibObserver = observer;
}"""


def observe_exposures(page, element, attr: str) -> None:
    page.evaluate(OBSERVE_JS, [element.element_handle(), attr])


def exposure_events(page) -> list[dict]:
    return page.evaluate("() => window.__facelibExposure.map(e => ({...e}))")


def wait_events(page, n: int, timeout: float = 20.0) -> None:
    """Wait until n changes were seen and each reached the screen."""
    page.wait_for_function(
        "n => window.__facelibExposure.length >= n"
        " && window.__facelibExposure.slice(0, n).every(e => e.t_frame !== null)",
        arg=n, timeout=timeout * 1000, polling=50)


def summarize_exposures(ms: list[float], target: float = 250.0, tol: float = 30.0) -> dict:
    a = np.asarray(ms, float)
    return {"n": int(a.size), "median": float(np.median(a)), "p5": float(np.percentile(a, 5)),
            "p95": float(np.percentile(a, 95)), "min": float(a.min()), "max": float(a.max()),
            "within": float(np.mean(np.abs(a - target) <= tol))}


def report_exposures(label: str, stats: dict) -> str:
    line = (f"{label}: n={stats['n']}, median {stats['median']:.1f} ms, p5 {stats['p5']:.1f}, "
            f"p95 {stats['p95']:.1f}, min {stats['min']:.1f}, max {stats['max']:.1f}, "
            f"{100 * stats['within']:.0f}% within 250 +/- 30 ms")
    REPORTS.append(line)
    out = os.environ.get("FACELIB_BROWSER_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"label": label, **stats}) + "\n")
    return line


def text_matching(locator, pattern: str):
    return locator.get_by_text(re.compile(pattern)).first


def wait_until(pred, timeout: float, what: str, poll: float = 0.1):
    """Poll a Python-side condition (a file's contents), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
