"""The system database on PostgreSQL: an asyncpg pool, and migrations serialised by an
advisory lock when several processes start together."""

from __future__ import annotations

import sqlalchemy as sa

from ...units.urls import async_url
from . import migrate
from .database import SystemDatabase
from .executors import AsyncSaExecutor
from .tx import Tx

MIGRATION_LOCK = 727274001
"""The advisory lock key held while the schema is migrated."""


class PostgresDatabase(SystemDatabase):
    dialect = "postgresql"

    @classmethod
    async def open(cls, url: str, migrate: bool = True) -> PostgresDatabase:
        """*migrate*: create or upgrade the schema when needed; otherwise refuse such a store
        (a team store is migrated once, by its owner: `hitl migrate`)."""
        executor = AsyncSaExecutor(async_url(url))
        await cls._migrated(
            executor, url, (lambda: executor.run_sync(_upgrade)) if migrate else None
        )
        actor = await executor.read(_session_user)
        return cls(executor, actor)


IDENTITY_TRIGGERS = [
    """
CREATE OR REPLACE FUNCTION hitl_token_completed_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'COMPLETED' AND OLD.status = 'WAITING' THEN
        NEW.completed_by := session_user;
    ELSE
        NEW.completed_by := OLD.completed_by;
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE OR REPLACE TRIGGER hitl_tokens_completed_by
    BEFORE UPDATE OF status, completed_by ON hitl_tokens
    FOR EACH ROW EXECUTE FUNCTION hitl_token_completed_by()
""",
    """
CREATE OR REPLACE FUNCTION hitl_run_created_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.created_by := session_user;
    ELSE
        NEW.created_by := OLD.created_by;
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE OR REPLACE TRIGGER hitl_runs_created_by BEFORE INSERT OR UPDATE OF created_by ON hitl_runs
    FOR EACH ROW EXECUTE FUNCTION hitl_run_created_by()
""",
]
"""Who completed a token and who triggered a run are the session's login role, set by the
server whatever a client writes (migration 0004 creates the same on older stores)."""


def _session_user(tx: Tx) -> str:
    row = tx.one(sa.text("SELECT session_user AS name"))
    assert row is not None
    return str(row["name"])


def _upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    migrate.upgrade(conn)
    for statement in IDENTITY_TRIGGERS:  # one at a time: asyncpg prepares each
        conn.exec_driver_sql(statement)
