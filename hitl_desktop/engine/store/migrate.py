"""Schema migrations (Alembic), applied when an engine opens its store.

Opening a store that is already at the head costs one SELECT: Alembic is imported only when
there is something to do. On SQLite the upgrade runs in a `BEGIN IMMEDIATE` transaction, so two
processes opening a new store at once migrate it once.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from .schema import SCHEMA_REVISION
from .sql import Tx, configure_sqlite

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


def upgrade(conn: sa.Connection) -> None:
    """Bring the store on *conn* to the head revision, inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    if conn.dialect.name == "postgresql":  # serialise concurrent first starts
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274001)"))
    command.upgrade(config, "head")


def upgrade_sqlite(path: str, synchronous: str) -> None:
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        configure_sqlite(dbapi_conn, synchronous)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            upgrade(conn)
    finally:
        engine.dispose()


def is_current(revision: str | None) -> bool:
    return revision == SCHEMA_REVISION
