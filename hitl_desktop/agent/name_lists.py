"""Allow- and deny-list entries matched against the reflected database, failing closed.

An entry is ``table``, ``table.column``, ``schema.table`` or ``schema.table.column``. Each part
is matched as the database would read it in SQL: a double-quoted part (``"Users"``, with ``""``
for a quote inside) matches exactly; an unquoted part matches regardless of case. That is how
SQLite reads every identifier; PostgreSQL folds an unquoted name to lower case, so there an
unquoted allow entry that fits several names differing only in case is refused as ambiguous
rather than guessed at, and an unquoted deny entry hides every name it fits. The schema part
must name the schema being reflected (``main`` on SQLite, usually ``public`` on PostgreSQL).

An entry that matches nothing is an error, for deny as for allow: a deny entry with a typo would
otherwise hide nothing while looking as if it did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .errors import CatalogueError

ListKind = Literal["allow", "deny"]

_MAX_NAMES_IN_ERROR = 30


@dataclass(frozen=True, slots=True)
class Part:
    """One dot-separated part of an entry, as written."""

    text: str
    quoted: bool

    def matches(self, name: str) -> bool:
        if self.quoted:
            return self.text == name
        return self.text.casefold() == name.casefold()


@dataclass(slots=True)
class Selection:
    """What a list's entries resolved to, in the database's own spelling."""

    tables: set[str] = field(default_factory=set)
    """Whole tables."""
    columns: dict[str, set[str]] = field(default_factory=dict)
    """Single columns, by table."""

    def add(self, table: str, column: str | None) -> None:
        if column is None:
            self.tables.add(table)
        else:
            self.columns.setdefault(table, set()).add(column)


def parse_entry(entry: str, kind: ListKind) -> tuple[Part, ...]:
    """Split *entry* on the dots outside double quotes; `CatalogueError` when malformed."""
    if not isinstance(entry, str):
        raise CatalogueError(
            f"the {kind}-list holds {entry!r} ({type(entry).__name__}); entries are text "
            "such as 'table' or 'table.column'"
        )
    text = entry.strip()
    parts: list[Part] = []
    i = 0
    while True:
        if text.startswith('"', i):
            chars: list[str] = []
            i += 1
            while True:
                end = text.find('"', i)
                if end < 0:
                    raise CatalogueError(f"the {kind}-list entry {entry!r} has an unclosed quote")
                chars.append(text[i:end])
                if text.startswith('"', end + 1):
                    chars.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            part = Part("".join(chars), quoted=True)
            after = text[i : i + 1]
            if after not in ("", "."):
                raise CatalogueError(
                    f"the {kind}-list entry {entry!r} has text after a closing quote"
                )
        else:
            end = text.find(".", i)
            end = len(text) if end < 0 else end
            raw = text[i:end]
            if '"' in raw:
                raise CatalogueError(
                    f"the {kind}-list entry {entry!r} has a quote inside a name; quote the "
                    'whole part, as in "My Table".column'
                )
            part = Part(raw.strip(), quoted=False)
            i = end
        if not part.text:
            raise CatalogueError(f"the {kind}-list entry {entry!r} has an empty name")
        parts.append(part)
        if i >= len(text):
            break
        i += 1  # the dot
        if i >= len(text):
            raise CatalogueError(f"the {kind}-list entry {entry!r} ends with a dot")
    if len(parts) > 3:
        raise CatalogueError(
            f"the {kind}-list entry {entry!r} has {len(parts)} parts; write 'table', "
            "'table.column' or 'schema.table.column'"
        )
    return tuple(parts)


def _readings(parts: tuple[Part, ...]) -> list[tuple[Part | None, Part, Part | None]]:
    """The (schema, table, column) readings of an entry: two parts read either way."""
    if len(parts) == 1:
        return [(None, parts[0], None)]
    if len(parts) == 2:
        return [(None, parts[0], parts[1]), (parts[0], parts[1], None)]
    return [(parts[0], parts[1], parts[2])]


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(repr(name) for name in names[:_MAX_NAMES_IN_ERROR])
    more = len(names) - _MAX_NAMES_IN_ERROR
    return (shown + (f" and {more} more" if more > 0 else "")) or "none"


def _no_match(
    entry: str,
    kind: ListKind,
    parts: tuple[Part, ...],
    schema: str,
    columns: Mapping[str, Sequence[str]],
) -> CatalogueError:
    found: list[str] = []
    for schema_part, table_part, column_part in _readings(parts):
        if schema_part is not None and not schema_part.matches(schema):
            if len(parts) == 3:
                found.append(f"the schema reflected is {schema!r}")
            continue
        if column_part is not None:
            found.extend(
                f"table {table!r} has columns {_listing(columns[table])}"
                for table in columns
                if table_part.matches(table)
            )
    detail = "; ".join([*found, f"the tables are {_listing(columns)}"])
    return CatalogueError(f"the {kind}-list entry {entry!r} matches nothing: {detail}")


def resolve(
    entries: Iterable[str],
    kind: ListKind,
    *,
    schema: str,
    columns: Mapping[str, Sequence[str]],
) -> Selection:
    """Resolve *entries* against the tables of *schema* and their *columns*.

    Raises `CatalogueError` for a malformed entry, an entry that matches nothing, and an allow
    entry that matches more than one table or column.
    """
    if isinstance(entries, str):
        raise CatalogueError(
            f"the {kind}-list must be a list of entries, not the single text {entries!r}"
        )
    selection = Selection()
    for entry in entries:
        parts = parse_entry(entry, kind)
        hits: list[tuple[str, str | None]] = []
        for schema_part, table_part, column_part in _readings(parts):
            if schema_part is not None and not schema_part.matches(schema):
                continue
            for table in columns:
                if not table_part.matches(table):
                    continue
                if column_part is None:
                    hits.append((table, None))
                else:
                    hits.extend((table, c) for c in columns[table] if column_part.matches(c))
        if not hits:
            raise _no_match(entry, kind, parts, schema, columns)
        if kind == "allow" and len(hits) > 1:
            named = ", ".join(t if c is None else f"{t}.{c}" for t, c in hits)
            raise CatalogueError(
                f"the allow-list entry {entry!r} is ambiguous: it matches {named}; "
                'double-quote the names to match one exactly, as in "Users".email'
            )
        for table, column in hits:
            selection.add(table, column)
    return selection
