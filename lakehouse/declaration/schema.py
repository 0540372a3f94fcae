"""The declaration file's schema: typed models of the YAML, validated by pydantic.

Each model forbids unknown fields, so a misspelt key is reported where it is. A check's
fields come from the registry of check kinds (:mod:`lakehouse.checks`): :func:`file_model`
builds the models from it, again whenever a kind is registered.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from lakehouse import checks
from lakehouse.sources.declared import KINDS, LandingFilesDecl, confined_prefix, source_type
from lakehouse.specs import SILVER_FILE_SIZE, Level, UnknownFields

SourceDecl = LandingFilesDecl
"""The landing-files source (the default ``kind``); every kind is in :mod:`lakehouse.sources.declared`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnDecl(_Model):
    """A column as declared: its type, nullability and how it is derived."""

    type: str
    nullable: bool = True
    """``false``: a record whose value is null or absent is quarantined."""
    derive: str | None = None
    strings_as_numbers: bool | None = None
    """``true``: this int64/float64 column also accepts a JSON string holding the number."""


class CheckBase(_Model):
    """One check: exactly one of the kind keys, plus its options (the fields come from the
    registry of kinds, :func:`file_model`)."""

    max_percent: float = Field(default=0.0, ge=0, le=100)
    level: Level = "fail"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> CheckBase:
        found = [k for k in checks.kinds() if k.value(self) is not None]
        if len(found) != 1:
            msg = (
                f"a check has exactly one of {', '.join(k.name for k in checks.kinds())}; "
                f"found {', '.join(k.name for k in found) or 'none'}"
            )
            raise ValueError(msg)
        kind = found[0]
        kind.validate(self)
        for other in checks.kinds():
            if other is not kind and any(getattr(self, o, None) is not None for o in other.exclusive):
                raise ValueError(other.exclusive_message)
        return self

    @property
    def kind(self) -> str:
        """The name of the check's kind: the one kind key it sets."""
        return next(k.name for k in checks.kinds() if k.value(self) is not None)

    def columns(self) -> list[str]:
        """The columns the check names."""
        return checks.kind_of(self.kind).columns(self)


class DatasetBase(_Model):
    """A kind of record in a source: its bronze table and its silver table."""

    source: str
    prefix: str | None = None
    """Where the dataset's files land under a ``landing_files`` source's prefix (its name unless set)."""
    resource: str | None = None
    """What the dataset reads in any other kind of source: an endpoint path, a table, a stream (its name unless set)."""
    columns: dict[str, str | ColumnDecl]
    key: list[str] | str
    order_by: str | None = None
    partition_by: str | None = None
    zorder: list[str] | str = []
    """Columns to z-order the silver table's files by (maintenance), not the partition column."""
    description: str = ""
    strings_as_numbers: bool = False
    """``true``: every int64/float64 column also accepts a JSON string holding the number."""
    unknown_fields: UnknownFields = "warn"
    """Members of a record that are not columns: ``warn`` counts them, ``fail`` quarantines the
    record, ``evolve`` adds them to the silver table as columns (:mod:`lakehouse.layers.silver.evolve`)."""
    target_file_size: int = Field(default=SILVER_FILE_SIZE, ge=64 * 1024)
    """Bytes the silver table's merges and compaction aim at per file (``delta.targetFileSize``)."""
    history: Literal["scd1", "scd2"] = "scd1"
    """How silver keeps a key's versions: ``scd1`` the latest only, ``scd2`` one row per version of the
    ``tracked`` columns with ``valid_from``, ``valid_to``, ``is_current`` (:mod:`lakehouse.layers.silver.scd2`)."""
    tracked: list[str] | None = None
    """``history: scd2``: the columns whose change opens a new version (the others are updated in place)."""

    @field_validator("prefix")
    @classmethod
    def _confined(cls, value: str | None) -> str | None:
        return None if value is None else confined_prefix(value)

    def key_columns(self) -> list[str]:
        """The key as a list of columns."""
        return [self.key] if isinstance(self.key, str) else list(self.key)


