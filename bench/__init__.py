"""The benchmark of issue 10: the engine against the Parquet floor, dlt and its own history (``python -m bench``)."""
