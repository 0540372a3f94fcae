"""Problems in a declaration, each reported with the file, the path inside it and what was expected."""

from __future__ import annotations

import re

from pydantic import ValidationError

from lakehouse.errors import ConfigError
from lakehouse.sources.declared import KINDS


class Problems:
    """The problems found in one file; :meth:`raise_if_any` reports them all at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        """Record a problem at ``where`` (a dotted path in the file)."""
        self.items.append(f"{self.path}: {where}: {message}")

    def raise_if_any(self) -> None:
        """Raise :class:`ConfigError` listing every problem, if there is any."""
        if self.items:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(self.items))


def format_pydantic(path: str, exc: ValidationError) -> str:
    """pydantic's errors as ``<file>: <path.in[0].file>: <message>`` lines."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        # drop pydantic's union-branch markers such as "str" / "ColumnDecl" from the path
        loc = re.sub(r"\.(str|int|float|bool|list\[str\]|ColumnDecl|function-after\[[^\]]*\]|function-before\[[^\]]*\])(?=\.|\[|$)", "", loc)
        # and the source kind that pydantic puts after a source's name
        loc = re.sub(rf"(\bsources\.[^.\[]+)\.(?:{'|'.join(map(re.escape, KINDS))})(?=\.|\[|$)", r"\1", loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the README's configuration reference)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {loc}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(dict.fromkeys(lines))
