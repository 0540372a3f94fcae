"""``${VAR}`` and ``${VAR:-default}`` in the declaration's string values: connections by configuration.

A value such as ``url: ${SHOP_DB_URL:-sqlite:///.lakehouse/shop.db}`` takes the environment
variable when it is set (and not empty), else the default after ``:-``; ``${VAR}`` without a
default must be set, or the file is invalid with the variable and the path that names it.
``$${`` writes a literal ``${``. Only values are substituted, never keys, and only whole
strings of the YAML (a number or a boolean stays what YAML made it). Secrets stay references
(``token: {env: SHOP_API_TOKEN}``): a substituted value is plain configuration, and the
source models still refuse a password in a URL or a credential header.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from lakehouse.declaration.errors import Problems

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


def substitute(value: Any, problems: Problems, *, where: str = "", env: Mapping[str, str] | None = None) -> Any:
    """``value`` (the loaded YAML) with every ``${VAR}`` / ``${VAR:-default}`` of its strings replaced.

    A variable that is unset (or empty) and has no default, or a malformed reference, is a
    problem at its path. Example::

        substitute({"url": "${DB:-sqlite:///x.db}"}, problems)  # {"url": "sqlite:///x.db"} when DB is unset
    """
    environ = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: substitute(v, problems, where=f"{where}.{k}" if where else str(k), env=environ)
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, problems, where=f"{where}[{i}]", env=environ) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _one(value, problems, where, environ)
    return value


def _one(text: str, problems: Problems, where: str, environ: Mapping[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default, bad = m.group(1), m.group(2), m.group(3)
        if name is None:
            problems.add(where, f"malformed variable reference ${{{bad or ''}}}: "
                                "expected ${NAME} or ${NAME:-default} (NAME: letters, digits and _)")
            return ""
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        problems.add(where, f"the environment variable {name} is not set and ${{{name}}} has no default: "
                            f"set {name}, or write ${{{name}:-default}}")
        return ""

    return _REFERENCE.sub(replace, text)
