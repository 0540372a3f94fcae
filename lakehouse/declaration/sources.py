"""The declared kinds of source: one validated model per ``kind:`` of the pipeline YAML.

A source names a system and how to read it incrementally; a dataset names what to read in
it (its ``prefix`` under a landing area, or its ``resource``: an endpoint path, a table, a
stream). ``kind`` picks the model; it defaults to ``landing_files``, so declarations
written before other kinds existed keep their meaning. A new kind is a model here (plain
pydantic, no client library imported) plus a reader registered in :mod:`lakehouse.sources`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from lakehouse.specs import Compression, FileFormat, LandingTime, Listing
from lakehouse.uri import unsafe_reason
from lakehouse.window import Interval


def confined_prefix(value: str) -> str:
    """A landing prefix stays under the landing root: no ``..``, no absolute path."""
    reason = unsafe_reason(value.strip("/") if not value.startswith("/") else value)
    if reason is not None:
        msg = f"{value!r}: {reason}"
        raise ValueError(msg)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceBase(_Model):
    """What every kind of source declares: its window length and its batch bounds."""

    kind: Any
    """Each kind's model narrows it to its ``Literal`` name, which is also its default."""
    interval: Interval = timedelta(minutes=15)
    """The pipeline's window length (the shortest of its sources'); the schedule must agree."""
    max_batch_rows: int = Field(default=1_000_000, ge=1)
    """At most about this many bronze rows per silver promotion (whole bronze commits are taken)."""

    @model_validator(mode="after")
    def _interval_range(self) -> SourceBase:
        if not timedelta(minutes=1) <= self.interval <= timedelta(hours=24):
            msg = "interval must be between 1m and 24h (5m–15m is typical)"
            raise ValueError(msg)
        return self


class LandingFilesDecl(SourceBase):
    """Files landing under a prefix of the landing area."""

    kind: Literal["landing_files"] = "landing_files"
    prefix: str = ""
    format: FileFormat = "jsonl"
    compression: Compression = "none"
    landing_time: LandingTime = "key"
    lookback: Interval = timedelta(hours=1)
    """Files that landed within this of the newest one ingested are compared by key and version."""
    listing: Listing = "full"
    """``from_lookback``: list from the look-back's horizon on (S3 StartAfter; late old keys unseen)."""
    max_batch_files: int = Field(default=1000, ge=1)
    """At most this many files per bronze commit; a larger backlog takes several commits."""
    max_batch_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """At most this many bytes of files per bronze commit (a larger single file is its own batch)."""

    @field_validator("prefix")
    @classmethod
    def _confined(cls, value: str) -> str:
        return confined_prefix(value)


class SecretRef(_Model):
    """A secret by reference, never inline: an environment variable or a Prefect Secret block.

    ``{env: SHOP_API_TOKEN}`` or ``{prefect_secret: shop-api-token}``; resolved when the
    source is opened (:func:`lakehouse.sources.secrets.resolve`), never stored in a spec.
    """

    env: str | None = None
    prefect_secret: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.prefect_secret is None):
            msg = "a secret is a reference: exactly one of env (an environment variable) or prefect_secret (a Secret block)"
            raise ValueError(msg)
        return self

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"prefect_secret:{self.prefect_secret}"


class RecordSourceDecl(SourceBase):
    """A system read record by record from a cursor (an API, a database, a stream).

    Every such kind bounds a bronze commit by records and bytes; a backlog larger than
    that takes several commits, each carrying the cursor after it.
    """

    max_batch_records: int = Field(default=100_000, ge=1)
    """At most this many records per bronze commit."""
    max_batch_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """At most about this many bytes of record text per bronze commit."""


M = TypeVar("M", bound=type[SourceBase])

KINDS: dict[str, type[SourceBase]] = {"landing_files": LandingFilesDecl}
"""Every declarable kind by its ``kind:`` name (a new kind adds its model here)."""


def register(model: M) -> M:
    """Make ``model`` declarable as ``kind: <its kind literal>`` (a class decorator)."""
    kind = model.model_fields["kind"].default
    assert isinstance(kind, str), f"{model.__name__}.kind needs a default: its Literal name"
    KINDS[kind] = model
    return model


_STREAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


@register
class KinesisDecl(RecordSourceDecl):
    """An Amazon Kinesis data stream, every shard read from its checkpointed sequence number.

    Credentials and, unless ``endpoint_url`` is declared, the endpoint come from the
    lakehouse's settings (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_ENDPOINT_URL``; unset: boto3's own chain and AWS itself). A dataset reads the
    declared ``stream``, or, when none is, the stream its ``resource`` names (its own name
    by default); a dataset whose ``resource`` names another stream than ``stream`` is refused.
    """

    kind: Literal["kinesis"] = "kinesis"
    stream: str | None = None
    """The stream's name; unset, each dataset reads the stream named by its ``resource`` (its own name by default)."""
    region: str | None = None
    """The stream's AWS region (``eu-west-1``); unset: ``AWS_REGION`` of the settings."""
    endpoint_url: str | None = None
    """Another Kinesis endpoint (a VPC endpoint, LocalStack); unset: ``AWS_ENDPOINT_URL``, else AWS's own."""
    start_at: Literal["trim_horizon", "latest"] = "trim_horizon"
    """Where a shard the cursor has no record of starts: its oldest record, or the time of the dataset's first read."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per call (botocore's standard retry: exponential backoff with jitter) on throttling and connection errors."""
    timeout: float = Field(default=30.0, gt=0, le=600)
    """Seconds to connect and to wait for an answer, per attempt."""

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str | None) -> str | None:
        if value is not None and not _STREAM_NAME.fullmatch(value):
            msg = f"{value!r} is not a Kinesis stream name: 1-128 letters, digits, '_', '-' or '.'"
            raise ValueError(msg)
        return value

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            msg = f"{value!r} is not an AWS region name (like eu-west-1 or us-east-1)"
            raise ValueError(msg)
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s@]+/?", value):
            shown = re.sub(r"//[^/@]*@", "//***@", value)  # credentials in a URL are never shown
            msg = f"{shown!r}: expected an http:// or https:// URL with a host, no path and no credentials"
            raise ValueError(msg)
        return value


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "landing_files")
        return kind if isinstance(kind, str) else ""
    return str(getattr(value, "kind", ""))


def source_type() -> Any:
    """The type of one entry of ``sources:``: a union of every kind, told apart by ``kind``."""
    choices = tuple(Annotated[model, Tag(kind)] for kind, model in KINDS.items())
    union: Any = choices[0] if len(choices) == 1 else _union(choices)
    return Annotated[union, Discriminator(_kind_of, custom_error_type="unknown_source_kind",
                                          custom_error_message=f"unknown kind (kinds: {', '.join(KINDS)})")]


def _union(choices: tuple[Any, ...]) -> Any:
    from typing import Union

    return Union[choices]  # noqa: UP007 (a union of a run-time tuple of types)
