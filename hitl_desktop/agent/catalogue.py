"""The catalogue: what of the target database the agent may see and change, reflected once.

Table and column names that reach SQL come only from here, never from a proposal's strings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args

import sqlalchemy as sa

from . import name_lists
from ._bind import run_sync
from .errors import CatalogueError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

ColumnKind = Literal[
    "integer", "float", "decimal", "text", "boolean", "date", "datetime", "json", "other"
]
COLUMN_KINDS: tuple[ColumnKind, ...] = get_args(ColumnKind)

RESERVED_PREFIX = "hitl_"
"""Tables of ours in the target database (the apply step's markers) are never in a catalogue."""


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    kind: ColumnKind
    sql_type: str
    nullable: bool
    has_default: bool = False
    autoincrement: bool = False
    primary_key: bool = False
    generated: bool = False
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    timezone: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        """An insert must give this column a value."""
        return not (self.nullable or self.has_default or self.autoincrement or self.generated)

    @property
    def writable(self) -> bool:
        return not self.generated and self.kind != "other"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "sql_type": self.sql_type}
        data.update(nullable=self.nullable, required=self.required, writable=self.writable)
        for name in ("autoincrement", "primary_key", "has_default", "generated", "timezone"):
            if getattr(self, name):
                data[name] = True
        for name in ("max_length", "precision", "scale", "choices"):
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data

    def _flag(self, name: str) -> bool:
        return self.nullable if name == "nullable" else self.has_default

    def describe(self) -> str:
        kind: str = self.kind
        if self.kind == "text" and self.max_length is not None:
            kind = f"text({self.max_length})"
        elif self.kind == "decimal" and self.precision is not None:
            kind = f"decimal({self.precision},{self.scale or 0})"
        elif self.kind == "datetime" and self.timezone:
            kind = "datetime with timezone"
        flags = [kind]
        if self.generated:
            flags.append("read-only")
        elif self.autoincrement:
            flags.append("auto")
        elif self.required:
            flags.append("required")
        else:
            flags.extend(name for name in ("nullable", "default") if self._flag(name))
        if self.choices:
            flags.append("one of " + "|".join(self.choices))
        if self.kind == "other":
            flags.append("not writable")
        return " ".join(flags)


@dataclass(frozen=True, slots=True)
class ForeignKeyInfo:
    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None

    def describe(self) -> str:
        cols, refs = ", ".join(self.columns), ", ".join(self.ref_columns)
        return f"({cols}) -> {self.ref_table}({refs})"

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "ref_table": self.ref_table,
            "ref_columns": list(self.ref_columns),
        }


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table as the agent sees it: only its visible columns."""

    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKeyInfo, ...] = ()
    hidden_required: bool = False
    """A column the agent cannot see must be given on insert, so inserts are impossible."""

    def column(self, name: str) -> ColumnInfo | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "primary_key": list(self.primary_key),
            "columns": [col.to_json() for col in self.columns],
            "foreign_keys": [fk.to_json() for fk in self.foreign_keys],
            "insert_allowed": not self.hidden_required,
        }

    def describe(self) -> str:
        pk = ", ".join(self.primary_key) or "none: insert only"
        lines = [f"{self.name} (primary key: {pk})"]
        refs = {fk.columns[0]: fk for fk in self.foreign_keys if len(fk.columns) == 1}
        for col in self.columns:
            line = f"  {col.name} {col.describe()}"
            if col.name in refs:
                ref = refs[col.name]
                line += f" -> {ref.ref_table}.{ref.ref_columns[0]}"
            lines.append(line)
        lines.extend(
            f"  foreign key {fk.describe()}" for fk in self.foreign_keys if len(fk.columns) > 1
        )
        if self.hidden_required:
            lines.append("  (no inserts: a required column is not available to you)")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class Catalogue:
    """An immutable view of the target database limited by the allow- and deny-lists."""

    tables: Mapping[str, TableInfo]
    hidden_tables: frozenset[str] = frozenset()
    hidden_columns: frozenset[str] = frozenset()
    """'table.column' of every column hidden from the agent, in tables it can see."""
    dialect: str = "sqlite"
    warnings: tuple[str, ...] = ()
    all_foreign_keys: tuple[ForeignKeyInfo, ...] = ()
    """Every foreign key of the database, hidden tables too: what a delete would leave dangling."""
    _core: Mapping[str, sa.Table] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "_core", MappingProxyType(dict(self._core)))

    def get(self, table: str) -> TableInfo | None:
        return self.tables.get(table)

    def __getitem__(self, table: str) -> TableInfo:
        return self.tables[table]

    def is_hidden_table(self, table: str) -> bool:
        return table in self.hidden_tables

    def is_hidden_column(self, table: str, column: str) -> bool:
        return f"{table}.{column}" in self.hidden_columns

    def inbound_foreign_keys(self, table: str) -> tuple[ForeignKeyInfo, ...]:
        return tuple(fk for fk in self.all_foreign_keys if fk.ref_table == table)

    def reflected(self, table: str) -> bool:
        """The table exists in the database, visible or hidden."""
        return table in self._core

    def core_table(self, table: str) -> sa.Table:
        """The typed SQLAlchemy Core table for *table* (any reflected one, hidden ones too).

        It has every column, hidden ones included: select `visible_columns()` for what the agent
        or the console may see.
        """
        try:
            return self._core[table]
        except KeyError:
            raise CatalogueError(f"table {table!r} is not in the catalogue") from None

    def visible_columns(self, table: str) -> list[sa.Column[Any]]:
        core = self.core_table(table)
        return [core.c[name] for name in self[table].column_names]

    def to_json(self) -> dict[str, Any]:
        return {"tables": [info.to_json() for info in self.tables.values()]}

    def describe(self) -> str:
        """A compact text description for a model's prompt. Hidden tables and columns are absent."""
        header = (
            "Tables you may change. Column flags: required = must be given on insert, "
            "auto = generated by the database, nullable = may be null, default = has a default."
        )
        return "\n".join([header, *(info.describe() for info in self.tables.values())])

    def describe_json(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def column_kind(type_: sa.types.TypeEngine[Any]) -> ColumnKind:
    """Map a SQLAlchemy type to the simple kind that coercion and the model understand."""
    # Order matters: Boolean before Integer, Float before Numeric, DateTime before Date.
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.Integer):
        return "integer"
    if isinstance(type_, sa.Float):
        return "float"
    if isinstance(type_, sa.Numeric):
        return "decimal" if type_.asdecimal else "float"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.JSON):
        return "json"
    if isinstance(type_, sa.String):
        return "text"
    return "other"


