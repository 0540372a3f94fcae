"""A local Prefect server that outlives one command (``lakehouse server start|stop|status``).

Without a running API every ``lakehouse run`` makes Prefect start a temporary server of its
own, which costs 10–40 s per command. ``lakehouse server start`` starts one in the
background instead, keeps its database under ``<state dir>/prefect-server``, and writes its
URL where the CLI looks for a running API (the same marker file ``lakehouse serve`` writes),
so later commands reuse it until ``lakehouse server stop``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MARKER = "prefect-api-url"
"""The URL of the running Prefect API, in the state dir (``lakehouse serve`` writes it too)."""
PID_FILE = "prefect-server.pid"
LOG_FILE = "prefect-server.log"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout):
            return True
    except OSError:
        return False


def running_url(state_dir: Path) -> str | None:
    """The URL in the marker when something answers there, else None."""
    marker = state_dir / MARKER
    if not marker.exists():
        return None
    url = marker.read_text().strip()
    return url if url and healthy(url) else None


def _alive(pid: int) -> bool:
    try:  # reap it if it is our own child (a command that started and stops it in one process)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Started:
    url: str
    pid: int | None
    """None when a server was already running (this call started nothing)."""
    seconds: float


def start(state_dir: Path, *, port: int, timeout: float) -> Started:
    """Start ``prefect server start`` detached on 127.0.0.1:``port``, or reuse a running one.

    Raises ``RuntimeError`` with the log's last lines if it exits or does not answer in
    ``timeout`` seconds (the process is then stopped).
    """
    began = time.monotonic()
    if url := running_url(state_dir):
        return Started(url, None, 0.0)
    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/api"
    if healthy(url, timeout=1.0):
        raise RuntimeError(f"port {port} already serves an API this state dir did not start; "
                           f"set PREFECT_API_URL={url} to use it, or choose another --port")
    env = {
        **os.environ,
        "PREFECT_HOME": str(state_dir.resolve() / "prefect-server"),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "server", "start"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command and its Ctrl-C
        )
    deadline = began + timeout
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            why = "exited" if proc.returncode is not None else f"did not answer within {timeout:.0f} s"
            raise RuntimeError(f"the Prefect server {why} (log: {log_path}): " + " | ".join(tail))
        time.sleep(0.5)
    (state_dir / PID_FILE).write_text(str(proc.pid))
    (state_dir / MARKER).write_text(url)
    return Started(url, proc.pid, time.monotonic() - began)


def _terminate(pid: int, grace: float = 30.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def stop(state_dir: Path) -> int | None:
    """Stop the server ``start`` started; returns its pid, or None if none was running."""
    pid_file = state_dir / PID_FILE
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().strip())
    alive = _alive(pid)
    if alive:
        _terminate(pid)
    pid_file.unlink(missing_ok=True)
    (state_dir / MARKER).unlink(missing_ok=True)
    return pid if alive else None
