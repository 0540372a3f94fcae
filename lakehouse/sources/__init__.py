"""Sources: where records come from (landed files) and how their text becomes typed rows."""
