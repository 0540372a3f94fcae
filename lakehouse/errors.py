"""The lakehouse's exceptions: one root, split into transient (retry) and terminal (stop)."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (delta-rs colours the arrows of its error chains)."""
    return _ANSI.sub("", text)


def one_line(text: str) -> str:
    """``text`` without colour codes, its lines and runs of spaces joined by single spaces."""
    return " ".join(strip_ansi(text).split())


class LakehouseError(Exception):
    """Base of every error the lakehouse raises on purpose; its message never carries colour codes."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(strip_ansi(a) if isinstance(a, str) else a for a in args))


class TransientError(LakehouseError):
    """A failure that a retry with backoff may cure (a source or store that is down)."""


class TerminalError(LakehouseError):
    """A failure that a retry cannot cure: the message says what to change."""


class SourceUnavailable(TransientError):
    """A source or object store could not be reached."""


class SourceRefused(TerminalError):
    """A source refused the request (a 4xx other than 429, a bad credential): nothing advanced."""


class CommitConflict(TransientError):
    """Another writer committed first; reload the table and try again."""


class StorageMissing(TerminalError):
    """A bucket (or a local warehouse's parent) does not exist: no retry can create it."""


class StaleBatch(TerminalError):
    """Another writer promoted part of a prepared batch first; the next run promotes the rest."""


class CountsMismatch(TerminalError):
    """A promotion's row accounting disagrees with what bronze, the quarantine or the merge recorded."""


class ConfigError(TerminalError):
    """The configuration is invalid."""


class SchemaDrift(TerminalError):
    """A table's stored schema no longer matches its declaration."""


class GateFailed(TerminalError):
    """A batch-level quality check failed, so the promotion was blocked."""

    def __init__(self, message: str, *, table: str, failed_checks: list[str]) -> None:
        super().__init__(message)
        self.table = table
        self.failed_checks = failed_checks


# --- what a retry can cure -----------------------------------------------------------------

_TRANSIENT_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeoutException",
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "500", "502", "503", "504",
})
"""S3 (and AWS) error codes that mean "not now", not "never"."""

_TERMINAL_STORAGE = re.compile(
    r"NoSuchBucket|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|InvalidBucketName|"
    r"\b40[0134] (Bad Request|Unauthorized|Forbidden|Not Found)\b"
)
"""What in a storage error's message says that retrying cannot help (a 4xx answer)."""

_DELTA_STORE = re.compile(r"Generic S3 error")
"""What in a delta-rs ``DeltaError`` says S3 failed (not the table, the data or a local disk)."""

_HTTP_5XX = re.compile(r"\(HTTP 5\d\d\)|HTTP 5\d\d\b|Could not establish connection|Connection reset")
"""What in a DuckDB httpfs error says the store was down or answered 5xx."""

_BUCKET = re.compile(r"<BucketName>([^<]+)</BucketName>")


def missing_bucket(exc: BaseException) -> str | None:
    """The bucket ``exc`` says does not exist (boto3 or delta-rs), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and (response.get("Error") or {}).get("Code") == "NoSuchBucket":
        return str(response["Error"].get("BucketName") or "") or "?"
    text = str(exc)
    if "NoSuchBucket" in text:
        found = _BUCKET.search(text)
        return found.group(1) if found else "?"
    cause = exc.__cause__
    return missing_bucket(cause) if cause is not None and cause is not exc else None


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may cure ``exc``: an outage or a conflicting commit, never a bug.

    Transient: :class:`TransientError` (a source that is down, a :class:`CommitConflict`),
    delta-rs' commit conflicts, network and storage errors (``OSError``, connection resets,
    timeouts, botocore's connection and endpoint errors, S3 5xx and ``SlowDown``). Not
    transient: :class:`TerminalError` (a blocked gate, a bad declaration, a missing
    bucket), a storage error that is a 4xx answer (missing bucket, access denied), a
    permission error, and everything else: ``TypeError``, ``KeyError``, ``ValueError`` …
    are bugs or bad input, and run the same way every time.
    """
    if isinstance(exc, TerminalError):
        return False
    if isinstance(exc, TransientError):
        cause = exc.__cause__
        if isinstance(exc, SourceUnavailable) and cause is not None and isinstance(getattr(cause, "response", None), dict):
            return is_transient(cause)  # the store answered: 5xx is an outage, 4xx (no bucket, access denied) is not
        return missing_bucket(exc) is None
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if name == "CommitFailedError":  # deltalake: another writer committed first
        return True
    if any(cls.__name__ == "DeltaError" for cls in type(exc).__mro__) and _DELTA_STORE.search(strip_ansi(str(exc))):
        # a write or change-data read whose object store call failed (a listing's body cut
        # short, a 5xx): delta-rs says DeltaError, not OSError, on these paths
        return _TERMINAL_STORAGE.search(strip_ansi(str(exc))) is None
    if module.endswith("duckdb") and name in ("IOException", "HTTPException"):
        # DuckDB's delta_scan (delta-kernel's object store) or httpfs met a storage failure
        text = strip_ansi(str(exc))
        return bool(_DELTA_STORE.search(text) or _HTTP_5XX.search(text)) and _TERMINAL_STORAGE.search(text) is None
    if module.startswith("botocore"):
        response = getattr(exc, "response", None)
        if isinstance(response, dict):  # a ClientError: the service answered
            error = response.get("Error") or {}
            status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
            return str(error.get("Code")) in _TRANSIENT_CODES or status >= 500
        # EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, and every
        # HTTPClientError (a ResponseStreamingError is a body cut short) …
        return any(cls.__name__.endswith(("ConnectionError", "ConnectionClosedError", "TimeoutError", "HTTPClientError"))
                   for cls in type(exc).__mro__)
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, OSError):  # delta-rs reports object store failures as OSError
        return _TERMINAL_STORAGE.search(strip_ansi(str(exc))) is None
    return False


def reported(exc: BaseException, *, roots: tuple[str, ...] = ()) -> BaseException:
    """The error to report for ``exc``: one line, no colour codes, classed transient or terminal.

    A missing bucket becomes :class:`StorageMissing` naming the bucket and which of
    ``roots`` (the warehouse, the landing area) lives in it; another transient failure
    from outside the lakehouse becomes :class:`SourceUnavailable` with its cleaned message;
    a message with colour codes is cleaned (as a :class:`TerminalError`). Anything else is
    returned as it is (a bug keeps its type and traceback).
    """
    bucket = None if isinstance(exc, TerminalError) else missing_bucket(exc)
    if bucket is not None:
        where = [r for r in roots if r.startswith(f"s3://{bucket}/") or r == f"s3://{bucket}"]
        named = f" ({', '.join(where)})" if where else ""
        return StorageMissing(
            f"bucket '{bucket}' does not exist{named}: create it, or point LAKEHOUSE_WAREHOUSE / "
            "LAKEHOUSE_LANDING at a bucket that does"
        )
    if isinstance(exc, LakehouseError):
        return exc
    text = str(exc)
    if is_transient(exc):
        return SourceUnavailable(f"{type(exc).__name__}: {one_line(text)}")
    if _ANSI.search(text):
        return TerminalError(f"{type(exc).__name__}: {one_line(text)}")
    return exc
