"""What every declared source shares: its window and batch bounds, ``landing_files``, secrets by
reference, and the registry of kinds (``kind:`` picks a model; it defaults to
``landing_files``, so declarations written before other kinds existed keep their meaning).

A source names a system and how to read it incrementally; a dataset names what to read in
it (its ``prefix`` under a landing area, or its ``resource``: an endpoint path, a table, a
stream). A new kind is a module of :mod:`lakehouse.sources.declared` (plain pydantic, no
client library imported) plus a reader registered in :mod:`lakehouse.sources.base`.
"""

from __future__ import annotations

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


class DeclModel(BaseModel):
    """A declared part of a source: unknown fields refused, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceBase(DeclModel):
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


class SecretRef(DeclModel):
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

    def resource_problem(self, resource: str | None, *, dataset: str) -> str | None:
        """What is wrong with a dataset of this source reading ``resource`` (null: not declared, its name);
        ``lakehouse validate`` reports it at the dataset's ``resource``. None: nothing."""
        del resource, dataset
        return None


KINDS: dict[str, type[SourceBase]] = {"landing_files": LandingFilesDecl}
"""Every declarable kind by its ``kind:`` name (a new kind adds its model here)."""


_Kind = TypeVar("_Kind", bound=type[SourceBase])


def register(model: _Kind) -> _Kind:
    """Make ``model`` declarable as ``kind: <its kind literal>`` (a class decorator)."""
    kind = model.model_fields["kind"].default
    assert isinstance(kind, str), f"{model.__name__}.kind needs a default: its Literal name"
    KINDS[kind] = model
    return model




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
