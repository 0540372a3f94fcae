"""The lakehouse's exceptions: one root, split into transient (retry) and terminal (stop)."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base of every error the lakehouse raises on purpose."""


class TransientError(LakehouseError):
    """A failure that a retry with backoff may cure (a source or store that is down)."""


class TerminalError(LakehouseError):
    """A failure that a retry cannot cure: the message says what to change."""


class SourceUnavailable(TransientError):
    """A source or object store could not be reached."""


class CommitConflict(TransientError):
    """Another writer committed first; reload the table and try again."""


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
