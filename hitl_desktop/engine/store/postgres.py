"""The system database on PostgreSQL: an asyncpg pool, and migrations serialised by an
advisory lock when several processes start together."""

from __future__ import annotations

import sqlalchemy as sa

from ...units.urls import async_url
from . import migrate
from .database import SystemDatabase
from .executors import AsyncSaExecutor

MIGRATION_LOCK = 727274001
"""The advisory lock key held while the schema is migrated."""


class PostgresDatabase(SystemDatabase):
    dialect = "postgresql"

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        executor = AsyncSaExecutor(async_url(url))
        await cls._migrated(executor, url, lambda: executor.run_sync(_upgrade))
        return cls(executor)


def _upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    migrate.upgrade(conn)
