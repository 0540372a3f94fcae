"""`lakehouse server start|status|stop`: one local Prefect server that later commands reuse."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments import local_api
from flows import cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_started_server_is_reused_by_later_commands_until_stopped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "")  # records the session's value, restored afterwards
    monkeypatch.delenv("PREFECT_API_URL")
    state, port = tmp_path / "state", _free_port()
    runner = CliRunner()

    assert runner.invoke(cli.app, ["server", "status", "--state-dir", str(state)]).exit_code == 1
    started = runner.invoke(cli.app, ["server", "start", "--port", str(port), "--state-dir", str(state)])
    assert started.exit_code == 0, started.output
    url = f"http://127.0.0.1:{port}/api"
    pid = int((state / local_api.PID_FILE).read_text())
    try:
        assert url in started.output and _alive(pid) and local_api.healthy(url)
        # a second start finds it instead of starting another
        again = runner.invoke(cli.app, ["server", "start", "--port", str(_free_port()), "--state-dir", str(state)])
        assert again.exit_code == 0 and "already running" in again.output and url in again.output
        status = runner.invoke(cli.app, ["server", "status", "--state-dir", str(state)])
        assert status.exit_code == 0 and url in status.output
        # what `lakehouse run` does first: the running API is taken, no temporary server
        cli._prefect_api(str(state))
        assert os.environ["PREFECT_API_URL"] == url
    finally:
        stopped = runner.invoke(cli.app, ["server", "stop", "--state-dir", str(state)])
    assert stopped.exit_code == 0 and f"pid {pid}" in stopped.output
    assert not _alive(pid) and not local_api.healthy(url)
    assert not (state / local_api.MARKER).exists()
    assert runner.invoke(cli.app, ["server", "stop", "--state-dir", str(state)]).output.startswith("no Prefect server")


def test_a_port_taken_by_a_foreign_api_is_refused(tmp_path: Path) -> None:
    import threading
    from http.server import HTTPServer

    from tests.unit.test_cli_prefect_api import Health

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = CliRunner().invoke(cli.app, ["server", "start", "--port", str(server.server_address[1]),
                                           "--state-dir", str(tmp_path)])
    finally:
        server.shutdown()
        server.server_close()
    assert out.exit_code == 1 and "already serves an API" in out.output
