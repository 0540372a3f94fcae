"""Prefect flows: orchestration only; every step is a task from ``tasks/``.

``flows/cli.py`` is not a flow: it is the command line, outermost (it may import
``deployments/``; no flow imports it).
"""
