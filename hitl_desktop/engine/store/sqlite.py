"""The system database on a SQLite file: one store thread, WAL, private files, and migrations
in a `BEGIN IMMEDIATE` transaction."""

from __future__ import annotations

import asyncio
import getpass
import os

import sqlalchemy as sa

from ...units.urls import redact_url
from ..errors import StoreNotUsable
from . import files, migrate
from .database import SystemDatabase
from .executors import SqliteExecutor
from .tx import configure_sqlite


class SqliteDatabase(SystemDatabase):
    dialect = "sqlite"

    @classmethod
    async def open(
        cls,
        url: str,
        path: str,
        synchronous: str,
        actor: str | None = None,
        migrate: bool = True,
    ) -> SqliteDatabase:
        """Open (creating it private) and migrate the store file at *path*; *url* names it in
        errors. *actor* is who this process acts as (default: the OS account): a SQLite file
        has no server to tell, and anyone who can write the file can write anything."""
        if files.is_file_store(path):
            await asyncio.to_thread(_prepare_file, url, path)
        executor = SqliteExecutor(path, synchronous)
        upgrade = lambda: asyncio.to_thread(_upgrade, path, synchronous)  # noqa: E731
        await cls._migrated(executor, url, upgrade if migrate else None)
        return cls(executor, actor or os_account())


def os_account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): the uid itself
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _prepare_file(url: str, path: str) -> None:
    """Before the store's own connection sets its pragmas: create a new store file private,
    or check that an existing file may be used as a store (a refused file is left exactly as
    it was) and tighten its permissions."""
    try:
        if files.create_private(path):
            return  # empty: nothing to refuse, nothing to tighten
    except OSError as exc:
        raise StoreNotUsable(
            redact_url(url), f"its file cannot be created: {exc.strerror or exc}"
        ) from exc
    reason = migrate.sqlite_refusal(path)
    if reason is not None:
        raise StoreNotUsable(redact_url(url), reason)
    files.tighten(path)


def _upgrade(path: str, synchronous: str) -> None:
    """Migrate in `BEGIN IMMEDIATE`: two processes opening a new store migrate it once."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        configure_sqlite(dbapi_conn, synchronous)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            migrate.upgrade(conn)
    finally:
        engine.dispose()
