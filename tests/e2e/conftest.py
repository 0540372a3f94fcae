"""The e2e tests' session fixtures, the `lakehouse serve` stack (``served``, see serving.py)
and the demo (``demo``), live in tests/conftest.py: its ``_head_start`` starts them as the
session begins, whichever test comes first, so they must be visible to every test."""
