"""The HTTP API source's request helpers: Retry-After, redaction, and its cursor as JSON."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from lakehouse.sources.http import HttpCursor, Listing
from lakehouse.sources.http_client import REDACTED, Redact, retry_after


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 < later <= 30
    assert retry_after(format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0


def test_a_secret_is_redacted_from_text_and_from_the_clients_log_records(caplog: pytest.LogCaptureFixture) -> None:
    secret = "k3y/with spaces&=-8f2d"
    redact = Redact(secret)
    assert redact(f"GET /x?api_key={secret}") == f"GET /x?api_key={REDACTED}"
    assert redact("GET /x?api_key=k3y%2Fwith%20spaces%26%3D-8f2d") == f"GET /x?api_key={REDACTED}"  # URL-encoded
    caplog.set_level(logging.DEBUG)
    redact.install()
    try:
        logging.getLogger("httpx").info("HTTP Request: GET %s", "http://h/x?api_key=k3y%2Fwith+spaces%26%3D-8f2d")
        logging.getLogger("httpx").info("HTTP Request: GET %s", f"http://h/x?api_key={secret}")
    finally:
        redact.remove()
    assert "8f2d" not in caplog.text  # httpx writes a space in a query value as +
    assert caplog.text.count(REDACTED) == 2


def test_the_cursor_round_trips_through_json() -> None:
    cursor = HttpCursor("2026-01-01T00:05:00Z", frozenset({"a", "b"}), 7, Listing("2026-01-01T00:00:00Z", frozenset({"c"}), "tok"))
    assert HttpCursor.from_json(cursor.to_json()) == cursor
    assert HttpCursor.from_json(HttpCursor().to_json()) == HttpCursor()
