"""The CLI reuses the Prefect API of a running `lakehouse serve` instead of starting its own."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flows import cli


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/api/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> str:
    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def test_the_api_of_a_running_serve_is_reused(tmp_path, monkeypatch, api: str) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "")  # records the session's value, restored afterwards
    monkeypatch.delenv("PREFECT_API_URL")
    (tmp_path / cli.SERVE_API_FILE).write_text(api)
    cli._prefect_api(str(tmp_path))
    assert os.environ["PREFECT_API_URL"] == api


def test_a_stale_marker_or_a_set_url_is_left_alone(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "")  # records the session's value, restored afterwards
    monkeypatch.delenv("PREFECT_API_URL")
    (tmp_path / cli.SERVE_API_FILE).write_text("http://127.0.0.1:9/api")  # nothing listens there
    cli._prefect_api(str(tmp_path))
    assert "PREFECT_API_URL" not in os.environ
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere/api")
    cli._prefect_api(str(tmp_path))
    assert os.environ["PREFECT_API_URL"] == "http://elsewhere/api"
