"""Schema migrations (Alembic), applied when an engine opens its store.

Opening a store that is already at the head costs one SELECT; a new store is created at the
head from schema.py in one transaction and stamped. Alembic is imported only for a store at an
older revision. The dialect's database class runs the upgrade so that two processes opening
a new store at once migrate it once (sqlite.py, postgres.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from . import schema
from .schema import SCHEMA_REVISION
from .tx import Tx, read_only_tx

MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(tx: Tx) -> str | None:
    if tx.dialect == "sqlite":
        exists = tx.one(
            sa.text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'")
        )
    else:
        exists = tx.one(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL AS e"))
        exists = exists if exists is not None and exists["e"] else None
    if exists is None:
        return None
    row = tx.one(sa.text("SELECT version_num FROM alembic_version"))
    return None if row is None else str(row["version_num"])


def inspect_store(tx: Tx) -> tuple[str | None, str | None]:
    """The store's revision, and why it must not be opened as a store (or None). A store at
    the head costs one read. Otherwise its tables are listed and then its revision read again:
    a store another process committed meanwhile shows its revision, never only its tables."""
    revision = current_revision(tx)
    if is_current(revision):
        return revision, None
    tables = _table_names(tx)
    revision = current_revision(tx)
    if is_current(revision):
        return revision, None
    return revision, refusal(tx, revision, tables)


def refusal(tx: Tx, revision: str | None, tables: list[str] | None = None) -> str | None:
    """Why the database behind *tx* must not be opened as a store, or None.

    A database with no revision is made a store only when it holds no tables of its own: a
    store pointed at the target database (or any other application's) must not grow tables in
    it. A revision above this version's head means a newer version wrote the store.
    """
    if revision is not None:
        if revision > SCHEMA_REVISION:
            return (
                f"its schema is at revision {revision}, written by a newer hitl-desktop; this "
                f"version knows revisions up to {SCHEMA_REVISION}: upgrade hitl-desktop"
            )
        return None
    names = _table_names(tx) if tables is None else tables
    foreign = sorted(name for name in names if not name.startswith("hitl_"))
    if not foreign:
        return None
    shown = ", ".join(foreign[:6]) + (", …" if len(foreign) > 6 else "")
    return (
        f"it is another application's database (it holds the tables {shown}); give the store "
        "its own file or database"
    )


def _table_names(tx: Tx) -> list[str]:
    if tx.dialect == "sqlite":
        rows = tx.all(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        )
    else:
        rows = tx.all(
            sa.text("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()")
        )
    return [str(r["name"]) for r in rows]


def sqlite_refusal(path: str) -> str | None:
    """refusal() for the SQLite file at *path*, read before the store's pragmas touch it: a
    refused database keeps its journal mode and its bytes."""
    with read_only_tx(path) as tx:
        try:
            revision = current_revision(tx)
            return None if is_current(revision) else refusal(tx, revision)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # locked, I/O: not about the file
                raise
            return f"it is not a SQLite database ({exc})"


_VERSION = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
"""Alembic's own table, as Alembic creates it."""


def upgrade(conn: sa.Connection) -> None:
    """Bring the store on *conn* to the head revision, inside the caller's transaction.

    A new store is created at the head directly from schema.py and stamped, without Alembic
    (which costs more to import than the tables cost to create, and would build and rebuild
    them revision by revision); `tests/engine/test_store.py` checks that both ways give the
    same tables and indexes. An existing store goes through Alembic from its revision."""
    tables = set(sa.inspect(conn).get_table_names())
    if not tables & {_VERSION.name, *schema.metadata.tables}:
        schema.metadata.create_all(conn)
        _VERSION.create(conn)
        conn.execute(_VERSION.insert().values(version_num=SCHEMA_REVISION))
        return
    if _VERSION.name in tables:
        current = conn.execute(sa.select(_VERSION.c.version_num)).scalar()
        if current == SCHEMA_REVISION:  # another process got here first
            return
    upgrade_with_alembic(conn)


def upgrade_with_alembic(conn: sa.Connection, revision: str = "head") -> None:
    """Run the migrations on *conn* up to *revision*."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def not_migrated(revision: str | None, url: str) -> str:
    """Why a store that may be migrated, but was not to be here, cannot be used yet."""
    command = f"run `hitl migrate --store {url}` once, as the store's owner"
    if revision is None:
        return f"it has no hitl-desktop schema yet: {command}"
    older = f"older than this version's {SCHEMA_REVISION}"
    return f"its schema is at revision {revision}, {older}: {command}"


def is_current(revision: str | None) -> bool:
    return revision == SCHEMA_REVISION
