"""The declared kinds of source: one validated model per ``kind:`` of the pipeline YAML.

The options of each kind are the spec of its source: the declaration validates the YAML
with these models, and the readers in :mod:`lakehouse.sources` take them as they are.
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


# --- kind: http_api ---------------------------------------------------------------------------

def _not_inline(value: Any) -> Any:
    """A secret written as a plain value is refused without echoing it."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        msg = "a secret is never written inline: reference it, as {env: VARIABLE} or {prefect_secret: BLOCK}"
        raise ValueError(msg)
    return value


class AuthDecl(_Model):
    """How requests prove who they are: a bearer token or an API key, read from a secret by reference."""

    type: Literal["bearer", "api_key"]
    """``bearer`` (``Authorization: Bearer <token>``) or ``api_key`` (a key in a header or a query parameter)."""
    token: SecretRef | None = None
    """``bearer``: the token, by reference (``{env: SHOP_API_TOKEN}`` or ``{prefect_secret: shop-api-token}``)."""
    key: SecretRef | None = None
    """``api_key``: the key, by reference (``{env: SHOP_API_KEY}`` or ``{prefect_secret: shop-api-key}``)."""
    header: str | None = None
    """``api_key``: the header that carries the key (``X-API-Key``); or ``query``."""
    query: str | None = None
    """``api_key``: the query parameter that carries the key (``api_key``); redacted from every URL shown."""

    _inline = field_validator("token", "key", mode="before")(_not_inline)

    @model_validator(mode="after")
    def _complete(self) -> AuthDecl:
        if self.type == "bearer":
            if self.token is None or self.key is not None or self.header is not None or self.query is not None:
                msg = "bearer auth takes a token (a secret reference) and nothing else"
                raise ValueError(msg)
        elif self.key is None or self.token is not None or (self.header is None) == (self.query is None):
            msg = "api_key auth takes a key (a secret reference) and exactly one of header (a header name) or query (a query parameter name)"
            raise ValueError(msg)
        return self

    @property
    def secret(self) -> SecretRef:
        """The reference of the token or key."""
        ref = self.token if self.type == "bearer" else self.key
        assert ref is not None  # checked by the model
        return ref


PAGINATION_STYLES = ("cursor", "page", "offset", "none")


class PaginationDecl(_Model):
    """How the API splits a listing into pages, and the names it uses for that."""

    style: Literal["cursor", "page", "offset", "none"] = "cursor"
    """``cursor`` (a next-cursor field in the body), ``page`` (page numbers), ``offset`` (a record offset) or ``none``."""
    page_size: int = Field(default=100, ge=1, le=100_000)
    """Records asked for per page (a page may hold fewer; a short page ends a ``page`` or ``offset`` listing)."""
    page_size_param: str | None = "limit"
    """The query parameter that asks for ``page_size`` records (null: the API's own page size, which must be ``page_size``)."""
    cursor_param: str = "cursor"
    """``cursor`` style: the query parameter that sends the next cursor back."""
    next_cursor: str = "next_cursor"
    """``cursor`` style: the dotted JSON path of the next cursor in the body (null or absent on the last page)."""
    page_param: str = "page"
    """``page`` style: the query parameter of the page number."""
    first_page: int = Field(default=1, ge=0)
    """``page`` style: the number of the first page (1, or 0 for APIs that count from 0)."""
    offset_param: str = "offset"
    """``offset`` style: the query parameter of the offset of the page's first record (0 first)."""

    @model_validator(mode="before")
    @classmethod
    def _known_style(cls, value: Any) -> Any:
        if isinstance(value, dict) and "style" in value and value["style"] not in PAGINATION_STYLES:
            msg = f"unknown pagination style {value['style']!r} (styles: {', '.join(PAGINATION_STYLES)})"
            raise ValueError(msg)
        return value


class IncrementalDecl(_Model):
    """How a run asks only for what changed: a query parameter fed from the newest value seen of a field."""

    field: str = "updated_at"
    """The record's field that grows when the record changes (an RFC 3339 time, or a number); its newest value is the watermark."""
    param: str = "updated_since"
    """The query parameter that sends the watermark (the API answers records at or after it)."""
    start: str | None = None
    """The value sent on the first run (null: no parameter, the API's whole history)."""


