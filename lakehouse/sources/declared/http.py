"""``kind: http_api``: a JSON HTTP API read page by page (:mod:`lakehouse.sources.http`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lakehouse.sources.declared.base import DeclModel, RecordSourceDecl, SecretRef, register


def _not_inline(value: Any) -> Any:
    """A secret written as a plain value is refused without echoing it."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        msg = "a secret is never written inline: reference it, as {env: VARIABLE} or {prefect_secret: BLOCK}"
        raise ValueError(msg)
    return value


class AuthDecl(DeclModel):
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


class PaginationDecl(DeclModel):
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


class IncrementalDecl(DeclModel):
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

    def resource_problem(self, resource: str | None, *, dataset: str) -> str | None:
        """A dataset's ``resource`` is a path under ``base_url``."""
        del dataset
        if resource is not None and ("://" in resource or ".." in resource.split("/")):
            return f"{resource!r} must be a path under base_url (no scheme, no ..)"
        return None

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
