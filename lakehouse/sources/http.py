"""The ``http_api`` source: a JSON HTTP API read page by page, incrementally, with retries.

A dataset's ``resource`` is an endpoint path under the source's ``base_url``. A *listing*
is the sequence of pages one query returns (by a next-cursor field in the body, by page
number or by offset); with ``incremental`` declared, a listing asks only for records at or
after the watermark (``updated_since=<the newest updated_at seen>``), so a run reads what
changed. A batch is whole pages, at most ``max_batch_records`` records (a page larger than
that is a batch of its own), committed by bronze with the :class:`HttpCursor` after it: the
watermark, the records already read at it, and, in the middle of a listing, the listing's
next page. A crash between two batches resumes at the page after the last committed one.

The API may answer records *at* the watermark again (``updated_since`` is usually
inclusive, so that a record written later in the same second is not missed): a record
whose text was read before at that value is skipped, any other is landed.

Each record lands as its JSON object text (``_raw``, re-serialised compactly), with
``_source_position`` naming its page (``page 0000000003 GET orders?limit=100&cursor=…``:
a sequence number of the pages that landed records, so positions never repeat and sort in
reading order) and ``_line`` its place in the page.

Requests are retried (:mod:`lakehouse.sources.http_client`, on tenacity) with exponential
backoff and jitter after a connection error, a timeout, a 5xx or a 429 (whose
``Retry-After`` is honoured), at most ``retries`` times; then :class:`~lakehouse.errors.SourceUnavailable` (a retry of the window may cure
it). Any other 4xx (and a 3xx) raises :class:`~lakehouse.errors.SourceRefused` naming the
status and the URL, and nothing of that batch is committed. Credentials come from secrets
by reference and never appear in a message, a log record, a position or a cursor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import polars as pl

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, SourceRefused
from lakehouse.sources import base
from lakehouse.sources.declared import HttpApiDecl
from lakehouse.sources.http_client import REDACTED, Redact, Requester
from lakehouse.sources.secrets import resolve
from lakehouse.specs import Dataset

Token = str | int
"""A page's place in a listing: the API's next cursor, a page number or an offset."""


@dataclass(frozen=True)
class Listing:
    """A listing in progress: the watermark it asked from, what it skips there, and its next page."""

    since: Any
    skip: frozenset[str]
    page: Token


@dataclass(frozen=True)
class HttpCursor(base.Cursor):
    """Where an API dataset stands: the newest value seen of the incremental field, and more."""

    watermark: Any = None
    """The newest value of the incremental field landed (as the API wrote it); null before any."""
    at_watermark: frozenset[str] = frozenset()
    """Digests of the records landed whose value is the watermark (skipped when answered again)."""
    pages: int = 0
    """Pages that landed records so far: the sequence number of ``_source_position``."""
    listing: Listing | None = None
    """The listing a batch stopped in the middle of (null: the next read starts a new one)."""

    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON values: no credential, only values and digests of records."""
        listing = None if self.listing is None else {
            "since": self.listing.since, "skip": sorted(self.listing.skip), "page": self.listing.page,
        }
        return {"watermark": self.watermark, "at_watermark": sorted(self.at_watermark), "pages": self.pages,
                "listing": listing}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HttpCursor:
        """The cursor :meth:`to_json` wrote."""
        listing = data.get("listing")
        return cls(
            data.get("watermark"), frozenset(data.get("at_watermark") or ()), int(data.get("pages") or 0),
            None if listing is None else Listing(listing["since"], frozenset(listing["skip"]), listing["page"]),
        )


