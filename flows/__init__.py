"""Prefect flows: orchestration only; every step is a task from ``tasks/``."""
