"""Object storage: the warehouse and the landing area, on S3 (or moto) or a local path.

Everything that lists, reads or writes raw objects goes through an :class:`ObjectStore`;
Delta tables are opened with :func:`storage_options`, so one settings object configures
boto3 and delta-rs alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlparse

from typing_extensions import override

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, SourceUnavailable, StorageMissing, one_line, reported
from lakehouse.uri import UnsafeKey, confined, is_s3, join, unsafe_reason

__all__ = [
    "ObjectInfo", "ObjectStore", "LocalStore", "S3Store", "UnsafeKey", "confined", "is_s3", "join",
    "unsafe_reason", "is_loopback", "plain_http", "s3_client", "open_store", "storage_options",
]


@dataclass(frozen=True, order=True)
class ObjectInfo:
    """One object in a store: its key relative to the store's root, and its version."""

    key: str
    size: int
    last_modified: datetime
    etag: str


class ObjectStore(Protocol):
    """A flat key space under a root URI (``s3://bucket/prefix`` or a local folder)."""

    root: str

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` as object ``key`` (replacing it)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes of object ``key``."""
        ...

    def list(self, prefix: str = "", *, start_after: str | None = None) -> list[ObjectInfo]:
        """Objects under ``prefix`` (and, with ``start_after``, keys after it), sorted by key."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Delete these objects (a missing one is no error)."""
        ...


class LocalStore(ObjectStore):
    """An object store in a local folder (tests, laptops without S3)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self._path = Path(root)

    def _inside(self, key: str) -> Path:
        """The path of ``key``; :class:`UnsafeKey` if it, or a symbolic link on the way, leads out of the root."""
        path = self._path / confined(key)
        root = self._path.resolve()
        if not path.resolve().is_relative_to(root):
            msg = f"{key!r}: a symbolic link to {path.resolve()}, outside the landing root {root}"
            raise UnsafeKey(msg)
        return path

    @override
    def put(self, key: str, data: bytes) -> None:
        path = self._inside(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    @override
    def get(self, key: str) -> bytes:
        return self._inside(key).read_bytes()

    @override
    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self._path / key).unlink(missing_ok=True)

    @override
    def list(self, prefix: str = "", *, start_after: str | None = None) -> list[ObjectInfo]:
        base = self._path / confined(prefix) if prefix else self._path
        if not base.exists():
            return []
        out = []
        # a prefix that is a whole key lists that object, as S3 does
        for path in [base] if base.is_file() else base.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                stat = path.stat()
                key = path.relative_to(self._path).as_posix()
                if start_after is not None and key <= start_after:
                    continue
                etag = f"{stat.st_size}-{stat.st_mtime_ns}"
                modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                out.append(ObjectInfo(key, stat.st_size, modified, etag))
        return sorted(out)


class S3Client(Protocol):
    """The calls of a boto3 S3 client that the project makes (boto3 ships no type hints)."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def delete_objects(self, **kwargs: Any) -> Any: ...
    def create_bucket(self, **kwargs: Any) -> Any: ...
    def get_paginator(self, operation_name: str) -> Any: ...
    def upload_file(self, filename: str, bucket: str, key: str) -> None: ...
    def download_file(self, bucket: str, key: str, filename: str) -> None: ...


class S3Store(ObjectStore):
    """An object store under ``s3://bucket/prefix``, through boto3."""

    def __init__(self, root: str, client: S3Client) -> None:
        parsed = urlparse(root)
        self.root = root
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self._client = client

    def _key(self, key: str) -> str:
        confined(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @override
    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    @override
    def get(self, key: str) -> bytes:
        resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        return resp["Body"].read()

    @override
    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            resp = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            if resp.get("Errors"):
                first = resp["Errors"][0]
                msg = (
                    f"cannot delete {len(resp['Errors'])} objects under {self.root}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
                raise OSError(msg)

    @override
    def list(self, prefix: str = "", *, start_after: str | None = None) -> list[ObjectInfo]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        out = []
        extra = {"StartAfter": self._key(start_after)} if start_after is not None else {}
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), **extra):
                for obj in page.get("Contents", []):
                    out.append(
                        ObjectInfo(
                            key=obj["Key"][strip:],
                            size=obj["Size"],
                            last_modified=obj["LastModified"].astimezone(UTC),
                            etag=obj["ETag"].strip('"'),
                        )
                    )
        except Exception as exc:  # botocore raises many unrelated classes for "down"
            error = reported(exc, roots=(self.root,))
            if isinstance(error, StorageMissing):
                raise error from exc  # no retry creates a bucket
            msg = f"cannot list {join(self.root, prefix)}: {one_line(str(exc))}"
            raise SourceUnavailable(msg) from exc
        return sorted(out)


_LOOPBACK = ("localhost", "::1")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    return host in _LOOPBACK or host.endswith(".localhost") or host.startswith("127.")


def plain_http(settings: Settings) -> bool:
    """Whether the S3 endpoint is plain ``http://``; :class:`ConfigError` unless that is safe or allowed.

    Plain HTTP is accepted for a loopback endpoint (the embedded moto server, a local MinIO)
    and otherwise only with ``LAKEHOUSE_S3_ALLOW_HTTP=true`` (or ``AWS_ALLOW_HTTP=true``):
    credentials and data would cross the network in clear text.
    """
    endpoint = settings.aws_endpoint_url
    if not endpoint:
        return False
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https"):
        msg = f"AWS_ENDPOINT_URL {endpoint!r}: expected an http:// or https:// URL"
        raise ConfigError(msg)
    if parsed.scheme == "https":
        return False
    if not is_loopback(parsed.hostname) and not settings.s3_allow_http:
        msg = (
            f"AWS_ENDPOINT_URL {endpoint!r} is plain http to a host that is not loopback: use https, "
            "or set LAKEHOUSE_S3_ALLOW_HTTP=true to send credentials and data unencrypted"
        )
        raise ConfigError(msg)
    return True


def s3_client(settings: Settings) -> S3Client:
    """A boto3 S3 client: TLS verified (the system's CA bundle, or ``AWS_CA_BUNDLE``) unless
    ``LAKEHOUSE_S3_VERIFY_TLS=false``; a plain-http endpoint only as :func:`plain_http` allows."""
    import boto3

    plain_http(settings)
    client = boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id.get_secret_value()
        if settings.aws_access_key_id
        else None,
        aws_secret_access_key=settings.aws_secret_access_key.get_secret_value()
        if settings.aws_secret_access_key
        else None,
        region_name=settings.aws_region,
        verify=None if settings.s3_verify_tls else False,  # None: botocore's default, verified
    )
    return cast(S3Client, client)


def open_store(root: str, settings: Settings) -> ObjectStore:
    """Open the object store at ``root`` (an ``s3://`` URI or a local path)."""
    if is_s3(root):
        return S3Store(root, s3_client(settings))
    os.makedirs(root, exist_ok=True)
    return LocalStore(root)


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs storage options for the warehouse (empty for a local path).

    Certificates are verified (delta-rs' default) unless ``LAKEHOUSE_S3_VERIFY_TLS=false``
    (``AWS_ALLOW_INVALID_CERTIFICATES``); ``AWS_ALLOW_HTTP`` is set only for a plain-http
    endpoint that :func:`plain_http` accepts.
    """
    if not is_s3(settings.warehouse):
        return {}
    opts = {"AWS_REGION": settings.aws_region}
    if settings.aws_endpoint_url:
        opts["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
        if plain_http(settings):
            opts["AWS_ALLOW_HTTP"] = "true"
    if not settings.s3_verify_tls:
        opts["AWS_ALLOW_INVALID_CERTIFICATES"] = "true"
    if settings.aws_access_key_id:
        opts["AWS_ACCESS_KEY_ID"] = settings.aws_access_key_id.get_secret_value()
    if settings.aws_secret_access_key:
        opts["AWS_SECRET_ACCESS_KEY"] = settings.aws_secret_access_key.get_secret_value()
    return opts
