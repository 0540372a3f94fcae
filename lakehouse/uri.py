"""Keys, URIs and paths: joining them and keeping them under their root.

A leaf module (it imports nothing of the lakehouse), so that settings and storage can both
use it without importing each other.
"""

from __future__ import annotations


class UnsafeKey(ValueError):
    """A key or prefix that would reach outside its store's root (``..``, an absolute path, a link out)."""


def unsafe_reason(key: str) -> str | None:
    """Why ``key`` (or a prefix) could leave the root it is relative to, or None when it cannot.

    >>> unsafe_reason("orders/2026/part-0.jsonl") is None
    True
    >>> unsafe_reason("../../outside")
    "'..' is not allowed in a landing key or prefix (it leaves the landing root)"
    """
    if key.startswith(("/", "~")) or (len(key) > 1 and key[1] == ":"):
        return "an absolute path is not allowed in a landing key or prefix (keys are relative to the landing root)"
    if "\\" in key or any(ord(ch) < 32 for ch in key):
        return "a backslash or a control character is not allowed in a landing key or prefix"
    parts = key.split("/")
    if ".." in parts:
        return "'..' is not allowed in a landing key or prefix (it leaves the landing root)"
    if "." in parts:
        return "'.' is not allowed as a part of a landing key or prefix"
    return None


def confined(key: str) -> str:
    """``key``, or :class:`UnsafeKey` when it could leave its store's root."""
    reason = unsafe_reason(key)
    if reason is not None:
        msg = f"{key!r}: {reason}"
        raise UnsafeKey(msg)
    return key


def is_s3(uri: str) -> bool:
    """Whether ``uri`` is an ``s3://`` URI."""
    return uri.startswith("s3://")


def join(root: str, *parts: str) -> str:
    """Join URI or path parts with single slashes."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts if p)])