class IncrementalDecl(_Model):
    """An additive model: maintained from its inputs' changes instead of recomputing partitions."""

    by: str
    """The entity column, in every input: each result row sums what each entity's rows contribute."""
    count: str
    """A result column counting the rows each entity contributes (a row whose count falls to 0 is removed)."""


EVENT_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
"""A Prefect event name as the lakehouse writes them: dotted lower-case words (``lakehouse.stock.low``)."""


class EventDecl(_Model):
    """A Prefect event for each row a gold commit inserts (new by the model's key)."""

    name: str
    """The event's name, dotted lower-case words: ``lakehouse.stock.low``."""
    resource_name: str | None = None
    """A result column whose value names the event's resource (``prefect.resource.name``); default: the key."""

    @field_validator("name")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not re.match(EVENT_NAME, value):
            msg = f"{value!r} is not an event name: dotted lower-case words, such as lakehouse.stock.low"
            raise ValueError(msg)
        return value


class ModelBase(_Model):
    """A gold model: SQL over silver tables, partitioned by a column of its result."""

    sql: str
    partition_by: str
    key: list[str] | str | None = None
    incremental: IncrementalDecl | None = None
    """Maintain the model from changes (an additive aggregate); without it, touched partitions are recomputed."""
    touched: Literal["result", "inputs"] = "result"
    """How the partitions a change touches are found: ``result``, those of the model's result over the
    changed rows; ``inputs``, also the partition column's values in the changed rows of every input
    (each input has the column): for a model whose rows depend on all of a partition's input rows
    (a running total over a product's events), which the changed rows alone do not reproduce."""
    event: EventDecl | None = None
    """Emit a Prefect event for each row a commit inserts (new by key): ``{name: lakehouse.stock.low}``."""
    zorder: list[str] | str = []
    """Columns to z-order the gold table's files by (maintenance), not the partition column."""
    description: str = ""

    def key_columns(self) -> list[str]:
        """The key as a list of columns (none if undeclared)."""
        if self.key is None:
            return []
        return [self.key] if isinstance(self.key, str) else list(self.key)


def _check_fields() -> dict[str, Any]:
    """Each registered kind's key and options as optional fields (the first kind to name an option types it)."""
    fields: dict[str, Any] = {}
    for kind in checks.kinds():
        attribute = kind.attribute()
        alias: dict[str, Any] = {"alias": kind.name} if attribute != kind.name else {}
        fields.setdefault(attribute, (kind.value_type | None, Field(default=None, **alias)))
        for option, (annotation, default) in kind.options.items():
            fields.setdefault(option, (annotation, default))
    return fields


@functools.cache
def _models(version: int, kinds: tuple[str, ...]) -> type[BaseModel]:
    # the models are built at run time: their fields are passed as a mapping of values, since a
    # type checker cannot read a type made at run time (``list[check]``) as a type expression
    check = create_model("CheckDecl", __base__=CheckBase, **_check_fields())
    checks_field: dict[str, Any] = {"checks": (list[check], [])}
    dataset = create_model("DatasetDecl", __base__=DatasetBase, **checks_field)
    model = create_model("ModelDecl", __base__=ModelBase, **checks_field)
    pipeline_fields: dict[str, Any] = {
        "sources": (dict[str, source_type()], ...), "datasets": (dict[str, dataset], ...), "gold": (dict[str, model], {}),
    }
    pipeline = create_model("PipelineDecl", __base__=_Model, **pipeline_fields)
    file_fields: dict[str, Any] = {"pipelines": (dict[str, pipeline], ...)}
    return create_model("FileDecl", __base__=_Model, **file_fields)


def file_model() -> type[BaseModel]:
    """The model of a whole declaration file, for the check and source kinds registered now."""
    return _models(checks.version(), tuple(KINDS))
