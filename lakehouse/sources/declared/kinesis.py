"""``kind: kinesis``: an Amazon Kinesis data stream read shard by shard (:mod:`lakehouse.sources.kinesis`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from lakehouse.sources.declared.base import RecordSourceDecl, register

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
    """Another Kinesis endpoint (a VPC endpoint, LocalStack); unset or empty: ``AWS_ENDPOINT_URL``, else AWS's own."""
    start_at: Literal["trim_horizon", "latest"] = "trim_horizon"
    """Where a shard the cursor has no record of starts: its oldest record, or the time of the dataset's first read."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per call (botocore's standard retry: exponential backoff with jitter) on throttling and connection errors."""
    timeout: float = Field(default=30.0, gt=0, le=600)
    """Seconds to connect and to wait for an answer, per attempt."""

    def resource_problem(self, resource: str | None, *, dataset: str) -> str | None:
        """A dataset reads one stream: its ``resource`` names a stream, and no other than the source's ``stream``."""
        if resource is None or resource == dataset:
            return None
        if self.stream is not None and resource != self.stream:
            return f"{resource!r} and its source's stream {self.stream!r} disagree: name the stream in one place"
        if not _STREAM_NAME.fullmatch(resource):
            return f"{resource!r} is not a Kinesis stream name: 1-128 letters, digits, '_', '-' or '.'"
        return None

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
        if value == "":  # ``${SHOP_STREAM_ENDPOINT:-}`` with the variable unset: AWS_ENDPOINT_URL, else AWS's own
            return None
        if value is not None and not re.fullmatch(r"https?://[^/\s@]+/?", value):
            shown = re.sub(r"//[^/@]*@", "//***@", value)  # credentials in a URL are never shown
            msg = f"{shown!r}: expected an http:// or https:// URL with a host, no path and no credentials"
            raise ValueError(msg)
        return value
