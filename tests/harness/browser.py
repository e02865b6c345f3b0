"""JupyterLab on loopback and Debian's headless Chromium driven by Playwright: Inference.ipynb's live-play widget
as a user meets it. Shared by the browser test and bench/bench_live_widget.py."""
from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import papermill

from tests.harness.run_folders import ROOT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by scripts/setup.sh; never a downloaded build
CHROMIUM_ARGS = ["--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 # The closed network refuses Chromium's background connections: make none.
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDGET = ".rnn-live"


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_notebook(folder: Path, parameters: dict) -> Path:
    """Write Inference.ipynb into `folder` with `parameters` injected, as papermill would, without running it."""
    path = folder / "Inference.ipynb"
    papermill.execute_notebook(str(ROOT / "Inference.ipynb"), str(path), parameters=parameters, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    return path


@contextmanager
def jupyter_lab(root_dir: Path, scratch: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run JupyterLab on a free loopback port with a token over `root_dir`; yield its URL with the token."""
    port, token = free_port(), secrets.token_hex(16)
    for name in ("config", "data", "runtime", "workspaces", "settings"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    # The kernels import the project installed in .venv (pip install -e .); the user's own Jupyter settings stay out.
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(scratch / "config"),
           "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root_dir}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
               f"--LabApp.user_settings_dir={scratch / 'settings'}"]
    log_path = scratch / "jupyterlab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{url}/api/status?token={token}", server, log_path, timeout)
        yield f"{url}/lab/tree/Inference.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_for_server(status_url: str, server: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer in {timeout:.0f} s:\n{log_path.read_text()[-2000:]}")


@contextmanager
def chromium_page(scratch: Path) -> Iterator:
    """Yield a Playwright page of headless Debian Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run scripts/setup.sh as root (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(scratch / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


class LiveWidget:
    """The live-play widget in a JupyterLab page: Play, its knobs and the test hook that reads what it played."""

    def __init__(self, page) -> None:
        self.page = page

    @classmethod
    def open(cls, page, notebook_url: str, timeout_s: float = 120.0) -> LiveWidget:
        """Open the notebook, run every cell and return its widget once the kernel is idle again."""
        page.set_default_timeout(timeout_s * 1000)
        page.goto(notebook_url)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext")
        page.evaluate("""async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
        }""")
        page.wait_for_selector(WIDGET)
        return cls(page)

    def play(self) -> None:
        """Press Play and wait until sound comes out."""
        self.page.click(f"{WIDGET} .rnn-live-play")
        self.page.wait_for_function(f"document.querySelector('{WIDGET} .rnn-live-status').textContent"
                                    ".startsWith('buffer')")
        self.page.wait_for_function(f"document.querySelector('{WIDGET}').rnnLiveTest.health().bufferedMs > 0")

    def turn(self, name: str, value: float) -> None:
        """Move the knob of parameter `name` to `value`, in its own units, as a user dragging it would."""
        self.page.fill(f"{WIDGET} input.rnn-live-knob[name='{name}']", f"{value:g}")

    def record(self, on: bool) -> None:
        """Start or stop recording what the worklet plays."""
        self.page.evaluate(f"document.querySelector('{WIDGET}').rnnLiveTest.record({str(on).lower()})")

    def recording(self) -> np.ndarray:
        """Return what the worklet played while recording, at the browser's sample rate."""
        text = self.page.evaluate(f"document.querySelector('{WIDGET}').rnnLiveTest.recording()")
        return np.frombuffer(base64.b64decode(text), dtype=np.float32)

    def health(self) -> dict:
        """Return the readouts: bufferedMs, targetMs, underflows, latencyMs, latencies, realTime, sampleRate."""
        return self.page.evaluate(f"document.querySelector('{WIDGET}').rnnLiveTest.health()")

    def status_text(self) -> str:
        """Return the status line a user reads under the knobs."""
        return self.page.inner_text(f"{WIDGET} .rnn-live-status")
