"""JupyterLab and Chromium for the browser tests, each started and stopped by PID.

`jupyter_lab` serves a folder on 127.0.0.1 with a random token, its own
config, data, runtime and settings folders (so nothing of the user's is read
or written; news and update checks off, every cell kept in the page).
`chromium` starts Debian's Chromium headless with a fresh profile and a
DevTools port on loopback; Playwright attaches to it over CDP, so Playwright
never launches (or downloads) a browser of its own. Both run in their own
process group, ended with SIGTERM, then SIGKILL, when the test is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ENV_VAR = "FLOPS_FIT_CHROMIUM"
# The flags this machine's closed network needs: no background fetches, no
# sandbox (CI runs as root), no GPU.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0", "--window-size=1400,1000",
)
INSTALL_HINT = ("install Debian's chromium (as root: apt-get install chromium; `make install` "
                "does it when run as root) or set FLOPS_FIT_CHROMIUM to a Chromium/Chrome binary")


def chromium_path() -> str:
    """The Chromium binary to drive: $FLOPS_FIT_CHROMIUM, else chromium on PATH."""
    path = os.environ.get(CHROMIUM_ENV_VAR) or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise FileNotFoundError(f"Got no Chromium at {path!r}: {INSTALL_HINT}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, ValueError):
            if predicate():
                return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group the test started, SIGKILL after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # start_new_session=True: group id == pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # children left in the group (kernels, renderers)
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: where it listens and its token."""

    port: int
    token: str
    pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"


@contextlib.contextmanager
def jupyter_lab(root: Path, *, env: dict[str, str], timeout: float = 90) -> Iterator[Lab]:
    """Serve ``root`` with JupyterLab on 127.0.0.1 until the block ends."""
    home = root.parent / f"{root.name}.jupyter"
    settings = home / "settings"
    for plugin, values in (
        ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
        ("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"}),  # every cell in the DOM
    ):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**env, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    log = home / "server.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(port, token, proc.pid)
    try:
        _wait(lambda: urllib.request.urlopen(lab.url("api/status"), timeout=2).status == 200,
              timeout, "JupyterLab", proc, log)
        yield lab
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Browser:
    """A running Chromium: its DevTools endpoint (for Playwright) and PID."""

    endpoint: str
    pid: int


@contextlib.contextmanager
def chromium(profile: Path, *, timeout: float = 60) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile until the block ends."""
    profile.mkdir(parents=True, exist_ok=True)
    log = profile.parent / f"{profile.name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                 "about:blank"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"  # Chromium writes its chosen port here
    try:
        _wait(lambda: port_file.is_file() and port_file.read_text().strip() != "",
              timeout, "Chromium", proc, log)
        port = int(port_file.read_text().split()[0])
        yield Browser(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        _stop(proc)
