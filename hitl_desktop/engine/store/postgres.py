"""The system database on PostgreSQL: an asyncpg pool, and migrations serialised by an
advisory lock when several processes start together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ...units.urls import async_url
from . import migrate
from .database import SystemDatabase
from .executors import AsyncSaExecutor
from .tx import EVENT_CHANNEL, Tx

MIGRATION_LOCK = 727274001
"""The advisory lock key held while the schema is migrated."""
LISTEN_CONNECT_TIMEOUT = 10.0

log = logging.getLogger("hitl_desktop.engine")


class PostgresDatabase(SystemDatabase):
    dialect = "postgresql"

    def __init__(self, executor: AsyncSaExecutor, actor: str, url: str) -> None:
        super().__init__(executor, actor)
        self._url = url
        self._listener: Any = None  # an asyncpg connection, kept out of the pool

    async def listen(self, on_change: Callable[[], None]) -> bool:
        """LISTEN on the event channel over a connection of its own. False when it cannot be
        opened or it was lost: the caller polls until a later call succeeds."""
        if self._listener is not None and not self._listener.is_closed():
            return True
        import asyncpg

        plain = sa.make_url(async_url(self._url)).set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(
                plain.render_as_string(hide_password=False), timeout=LISTEN_CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot listen for changes on %s (polling instead): %s", plain, exc)
            return False
        await conn.add_listener(EVENT_CHANNEL, lambda *_: on_change())
        self._listener = conn
        return True

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # a lost connection is closed all the same
                await asyncio.wait_for(self._listener.close(), LISTEN_CONNECT_TIMEOUT)
            self._listener = None
        await super().close()

    @classmethod
    async def open(cls, url: str, migrate: bool = True) -> PostgresDatabase:
        """*migrate*: create or upgrade the schema when needed; otherwise refuse such a store
        (a team store is migrated once, by its owner: `hitl migrate`)."""
        executor = AsyncSaExecutor(async_url(url))
        await cls._migrated(
            executor, url, (lambda: executor.run_sync(_upgrade)) if migrate else None
        )
        actor = await executor.read(_session_user)
        return cls(executor, actor, url)


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

AUDIT_TRIGGERS = [
    """
CREATE OR REPLACE FUNCTION hitl_netstring(value text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL THEN '~' ELSE length(value)::text || ':' || value END
$$
""",
    """
CREATE OR REPLACE FUNCTION hitl_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(727274002);
    NEW.id := nextval(pg_get_serial_sequence('hitl_audit', 'id'));
    SELECT hash INTO last_hash FROM hitl_audit ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.actor := session_user;
    NEW.at := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    NEW.hash := encode(sha256(convert_to(
        hitl_netstring(NEW.id::text) || hitl_netstring(NEW.at) || hitl_netstring(NEW.actor)
        || hitl_netstring(NEW.kind) || hitl_netstring(NEW.run_id)
        || hitl_netstring(NEW.token_id) || hitl_netstring(NEW.data)
        || hitl_netstring(NEW.prev_hash), 'UTF8')), 'hex');
    RETURN NEW;
END $$
""",
    """
CREATE OR REPLACE TRIGGER hitl_audit_chain BEFORE INSERT ON hitl_audit
    FOR EACH ROW EXECUTE FUNCTION hitl_audit_chain()
""",
    """
CREATE OR REPLACE FUNCTION hitl_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP;
END $$
""",
    """
CREATE OR REPLACE TRIGGER hitl_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON hitl_audit FOR EACH STATEMENT EXECUTE FUNCTION hitl_audit_append_only()
""",
]
"""The audit trail's chain, computed by the server (see audit.py for the hash) under the event
log's lock, with its clock and the session's role; and no UPDATE, DELETE or TRUNCATE of it
(migration 0005 creates the same on older stores)."""


def _session_user(tx: Tx) -> str:
    row = tx.one(sa.text("SELECT session_user AS name"))
    assert row is not None
    return str(row["name"])


def _upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    migrate.upgrade(conn)
    for statement in IDENTITY_TRIGGERS + AUDIT_TRIGGERS:  # one at a time: asyncpg prepares each
        conn.exec_driver_sql(statement)