def _type_name(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # NullType and exotic types cannot always compile
        return type(type_).__name__


def _sqlite_rowid_alias(conn: sa.Connection, table: str, column: str, schema: str | None) -> bool:
    """SQLite makes only a column declared exactly 'INTEGER PRIMARY KEY' an alias of the rowid."""
    quote = conn.dialect.identifier_preparer.quote
    prefix = f"{quote(schema)}." if schema else ""
    # Names come from reflection, quoted by the dialect; nothing here comes from a proposal.
    rows = conn.exec_driver_sql(f"PRAGMA {prefix}table_info({quote(table)})").all()
    return any(row[1] == column and str(row[2]).upper() == "INTEGER" for row in rows)


def _column(
    conn: sa.Connection, table: str, col: Mapping[str, Any], pk: tuple[str, ...], schema: str | None
) -> ColumnInfo:
    type_ = col["type"]
    name = col["name"]
    kind = column_kind(type_)
    default = col.get("default")
    auto = bool(col.get("identity")) or col.get("autoincrement") is True
    auto = auto or (isinstance(default, str) and "nextval(" in default)
    if not auto and pk == (name,) and kind == "integer" and conn.dialect.name == "sqlite":
        auto = _sqlite_rowid_alias(conn, table, name, schema)
    generated = col.get("computed") is not None
    length = getattr(type_, "length", None) if kind == "text" else None
    enums = getattr(type_, "enums", None)
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=_type_name(type_, conn.dialect),
        # SQLite reports primary-key columns as nullable; we never let a key be null.
        nullable=bool(col.get("nullable", True)) and name not in pk,
        has_default=default is not None or auto or generated,
        autoincrement=auto,
        primary_key=name in pk,
        generated=generated,
        max_length=length if isinstance(length, int) else None,
        precision=getattr(type_, "precision", None) if kind == "decimal" else None,
        scale=getattr(type_, "scale", None) if kind == "decimal" else None,
        timezone=bool(getattr(type_, "timezone", False)) if kind == "datetime" else False,
        choices=tuple(enums) if kind == "text" and enums else None,
    )


