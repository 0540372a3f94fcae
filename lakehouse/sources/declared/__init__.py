"""The declared kinds of source: one validated model per ``kind:`` of the pipeline YAML.

The options of each kind are the spec of its source: the declaration validates the YAML
with these models, and the readers in :mod:`lakehouse.sources` take them as they are. The
shared parts (every kind's fields, ``landing_files``, secrets by reference, the registry of
kinds) are in :mod:`.base`; each other kind's model is a module of its own, registered when
this package is imported.
"""

from __future__ import annotations

from lakehouse.sources.declared.base import (
    KINDS,
    DeclModel,
    LandingFilesDecl,
    RecordSourceDecl,
    SecretRef,
    SourceBase,
    confined_prefix,
    register,
    source_type,
)
from lakehouse.sources.declared.http import AuthDecl, HttpApiDecl, IncrementalDecl, PaginationDecl
from lakehouse.sources.declared.kinesis import KinesisDecl
from lakehouse.sources.declared.sql import SqlDecl, SqlDeletesDecl, TombstonesDecl, sql_name

__all__ = [
    "KINDS", "AuthDecl", "DeclModel", "HttpApiDecl", "IncrementalDecl", "KinesisDecl", "LandingFilesDecl", "PaginationDecl",
    "RecordSourceDecl", "SecretRef", "SourceBase", "SqlDecl", "SqlDeletesDecl", "TombstonesDecl", "confined_prefix",
    "register", "source_type", "sql_name",
]
