"""Thin Prefect tasks around the ``lakehouse`` engine: retries, timeouts, tags, artifacts."""
