"""An ``http_api`` source is declared in YAML; ``lakehouse validate`` says precisely what is wrong with one."""

from __future__ import annotations

import pytest

from lakehouse.declaration.build import parse
from lakehouse.errors import ConfigError
from lakehouse.sources.declared import HttpApiDecl

SOURCE = """{kind: http_api, base_url: 'https://api.example.com/v1', auth: {type: bearer, token: {env: SHOP_API_TOKEN}},
           pagination: {style: cursor, page_size: 50}, incremental: {field: updated_at, param: updated_since}}"""
YAML = """
pipelines:
  shop:
    sources:
      api: SOURCE
    datasets:
      orders:
        source: api
        resource: v2/orders
        columns: {order_id: string, updated_at: timestamp}
        key: order_id
"""
WHERE = "lakehouse.yaml: pipelines.shop.sources.api"


def problems(source: str) -> str:
    with pytest.raises(ConfigError) as bad:
        parse(YAML.replace("SOURCE", source))
    return str(bad.value)


def test_a_declared_api_source_gives_its_datasets_an_endpoint() -> None:
    dataset = parse(YAML.replace("SOURCE", SOURCE)).pipeline("shop").dataset("orders")
    decl = dataset.connection
    assert isinstance(decl, HttpApiDecl)
    assert (dataset.kind, dataset.resource, decl.base_url, decl.pagination.page_size) == ("http_api", "v2/orders", "https://api.example.com/v1", 50)
    assert decl.auth is not None and str(decl.auth.secret) == "env:SHOP_API_TOKEN"
    assert decl.incremental is not None and decl.incremental.param == "updated_since"


def test_every_field_of_the_api_models_has_a_one_line_docstring() -> None:
    import ast
    import inspect
    import textwrap

    from lakehouse.sources import declared as sources

    for model in (sources.HttpApiDecl, sources.AuthDecl, sources.PaginationDecl, sources.IncrementalDecl):
        body = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
        assert isinstance(body, ast.ClassDef)
        statements = body.body
        fields = [(i, s.target.id) for i, s in enumerate(statements)
                  if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.target.id != "kind"]
        assert {n for _, n in fields} == set(model.model_fields) - {"kind"} - set(sources.RecordSourceDecl.model_fields)
        for i, name in fields:
            after = statements[i + 1] if i + 1 < len(statements) else None
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)
            assert documented, f"{model.__name__}.{name} has no docstring"


@pytest.mark.parametrize(("source", "expected"), [
    ("{kind: http_api, auth: {type: bearer, token: {env: T}}}", f"{WHERE}.base_url: required field is missing"),
    ("{kind: http_api, base_url: 'https://h', auth: {type: bearer, token: tok-inline-9d41}}",
     f"{WHERE}.auth.token: a secret is never written inline: reference it, as {{env: VARIABLE}} or {{prefect_secret: BLOCK}}"),
    ("{kind: http_api, base_url: 'https://h', pagination: {style: pages}}",
     f"{WHERE}.pagination: unknown pagination style 'pages' (styles: cursor, page, offset, none)"),
    ("{kind: http_api, base_url: 'https://h', auth: {type: api_key, key: {env: K}}}",
     f"{WHERE}.auth: api_key auth takes a key (a secret reference) and exactly one of header (a header name) or query"),
    ("{kind: http_api, base_url: 'https://user:pw-inline-77@h'}",
     f"{WHERE}.base_url: base_url must not carry credentials (user:password@): declare them under auth, by reference"),
    ("{kind: http_api, base_url: 'ftp://h'}", f"{WHERE}.base_url: base_url must be an http:// or https:// URL with a host"),
    ("{kind: http_api, base_url: 'https://h', headers: {Authorization: Bearer tok-inline-9d41}}",
     f"{WHERE}.headers: header Authorization carries a credential: declare it under auth, by reference (never inline)"),
    ("{kind: http_api, base_url: 'https://h', retries: -1, timeout: 0}",
     f"{WHERE}.retries: Input should be greater than or equal to 0"),
    ("{kind: http_api, base_url: 'https://h', pagination: {style: page, page_sise: 10}}",
     f"{WHERE}.pagination.page_sise: unknown field"),
])
def test_a_malformed_api_source_is_explained_precisely_without_echoing_a_secret(source: str, expected: str) -> None:
    message = problems(source)
    assert expected in message, message
    assert "tok-inline-9d41" not in message and "pw-inline-77" not in message