def reflect_catalogue_conn(
    conn: sa.Connection,
    *,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
    schema: str | None = None,
) -> Catalogue:
    """Reflect through the caller's connection. See `reflect_catalogue`."""
    inspector = sa.inspect(conn)
    names = sorted(inspector.get_table_names(schema=schema))
    raw_columns = {name: inspector.get_columns(name, schema=schema) for name in names}
    column_names = {name: [col["name"] for col in raw] for name, raw in raw_columns.items()}
    schema_name = schema or inspector.default_schema_name or ""
    allowed = (
        None
        if allow is None
        else name_lists.resolve(allow, "allow", schema=schema_name, columns=column_names)
    )
    denied = name_lists.resolve(deny, "deny", schema=schema_name, columns=column_names)

    metadata = sa.MetaData()
    core: dict[str, sa.Table] = {}
    tables: dict[str, TableInfo] = {}
    all_fks: list[ForeignKeyInfo] = []
    hidden_tables: set[str] = set()
    hidden_columns: set[str] = set()
    for name in names:
        pk = tuple(
            inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ()
        )
        raw = raw_columns[name]
        columns = [_column(conn, name, col, pk, schema) for col in raw]
        core[name] = sa.Table(
            name,
            metadata,
            *(sa.Column(c["name"], c["type"], primary_key=c["name"] in pk) for c in raw),
            schema=schema,
        )
        fks = tuple(
            ForeignKeyInfo(
                table=name,
                columns=tuple(fk["constrained_columns"]),
                ref_table=fk["referred_table"],
                ref_columns=tuple(fk["referred_columns"]),
                on_delete=(fk.get("options") or {}).get("ondelete"),
            )
            for fk in inspector.get_foreign_keys(name, schema=schema)
        )
        all_fks.extend(fks)
        allowed_table = allowed is None or name in allowed.tables or name in allowed.columns
        if not allowed_table or name in denied.tables or name.startswith(RESERVED_PREFIX):
            hidden_tables.add(name)
            continue
        shown = None if allowed is None or name in allowed.tables else allowed.columns[name]
        denied_columns = denied.columns.get(name, set())
        hidden = {
            col.name
            for col in columns
            if col.name in denied_columns
            or (shown is not None and col.name not in shown and col.name not in pk)
        }
        if denied_keys := sorted(hidden & set(pk)):
            raise CatalogueError(
                f"the deny-list hides primary-key column(s) {', '.join(denied_keys)} of {name!r}; "
                "deny the whole table instead"
            )
        hidden_columns.update(f"{name}.{column}" for column in hidden)
        tables[name] = TableInfo(
            name=name,
            columns=tuple(col for col in columns if col.name not in hidden),
            primary_key=pk,
            foreign_keys=tuple(fk for fk in fks if not set(fk.columns) & hidden),
            hidden_required=any(col.required for col in columns if col.name in hidden),
        )
    return Catalogue(
        tables=tables,
        hidden_tables=frozenset(hidden_tables),
        hidden_columns=frozenset(hidden_columns),
        dialect=conn.dialect.name,
        all_foreign_keys=tuple(all_fks),
        _core=core,
    )


def reflect_catalogue(
    target: sa.Engine | sa.Connection | str | sa.URL,
    *,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
    schema: str | None = None,
) -> Catalogue:
    """Reflect the target database into a `Catalogue`.

    *allow*: None for every table, else entries 'table' (all its columns) or 'table.column' (only
    those columns, plus the primary key). *deny*: 'table' or 'table.column'; deny wins over allow.
    Either may carry the schema's name in front ('main.users.email'). Names match as the
    database reads them: unquoted regardless of case, double-quoted exactly (see `name_lists`).
    Tables named ``hitl_*`` are never visible. An entry (allow or deny) that matches nothing, or
    an allow entry that matches several names, raises `CatalogueError`.
    """
    if isinstance(target, str | sa.URL):
        engine = sa.create_engine(target)
        try:
            return reflect_catalogue(engine, allow=allow, deny=deny, schema=schema)
        finally:
            engine.dispose()
    if isinstance(target, sa.Connection):
        return reflect_catalogue_conn(target, allow=allow, deny=deny, schema=schema)
    if not isinstance(target, sa.Engine):
        raise TypeError(
            f"reflect_catalogue takes a sync Engine; for {type(target).__name__} "
            "use reflect_catalogue_async"
        )
    with target.connect() as conn:
        return reflect_catalogue_conn(conn, allow=allow, deny=deny, schema=schema)


async def reflect_catalogue_async(
    target: sa.Engine | AsyncEngine | AsyncConnection | str | sa.URL,
    *,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
    schema: str | None = None,
) -> Catalogue:
    """`reflect_catalogue` without blocking the event loop (a thread, or the async driver)."""
    allow_list = list(allow) if allow is not None else None
    deny_list = list(deny)
    if isinstance(target, str | sa.URL):
        return await asyncio.to_thread(
            reflect_catalogue, target, allow=allow_list, deny=deny_list, schema=schema
        )
    return await run_sync(
        target,
        lambda conn: reflect_catalogue_conn(conn, allow=allow_list, deny=deny_list, schema=schema),
    )
