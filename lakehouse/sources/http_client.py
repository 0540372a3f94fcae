"""One GET of the ``http_api`` source, retried; and the redaction of its secret.

:class:`Requester` sends a request with httpx and retries it with tenacity (exponential
backoff with jitter, ``Retry-After`` honoured) after a connection error, a timeout, a 5xx or
a 429; once the retries are spent it raises :class:`~lakehouse.errors.SourceUnavailable`.
A final answer (2xx, 3xx, 4xx) is returned for the caller to judge. :class:`Redact` keeps
the secret out of messages and out of the HTTP client's own log records (httpx logs each
request's URL, an API key in a query parameter included).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, quote_plus

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.errors import SourceUnavailable

log = logging.getLogger("lakehouse.sources.http")

REDACTED = "REDACTED"
"""What a credential is replaced by wherever a URL or a message is shown."""
CLIENT_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11")
"""The loggers of the HTTP client, whose records :class:`Redact` filters."""


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class Answer(Exception):
    """An answer worth retrying (a 5xx or a 429), with the wait its ``Retry-After`` asks for."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.retry_after = retry_after(response.headers.get("Retry-After")) if response.status_code in (429, 503) else None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, Answer | httpx.TransportError)


class Redact(logging.Filter):
    """Replaces a secret (and its URL-encoded forms) in text, and in the client's log records while installed."""

    def __init__(self, secret: str | None) -> None:
        super().__init__()
        text = secret or ""
        # as sent (httpx encodes a query value like quote_plus) and as other encoders would write it
        forms = (text, str(httpx.QueryParams({"k": text}))[2:], quote_plus(text), quote(text, safe=""), quote(text))
        self.forms = tuple(dict.fromkeys(sorted((f for f in forms if f), key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        """``text`` with the secret replaced (an error of the client could quote a URL)."""
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a record that holds the secret (it is never dropped)."""
        text = record.getMessage()
        if any(f in text for f in self.forms):
            record.msg, record.args = self(text), None
        return True

    def install(self) -> None:
        """Filter the HTTP client's loggers."""
        for name in CLIENT_LOGGERS if self.forms else ():
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        """Stop filtering them."""
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).removeFilter(self)


class Requester:
    """GETs with ``retries`` retries, ``backoff`` seconds before the first (doubled, plus jitter), ``max_wait`` at most each."""

    def __init__(self, client: httpx.Client, *, name: str, retries: int, backoff: float, max_wait: float,
                 redact: Redact) -> None:
        self.client, self.name, self.attempts, self.max_wait, self.redact = client, name, retries + 1, max_wait, redact
        self.backoff = wait_exponential_jitter(multiplier=backoff, max=max_wait, jitter=backoff)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Answer) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        return self.backoff(state)

    def _what(self, exc: BaseException | None) -> str:
        return f"answered {exc}" if isinstance(exc, Answer) else self.redact(f"{type(exc).__name__}: {exc}")

    def get(self, url: str, params: dict[str, str], *, shown: str) -> httpx.Response:
        """The final answer to ``GET url?params`` (``shown``: the request with credentials redacted)."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning("%s: GET %s: %s; retry %d of %d in %.2f s", self.name, shown, self._what(exc),
                        state.attempt_number, self.attempts - 1, wait)

        def attempt() -> httpx.Response:
            response = self.client.get(url, params=params)
            if response.status_code == 429 or response.status_code >= 500:
                raise Answer(response)
            return response

        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=self._wait, retry=retry_if_exception(_retryable),
                            before_sleep=before_sleep, reraise=True)
        try:
            return retrying(attempt)
        except Answer as exc:
            msg = f"{self.name}: GET {shown} answered {exc} {self.attempts} times: the API is unavailable or throttling"
            raise SourceUnavailable(msg) from None
        except httpx.TransportError as exc:
            msg = f"{self.name}: GET {shown} failed {self.attempts} times; last: {self._what(exc)}"
            raise SourceUnavailable(msg) from None
