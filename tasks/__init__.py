"""Thin Prefect tasks around the ``lakehouse`` engine: retries, timeouts, tags, artifacts."""


def _prefect_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name`` (for sources' ``prefect_secret`` references)."""
    from prefect.blocks.system import Secret

    value = Secret.load(name).get()  # pyright: ignore[reportAttributeAccessIssue] (sync in a sync context)
    return str(value)


def _register() -> None:
    from lakehouse.sources.secrets import register_resolver

    register_resolver("prefect_secret", _prefect_secret)


_register()
