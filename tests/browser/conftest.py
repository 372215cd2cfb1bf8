"""The widgets as a person uses them: a real Jupyter server and headless Chromium (Playwright).

Session fixtures start a Jupyter server on a free localhost port, with a token and a temporary
root folder, and one Chromium; both stop at the end. Which server follows the installed
ipywidgets (browser_kit.pick_front_end): 8 -> Notebook 7, 7 -> the classic notebook (nbclassic,
with widgetsnbextension 3's ipywidgets 7 manager); FACELIB_BROWSER_SERVER=notebook|nbclassic
overrides it. The kernels run facelib from this checkout on 4-step smoke runs trained here.

What a machine needs (each missing piece skips these tests with the line to run):
    apt-get install -y chromium            # /usr/bin/chromium (or FACELIB_CHROMIUM=/path)
    pip install -r requirements-dev.txt    # playwright (no browser download), notebook>=7 and
                                           # nbclassic; anywidget comes with requirements.txt

FACELIB_UPDATE_FIGURES=1 makes the tests also write the README's widget screenshots
(assets/figures/widgets_*.png); FACELIB_BROWSER_REPORT=FILE appends the exposure measurements
as JSON lines.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import browser_kit as kit

SERVER_START_S = 90  # generous: two busy cores, first start compiles nothing but reads a lot


def pytest_terminal_summary(terminalreporter):
    if kit.REPORTS:
        terminalreporter.section("browser: rapid-mode exposures measured on screen")
        for line in kit.REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def front_end() -> kit.FrontEnd:
    """The Jupyter front end for the installed ipywidgets, or a skip saying what to install."""
    missing = []
    chromium = kit.find_chromium()
    if chromium is None:
        missing.append("Chromium: apt-get install -y chromium (or set FACELIB_CHROMIUM)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright for Python: pip install playwright (its browser download "
                       "is not needed; Debian's chromium is used)")
    fe = kit.pick_front_end()
    if importlib.util.find_spec(fe.module) is None:
        missing.append(f"the {fe.name} server for ipywidgets {kit.ipywidgets_major()}: "
                       f"{fe.install}")
    if missing:
        pytest.skip("browser tests need " + "; ".join(missing))
    return fe


class JupyterServer:
    """A Jupyter server in a subprocess: ``url(path)`` adds the token."""

    def __init__(self, front_end: kit.FrontEnd, root: Path, home: Path):
        self.front_end, self.root = front_end, root
        self.token = secrets.token_hex(16)
        self.log_path = home / "server.log"
        env = dict(os.environ)
        env.update({
            # hermetic: no user config, settings, kernels or runtime files
            "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
            "FACELIB_PROFILE": "smoke", "TF_CPP_MIN_LOG_LEVEL": "3",
            "OPENBLAS_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join(p for p in (str(kit.REPO),
                                                      os.environ.get("PYTHONPATH")) if p),
        })
        env.pop("MPLBACKEND", None)  # the kernels draw inline, as in a notebook
        # No "would you like news?" notification over the page in screenshots.
        settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.proc = None
        for _attempt in range(3):  # a free port can be taken between asking and binding
            self.port = _free_port()
            cmd = [sys.executable, "-m", front_end.module, "--no-browser", "--ip=127.0.0.1",
                   f"--port={self.port}", "--port-retries=0", f"--ServerApp.root_dir={root}",
                   f"--IdentityProvider.token={self.token}", *front_end.server_args]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")
            with open(self.log_path, "w") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             cwd=root, env=env)
            if self._wait_up():
                return
        raise RuntimeError(f"the Jupyter server ({front_end.name}) did not start; its log "
                           f"ends:\n{self.log()[-3000:]}")

    def _wait_up(self) -> bool:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                kit.http_get(self.url("/api/status"), timeout=2)
                return True
            except OSError:
                time.sleep(0.2)
        self.stop()
        return False

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def shutdown_kernels(self, path: str | None = None) -> None:
        """Delete the sessions (and so the kernels) of one notebook, or of all."""
        try:
            sessions = json.loads(kit.http_get(self.url("/api/sessions")))
            for s in sessions:
                if path is None or s.get("path") == path:
                    kit.http_delete(self.url(f"/api/sessions/{s['id']}"))
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.shutdown_kernels()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def jupyter_server(front_end, tmp_path_factory):
    root = tmp_path_factory.mktemp("jupyter-root")
    home = tmp_path_factory.mktemp("jupyter-home")
    server = JupyterServer(front_end, root, home)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium(front_end):
    """A headless Chromium (a fresh profile) for one test module. Not for the session: while
    Playwright's sync API is started its event loop counts as running in this thread, and the
    tests after these (asyncio.run, nbclient, the widgets' scheduler) would find it there."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="facelib-chromium-")
    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=kit.find_chromium(), args=kit.CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    except Exception:
        pw.stop()
        raise
    context.set_default_timeout(60_000)
    yield context
    context.close()
    pw.stop()
    import shutil

    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, cache32) -> dict[str, Path]:
    """4-step smoke runs on the bundled faces: unconditional and conditional."""
    from facelib.config import preset
    from facelib.run.train import train

    root = tmp_path_factory.mktemp("browser-runs")
    runs = {}
    for name, conditional in (("dcgan", False), ("cgan", True)):
        runs[name] = root / name
        train(preset("smoke", steps=4, conditional=conditional), runs[name], data=cache32,
              verbose=0)
    return runs


@pytest.fixture(scope="module")
def open_notebook(jupyter_server, chromium):
    """open_notebook(name, cells) -> a NotebookPage (its kernel shut down at the end)."""
    pages = []

    def _open(name: str, cells: list[str]) -> kit.NotebookPage:
        kit.write_notebook(jupyter_server.root / name, cells)
        nb = kit.NotebookPage(jupyter_server, chromium.new_page(), name)
        pages.append(nb)
        return nb

    yield _open
    for nb in pages:
        if not nb.page.is_closed():
            nb.close()
