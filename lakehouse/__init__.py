"""The engine: declarations, sources, layers, quality gates and exactly-once commits (no Prefect here)."""
