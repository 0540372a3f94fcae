"""``${VAR}`` / ``${VAR:-default}`` in a declaration's string values (lakehouse/declaration/variables.py)."""

from __future__ import annotations

import pytest

from lakehouse.declaration import load, parse
from lakehouse.errors import ConfigError

YAML = """
pipelines:
  p:
    sources:
      db: {kind: sql, url: "URL"}
    datasets:
      d: {source: db, columns: {k: string, t: timestamp}, key: k, order_by: t}
"""


def url_of(url: str) -> str:
    return parse(YAML.replace("URL", url), path="p.yaml").pipeline("p").dataset("d").connection.url


def test_a_set_variable_wins_over_the_default_and_an_unset_or_empty_one_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_DB", "sqlite:///set.db")
    assert url_of("${T_DB:-sqlite:///default.db}") == "sqlite:///set.db"
    monkeypatch.setenv("T_DB", "")
    assert url_of("${T_DB:-sqlite:///default.db}") == "sqlite:///default.db"
    monkeypatch.delenv("T_DB")
    assert url_of("${T_DB:-sqlite:///default.db}") == "sqlite:///default.db"
    monkeypatch.setenv("T_DIR", "/data")
    assert url_of("sqlite:///${T_DIR}/shop.db") == "sqlite:////data/shop.db"  # inside a longer value


def test_an_unset_variable_without_default_names_the_variable_and_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_UNSET", raising=False)
    with pytest.raises(ConfigError) as caught:
        url_of("${T_UNSET}")
    assert ("p.yaml: pipelines.p.sources.db.url: the environment variable T_UNSET is not set and ${T_UNSET} "
            "has no default: set T_UNSET, or write ${T_UNSET:-default}") in str(caught.value)


def test_a_malformed_reference_is_refused_and_an_escaped_one_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"pipelines\.p\.sources\.db\.url: malformed variable reference \$\{1X\}"):
        url_of("${1X}")
    with pytest.raises(ConfigError, match=r"malformed variable reference \$\{T_DB:-x"):
        url_of("${T_DB:-x")  # never closed
    parsed = parse(YAML.replace("URL", "sqlite:///a.db").replace("columns:", "description: '$${not_a_variable}', columns:"))
    assert parsed.pipeline("p").dataset("d").spec.description == "${not_a_variable}"


def test_loading_a_file_again_sees_a_changed_variable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(YAML.replace("URL", "${T_DB:-sqlite:///default.db}"))
    monkeypatch.setenv("T_DB", "sqlite:///one.db")
    assert load(path).pipeline("p").dataset("d").connection.url == "sqlite:///one.db"
    monkeypatch.setenv("T_DB", "sqlite:///two.db")
    assert load(path).pipeline("p").dataset("d").connection.url == "sqlite:///two.db"  # not a stale cached parse