def _order(value: Any) -> tuple[int, Any]:
    """A sort key of an incremental value: a time (RFC 3339), else a number, else its text."""
    if isinstance(value, bool):
        return (2, str(value))
    if isinstance(value, int | float):
        return (1, float(value))
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (2, text)
    return (0, moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _path(body: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``data``, ``meta.next``) in ``body``; the body itself for ``""``."""
    for part in filter(None, dotted.split(".")):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


class HttpApiSource(base.RecordSource[HttpCursor]):
    """One dataset's endpoint of a declared ``http_api`` source."""

    kind = "http_api"

    def __init__(self, decl: HttpApiDecl, resource: str, *, name: str, secret: str | None = None) -> None:
        if "://" in resource or ".." in resource.split("/"):
            msg = f"{name}: resource {resource!r} must be a path under base_url (no scheme, no ..)"
            raise ConfigError(msg)
        self.decl, self.name, self.resource = decl, name, resource.strip("/")
        self.url = f"{decl.base_url}/{self.resource}"
        headers = dict(decl.headers)
        self.auth_params: dict[str, str] = {}
        if decl.auth is not None:
            if secret is None:
                msg = f"{name}: the source declares auth but no secret was given"
                raise ConfigError(msg)
            if decl.auth.type == "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            elif decl.auth.header is not None:
                headers[decl.auth.header] = secret
            else:
                assert decl.auth.query is not None
                self.auth_params[decl.auth.query] = secret
        self.redact = Redact(secret)
        self.redact.install()
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(decl.timeout), follow_redirects=False)
        self.requests = Requester(self.client, name=name, retries=decl.retries, backoff=decl.backoff,
                                  max_wait=decl.max_wait, redact=self.redact)

    # --- the cursor ---------------------------------------------------------------------------

    def start(self) -> HttpCursor:
        """Nothing read yet: the first listing asks from ``incremental.start`` (or from the beginning)."""
        return HttpCursor()

    def cursor_from(self, data: dict[str, Any]) -> HttpCursor:
        """The cursor a bronze commit recorded."""
        return HttpCursor.from_json(data)

    def describe(self) -> str:
        """The endpoint's URL (``_source``): ``base_url`` carries no credential, by declaration."""
        return self.url

    def probe(self) -> None:
        """One GET of the listing's first page, asking for one record: an unreachable API (after one retry),
        a refused credential or a body without its records raise as :meth:`read` would; nothing is landed."""
        params = self._params(None, self._first())
        p = self.decl.pagination
        if p.page_size_param and p.style != "none":
            params[p.page_size_param] = "1"
        shown = self._shown(params)
        url = f"{self.decl.base_url}/{shown}"
        once = Requester(self.client, name=self.name, retries=min(self.decl.retries, 1), backoff=self.decl.backoff,
                         max_wait=self.decl.max_wait, redact=self.redact)
        self._items(self._body(once.get(self.url, {**params, **self.auth_params}, shown=url), url), shown)

    def close(self) -> None:
        """Close the connections and stop redacting the client's log records."""
        self.client.close()
        self.redact.remove()

    # --- reading ------------------------------------------------------------------------------

    def read(self, cursor: HttpCursor, *, limit: base.Limit, until: datetime) -> Iterator[base.Batch[HttpCursor]]:
        """Batches of whole pages from the cursor's listing (or a new one from its watermark).

        ``until`` dates the records (``_landed_at``): an API does not say when a record
        arrived, and the window's end keeps a re-run's rows equal to the first run's.
        """
        incremental, pagination = self.decl.incremental, self.decl.pagination
        listing = cursor.listing
        if listing is None:
            since = cursor.watermark if cursor.watermark is not None else (incremental.start if incremental else None)
            skip = cursor.at_watermark if cursor.watermark is not None else frozenset()
            listing = Listing(since if incremental else None, skip if incremental else frozenset(), self._first())
        high, at_high, pages = cursor.watermark, set(cursor.at_watermark), cursor.pages
        frames: list[pl.DataFrame] = []
        count = size = 0
        first_page = pages + 1
        token: Token | None = listing.page
        while token is not None:
            body, shown = self._get(listing.since, token)
            items = self._items(body, shown)
            kept: list[str] = []
            for item in items:
                text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
                value = item.get(incremental.field) if incremental and isinstance(item, dict) else None
                if value is not None and listing.since is not None and _order(value) == _order(listing.since) \
                        and _digest(text) in listing.skip:
                    continue  # read before, at the watermark the listing asked from
                kept.append(text)
                if value is None:
                    continue
                if high is None or _order(value) > _order(high):
                    high, at_high = value, {_digest(text)}
                elif _order(value) == _order(high):
                    at_high.add(_digest(text))
            token = self._next(body, token, len(items), shown)
            if kept:
                pages += 1
                frames.append(base.records(kept, position=f"page {pages:010d} GET {shown}", landed_at=until))
                count, size = count + len(kept), size + sum(map(len, kept))
            after = HttpCursor(high, frozenset(at_high), pages,
                               None if token is None else Listing(listing.since, listing.skip, token))
            if token is None or (count and (count + pagination.page_size > limit.records or size >= limit.bytes)):
                records = pl.concat(frames) if frames else base.records([], position="", landed_at=until)
                yield base.Batch(records, after, {"pages": pages - first_page + 1, "first_page": first_page} if frames else {})
                frames, count, size, first_page = [], 0, 0, pages + 1

    def _first(self) -> Token:
        """The token of a listing's first page (a cursor listing's first page sends none)."""
        style = self.decl.pagination.style
        return self.decl.pagination.first_page if style == "page" else 0

    def _params(self, since: Any, token: Token) -> dict[str, str]:
        p, incremental = self.decl.pagination, self.decl.incremental
        params = dict(self.decl.params)
        if p.page_size_param and p.style != "none":
            params[p.page_size_param] = str(p.page_size)
        if incremental is not None and since is not None:
            params[incremental.param] = str(since)
        if p.style == "cursor" and token != 0:
            params[p.cursor_param] = str(token)
        elif p.style == "page":
            params[p.page_param] = str(token)
        elif p.style == "offset":
            params[p.offset_param] = str(token)
        return params

    def _next(self, body: Any, token: Token, n: int, shown: str) -> Token | None:
        """The token of the page after ``token`` (null: that was the last page)."""
        p = self.decl.pagination
        if p.style == "cursor":
            following = _path(body, p.next_cursor)
            if following is None or following == "":
                return None
            if following == token:
                msg = f"{self.name}: GET {shown} answered its own cursor as the next one ({p.next_cursor}): the listing would not end"
                raise SourceRefused(msg)
            return following if isinstance(following, int | str) else json.dumps(following)
        if p.style == "none" or n < p.page_size or n == 0:
            return None
        return int(token) + (1 if p.style == "page" else n)

    def _items(self, body: Any, shown: str) -> list[Any]:
        items = _path(body, self.decl.records)
        if not isinstance(items, list):
            keys = f" (its members: {', '.join(map(str, body))})" if isinstance(body, dict) else ""
            msg = f"{self.name}: GET {shown}: the body has no list of records at {self.decl.records or 'its top'!r}{keys}: check records: in the source"
            raise ConfigError(msg)
        return items

    def _shown(self, params: dict[str, str]) -> str:
        """The request's path and query as messages and positions show it: credentials redacted."""
        query = urlencode(params)
        for name in self.auth_params:
            query += f"{'&' if query else ''}{quote(name)}={REDACTED}"
        return f"{self.resource}?{query}" if query else self.resource

    def _get(self, since: Any, token: Token) -> tuple[Any, str]:
        """The JSON body of one page, after retries; and the request as it may be shown."""
        params = self._params(since, token)
        shown = self._shown(params)
        url = f"{self.decl.base_url}/{shown}"
        return self._body(self.requests.get(self.url, {**params, **self.auth_params}, shown=url), url), shown

    def _body(self, response: httpx.Response, url: str) -> Any:
        """The JSON body of a final answer; a 3xx or 4xx is a refusal."""
        if response.status_code >= 300:
            hint = " (check the source's auth and its secret)" if response.status_code in (401, 403) else ""
            msg = f"{self.name}: GET {url} answered {response.status_code} {response.reason_phrase}{hint}: nothing was committed"
            raise SourceRefused(msg)
        try:
            return response.json()
        except ValueError:
            msg = f"{self.name}: GET {url} answered {response.status_code} with a body that is not JSON"
            raise ConfigError(msg) from None


@base.register("http_api")
def open_http_api(dataset: Dataset, settings: Settings) -> HttpApiSource:
    """The reader of an ``http_api`` dataset: its endpoint, with the secret its auth names."""
    del settings  # an API needs nothing of the warehouse's settings
    decl = dataset.connection
    assert isinstance(decl, HttpApiDecl)
    secret = None if decl.auth is None else resolve(decl.auth.secret, what=f"sources.{dataset.source}.auth").get_secret_value()
    return HttpApiSource(decl, dataset.resource, name=f"sources.{dataset.source} ({dataset.resource})", secret=secret)