class HttpApiDecl(RecordSourceDecl):
    """A JSON HTTP API read page by page, incrementally, with retries; a dataset's ``resource`` is its endpoint path."""

    kind: Literal["http_api"] = "http_api"
    base_url: str
    """``http(s)://host[:port][/path]``: each dataset's ``resource`` (``orders``, ``v2/orders``) is appended to it."""
    auth: AuthDecl | None = None
    """``{type: bearer, token: <secret>}`` or ``{type: api_key, key: <secret>, header: X-API-Key | query: api_key}``; null: none."""
    records: str = "data"
    """The dotted JSON path of the list of records in a page's body (``data``, ``result.items``); empty: the body is the list."""
    pagination: PaginationDecl = PaginationDecl()
    """How pages are asked for (style, page size, parameter and field names)."""
    incremental: IncrementalDecl | None = None
    """The ``updated_since``-style filter and the field it follows; null: every run reads the whole listing."""
    params: dict[str, str] = Field(default_factory=dict)
    """Query parameters sent with every request (``{status: all}``): no secrets here, use ``auth``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every request (``{Accept: application/json}``): no secrets here, use ``auth``."""
    timeout: float = Field(default=30.0, gt=0, le=600)
    """Seconds to wait to connect, and for each read of an answer, before the attempt counts as failed."""
    retries: int = Field(default=4, ge=0, le=20)
    """Retries of a request after a connection error, a timeout, a 5xx or a 429; then the source is unavailable."""
    backoff: float = Field(default=0.5, gt=0, le=60)
    """Seconds before the first retry; doubled at each retry, plus up to as much again of random jitter."""
    max_wait: float = Field(default=30.0, gt=0, le=600)
    """The longest wait before one retry, a ``Retry-After`` included (a longer ``Retry-After`` waits this long)."""

    @field_validator("base_url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = "base_url must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1"
            raise ValueError(msg)
        if parts.username is not None or parts.password is not None:
            msg = "base_url must not carry credentials (user:password@): declare them under auth, by reference"
            raise ValueError(msg)
        if parts.query or parts.fragment:
            msg = "base_url must not have a query or a fragment: declare query parameters under params"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in ("authorization", "proxy-authorization", "cookie", "x-api-key"):
                msg = f"header {name} carries a credential: declare it under auth, by reference (never inline)"
                raise ValueError(msg)
        return value


register(HttpApiDecl)


# --- kind: sql ------------------------------------------------------------------------------

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def sql_name(value: str, what: str) -> str:
    """A table or column name of a SQL source: letters, digits, ``_`` and ``$``, not starting with a digit."""
    if not _TABLE.match(value):
        msg = f"{value!r} is not a valid {what} name (letters, digits, _ and $, not starting with a digit)"
        raise ValueError(msg)
    return value


class TombstonesDecl(_Model):
    """A table of deleted keys: one row per delete, with the dataset's key columns and a watermark of its own."""

    table: str
    """The tombstone table (in the source's ``schema``), e.g. ``products_deleted``."""
    watermark: str = "deleted_at"
    """Its column that says when the key was deleted; read incrementally, like the table's ``order_by``."""

    @field_validator("table", "watermark")
    @classmethod
    def _names(cls, value: str) -> str:
        return sql_name(value, "table or column")


class SqlDeletesDecl(_Model):
    """How deletes of one table are captured: a soft-delete column, a tombstone table, or both."""

    column: str | None = None
    """Soft delete: the row is deleted when this column is true (a boolean or a non-zero number) or, for
    any other type (``deleted_at``), not null; a delete must also move the row's watermark."""
    tombstones: TombstonesDecl | None = None
    """Hard delete: a table the database writes each deleted key to (by a trigger, say)."""

    @field_validator("column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return None if value is None else sql_name(value, "column")

    @model_validator(mode="after")
    def _one_way_at_least(self) -> SqlDeletesDecl:
        if self.column is None and self.tombstones is None:
            msg = "declare how deletes are seen: column (a soft-delete column), tombstones (a table of deleted keys), or both"
            raise ValueError(msg)
        return self


@register
class SqlDecl(RecordSourceDecl):
    """A SQL database read through SQLAlchemy: each dataset reads one table (its ``resource``)
    after a watermark (its ``order_by``) with its key as the tie-break."""

    kind: Literal["sql"] = "sql"
    url: str
    """A SQLAlchemy URL without a password: ``sqlite:///shop.db``, ``postgresql+psycopg://reader@db:5432/shop``."""
    password: SecretRef | None = None
    """The database password, by reference (never in ``url``): ``{env: SHOP_DB_PASSWORD}``."""
    db_schema: str | None = Field(default=None, alias="schema")
    """The schema that holds the tables (``public``); the connection's default schema when unset."""
    deletes: dict[str, SqlDeletesDecl] = {}
    """Per table (a dataset's ``resource``): how its deletes are captured; a table not named has no deletes."""
    lag: Interval = timedelta(0)
    """Rows whose watermark is within this of the window's end wait for a later window: set it above
    the longest write transaction, so that a row committed late with an older watermark is not skipped."""
    connect_args: dict[str, str | int | float | bool] = {}
    """Options passed to the database driver as they are (``{sslmode: require, connect_timeout: 10}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # the value is never echoed: a URL can hold a password
        m = _URL.match(value)
        if m is None:
            msg = "not a database URL: expected dialect[+driver]://..., such as sqlite:///shop.db or postgresql+psycopg://user@host/db"
            raise ValueError(msg)
        authority = m.group("rest").split("/", 1)[0]
        query = m.group("rest").partition("?")[2].lower()
        if ":" in authority.rpartition("@")[0] or re.search(r"(^|&)password=", query):
            msg = "the URL holds a password: remove it and declare password: {env: VAR} (or {prefect_secret: NAME}) instead"
            raise ValueError(msg)
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return None if value is None else sql_name(value, "schema")

    @field_validator("deletes")
    @classmethod
    def _tables(cls, value: dict[str, SqlDeletesDecl]) -> dict[str, SqlDeletesDecl]:
        for table in value:
            sql_name(table, "table")
        return value

    @model_validator(mode="after")
    def _lag_range(self) -> SqlDecl:
        if self.lag >= timedelta(hours=24):
            msg = "lag must be shorter than 24h (seconds to minutes is typical)"
            raise ValueError(msg)
        return self
