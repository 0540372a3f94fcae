"""Tools for development and tests: the shop simulator, the moto server, the fault proxy, crash points."""
