"""The system database on PostgreSQL: an asyncpg pool, and migrations serialised by an
advisory lock when several processes start together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ...units.urls import async_url
from .. import serde
from ..errors import DecisionRefused, TokenAlreadyFinished, TokenNotFound
from ..models import RunStatus, TokenStatus
from . import groups, migrate, requirements, tokens
from . import statements as sql
from .audit import TRIGGER_ENTRIES
from .bell import Then
from .database import SystemDatabase
from .event_log import announce, small
from .executors import AsyncSaExecutor
from .history import resume
from .records import EventRow, Resume, TokenState
from .reviews import Decision
from .tokens import OutputChecks
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

    async def decide(
        self,
        token_id: str,
        output: str,
        seen: str | None,
        *,
        owner: str | None,
        tasks: frozenset[str],
        now: float,
        origin: str,
        known: Resume | None = None,
        checks: OutputChecks | None = None,
        then: Then = None,
    ) -> Decision:
        """The store's own function decides (see REVIEW_FUNCTIONS) and queues the run it
        completes; an executing engine (*owner*) takes that run in the same transaction, from
        the history it kept (*known*), as complete_token hands it over."""
        try:
            return await self._write(
                _decide, token_id, output, seen, origin, checks, owner, tasks, known, then=then
            )
        except sa.exc.DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            message = str(getattr(exc.orig, "__cause__", None) or exc.orig).strip()
            if state == "HT404":
                raise TokenNotFound(token_id) from None
            if state == "HT409":
                token = await self.get_token(token_id)
                at = None if token.completed_at is None else token.completed_at.timestamp()
                raise TokenAlreadyFinished(
                    token_id, token.status.value, token.completed_by, at
                ) from None
            if state == "HT403":
                raise DecisionRefused(token_id, message) from None
            raise

    def roles(self, tx: Tx) -> frozenset[str]:
        rows = tx.all(_MY_ROLES)
        return frozenset(str(r["rolname"]) for r in rows) | {self.actor}

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
    last_id integer;
    last_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(727274002);
    -- The next id after the last, under the lock: ids run 1, 2, 3… so a gap is a removal.
    SELECT id, hash INTO last_id, last_hash FROM hitl_audit ORDER BY id DESC LIMIT 1;
    NEW.id := coalesce(last_id, 0) + 1;
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


_WAKE = """
    UPDATE hitl_runs SET status = 'QUEUED', owner = NULL, waiting_token_id = NULL,
        updated_at = now_s
    WHERE status = 'WAITING' AND waiting_token_id = p_token
        AND (id = t.run_id OR id IN (SELECT w.run_id FROM hitl_waits w WHERE w.token_id = p_token));
    DELETE FROM hitl_waits WHERE token_id = p_token;
"""

GROUP_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION hitl_settle_groups(p_member text, now_s double precision,
                                              p_origin text)
RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    g record;
    grp hitl_tokens%ROWTYPE;
    open_n integer;
    done_n integer;
    expired boolean;
    snap text;
BEGIN
    FOR g IN SELECT DISTINCT m.group_id, m.mode FROM hitl_group_members m
            WHERE m.token_id = p_member ORDER BY m.group_id LOOP
        SELECT * INTO grp FROM hitl_tokens WHERE id = g.group_id FOR UPDATE;
        CONTINUE WHEN NOT FOUND OR grp.status <> 'WAITING';
        -- Read after the lock: a member another transaction finished is seen once it commits.
        SELECT count(*) FILTER (WHERE t.status = 'WAITING'),
               count(*) FILTER (WHERE t.status <> 'WAITING')
            INTO open_n, done_n
            FROM hitl_group_members m JOIN hitl_tokens t ON t.id = m.token_id
            WHERE m.group_id = g.group_id;
        expired := grp.expires_at <= now_s;
        CONTINUE WHEN NOT expired
            AND CASE WHEN g.mode = 'any' THEN done_n = 0 ELSE open_n > 0 END;
        SELECT jsonb_build_object('timed_out', expired, 'members',
                jsonb_agg(jsonb_build_object('token_id', m.token_id, 'status', t.status,
                    'completed_at', t.completed_at) ORDER BY m.position))::text
            INTO snap
            FROM hitl_group_members m JOIN hitl_tokens t ON t.id = m.token_id
            WHERE m.group_id = g.group_id;
        UPDATE hitl_tokens SET status = CASE WHEN expired THEN 'TIMED_OUT' ELSE 'COMPLETED' END,
                output = snap, completed_at = now_s
            WHERE id = g.group_id;
        UPDATE hitl_runs SET status = 'QUEUED', owner = NULL, waiting_token_id = NULL,
                updated_at = now_s
            WHERE id = grp.run_id AND status = 'WAITING' AND waiting_token_id = g.group_id;
        INSERT INTO hitl_events (at, origin, kind, run_id, token_id, data)
            VALUES (now_s, p_origin,
                CASE WHEN expired THEN 'TokenTimedOut' ELSE 'TokenCompleted' END,
                coalesce(grp.run_id, ''), g.group_id,
                CASE WHEN expired THEN NULL
                    ELSE jsonb_build_object('output', snap::jsonb)::text END);
    END LOOP;
END $$
""",
    "REVOKE ALL ON FUNCTION hitl_settle_groups(text, double precision, text) FROM PUBLIC",
]
"""Settling the waits for any / all holding a token that hitl_decide just finished, as
store/groups.py does in Python for the engine's own completions: called by hitl_decide, as
the store's owner, so that a reviewer's decision wakes a run waiting on a group."""

REVIEW_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION hitl_policy_applied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'the policy history is append-only: % refused', TG_OP;
    END IF;
    NEW.applied_by := session_user;
    NEW.applied_at := extract(epoch FROM clock_timestamp());
    RETURN NEW;
END $$
""",
    """
CREATE OR REPLACE TRIGGER hitl_policies_applied BEFORE INSERT OR UPDATE OR DELETE
    ON hitl_policies FOR EACH ROW EXECUTE FUNCTION hitl_policy_applied()
""",
    """
CREATE OR REPLACE FUNCTION hitl_may_act_as(who text, names text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM jsonb_array_elements_text(names::jsonb) AS a(name)
        WHERE a.name = who OR CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = a.name)
            THEN pg_has_role(who, a.name, 'MEMBER') ELSE false END)
$$
""",
    """
CREATE OR REPLACE FUNCTION hitl_decide(p_token text, p_output text, p_seen text, p_origin text)
RETURNS TABLE (outcome text, run_id text, approvals integer, needed integer,
               expires_at double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    who text := session_user;
    now_s double precision := extract(epoch FROM clock_timestamp());
    t hitl_tokens%ROWTYPE;
    r hitl_requirements%ROWTYPE;
    has_rule boolean;
    verdict text;
    approve boolean;
    earlier hitl_verdicts%ROWTYPE;
    n integer;
    needed_n integer := 1;
    overdue boolean := false;
    rule_name text;
    edits jsonb;
    entry text;
    final boolean;
BEGIN
    SELECT * INTO t FROM hitl_tokens WHERE id = p_token FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no token with id %', p_token USING ERRCODE = 'HT404';
    END IF;
    IF p_token LIKE 'grp\\_%' THEN
        RAISE EXCEPTION 'it is a wait for any / all of other tokens: it finishes when they do'
            USING ERRCODE = 'HT403';
    END IF;
    IF t.status <> 'WAITING' THEN
        RAISE EXCEPTION 'token % is already %', p_token, t.status USING ERRCODE = 'HT409';
    END IF;
    PERFORM pg_advisory_xact_lock(727274002), pg_notify('hitl_events', '');
    IF t.expires_at <= now_s THEN
        UPDATE hitl_tokens SET status = 'TIMED_OUT', output = NULL, completed_at = now_s
            WHERE id = p_token;
"""
    + _WAKE
    + """
        INSERT INTO hitl_events (at, origin, kind, run_id, token_id)
            VALUES (now_s, p_origin, 'TokenTimedOut', coalesce(t.run_id, ''), p_token);
        PERFORM hitl_settle_groups(p_token, now_s, p_origin);
        INSERT INTO hitl_audit (at, actor, kind, run_id, token_id, prev_hash, hash)
            VALUES ('', '', 'TokenTimedOut', t.run_id, p_token, '', '');
        RETURN QUERY SELECT 'expired'::text, t.run_id::text, 0, 0, t.expires_at;
        RETURN;
    END IF;
    IF length(p_output) > 65536 THEN
        RAISE EXCEPTION 'a decision is at most 64 KiB' USING ERRCODE = 'HT403';
    END IF;
    verdict := CASE WHEN jsonb_typeof(p_output::jsonb) = 'object'
        THEN p_output::jsonb ->> 'decision' END;
    IF verdict IS NULL OR verdict NOT IN ('approve', 'reject') THEN
        RAISE EXCEPTION 'a decision is a JSON object whose "decision" is "approve" or "reject"'
            USING ERRCODE = 'HT403';
    END IF;
    approve := verdict = 'approve';
    SELECT * INTO r FROM hitl_requirements WHERE token_id = p_token;
    has_rule := FOUND;
    rule_name := CASE WHEN has_rule AND r.rule IS NOT NULL
        THEN format('rule %L', r.rule) ELSE 'no rule' END;
    IF has_rule THEN
        needed_n := r.approvals;
        overdue := r.remind_at IS NOT NULL AND now_s >= r.remind_at;
        IF r.approvers <> '[]' AND NOT (hitl_may_act_as(who, r.approvers)
                OR (overdue AND hitl_may_act_as(who, r.escalate_to))) THEN
            RAISE EXCEPTION '% may not decide under %: it needs one of %', who, rule_name,
                (SELECT string_agg(a, ', ') FROM jsonb_array_elements_text(r.approvers::jsonb) a)
                || CASE WHEN r.escalate_to <> '[]' AND NOT overdue THEN ' (' ||
                    (SELECT string_agg(a, ', ')
                     FROM jsonb_array_elements_text(r.escalate_to::jsonb) a)
                    || ' once it is overdue)' ELSE '' END
                USING ERRCODE = 'HT403';
        END IF;
        IF approve AND r.self_approval = 0 AND who = r.requester THEN
            RAISE EXCEPTION '% requested this change and % does not allow self-approval',
                who, rule_name USING ERRCODE = 'HT403';
        END IF;
    END IF;
    SELECT count(*) INTO n FROM hitl_verdicts v WHERE v.token_id = p_token AND v.approve = 1;
    SELECT * INTO earlier FROM hitl_verdicts v WHERE v.token_id = p_token AND v.reviewer = who;
    IF FOUND THEN
        RAISE EXCEPTION '% already % it at % (% of % approvals so far): each reviewer decides once',
            who, CASE WHEN earlier.approve = 1 THEN 'approved' ELSE 'rejected' END,
            to_char(to_timestamp(earlier.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
            n, needed_n USING ERRCODE = 'HT403';
    END IF;
    edits := p_output::jsonb -> 'edits';
    IF approve AND needed_n > 1 AND jsonb_typeof(edits) = 'array'
            AND jsonb_array_length(edits) > 0 THEN
        RAISE EXCEPTION '% needs % approvals of the same change: %', rule_name, needed_n,
            'edits are not allowed (reject it with a comment instead)' USING ERRCODE = 'HT403';
    END IF;
    IF has_rule AND r.seen IS NOT NULL AND p_seen IS DISTINCT FROM r.seen THEN
        RAISE EXCEPTION 'it was decided on %, but the change waiting is diff %: reload the review',
            CASE WHEN p_seen IS NULL THEN 'no diff' ELSE 'diff ' || left(p_seen, 12) END,
            left(r.seen, 12) USING ERRCODE = 'HT403';
    END IF;
    INSERT INTO hitl_verdicts (token_id, reviewer, approve, at, seen, output)
        VALUES (p_token, who, approve::int, now_s, p_seen, p_output);
    n := n + approve::int;
    final := NOT approve OR n >= needed_n;
    entry := jsonb_build_object('verdict', verdict, 'decision', p_output::jsonb,
        'rule', CASE WHEN has_rule THEN r.rule END, 'seen', p_seen, 'approvals', n,
        'needed', needed_n, 'final', final)::text;
    INSERT INTO hitl_audit (at, actor, kind, run_id, token_id, data, prev_hash, hash)
        VALUES ('', '', 'Decision', t.run_id, p_token, entry, '', '');
    IF final THEN
        UPDATE hitl_tokens SET status = 'COMPLETED', output = p_output, completed_at = now_s
            WHERE id = p_token;
"""
    + _WAKE
    + """
        INSERT INTO hitl_events (at, origin, kind, run_id, token_id, data)
            VALUES (now_s, p_origin, 'TokenCompleted', coalesce(t.run_id, ''), p_token,
                CASE WHEN length(p_output) <= 16384
                    THEN jsonb_build_object('output', p_output::jsonb)::text END);
        PERFORM hitl_settle_groups(p_token, now_s, p_origin);
    ELSE
        INSERT INTO hitl_events (at, origin, kind, run_id, token_id)
            VALUES (now_s, p_origin, 'TokenReviewed', coalesce(t.run_id, ''), p_token);
    END IF;
    RETURN QUERY SELECT CASE WHEN final THEN 'completed' ELSE 'recorded' END, t.run_id::text, n,
        needed_n, t.expires_at;
END $$
""",
    "REVOKE ALL ON FUNCTION hitl_decide(text, text, text, text) FROM PUBLIC",
    """
CREATE OR REPLACE FUNCTION hitl_note_run(p_run text, p_kind text, p_about text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    r record;
BEGIN
    IF p_kind IS NULL OR p_kind <> ALL (ARRAY[$KINDS]) THEN
        RAISE EXCEPTION 'hitl_note_run: a run cannot be noted with a % entry', p_kind
            USING ERRCODE = '42501';
    END IF;
    SELECT id, task, created_by INTO r FROM hitl_runs WHERE id = p_run;
    IF NOT FOUND OR r.created_by IS DISTINCT FROM session_user THEN
        RAISE EXCEPTION 'hitl_note_run: run % was not triggered by %', p_run, session_user
            USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hitl_runs WHERE id = p_about) THEN
        RAISE EXCEPTION 'hitl_note_run: there is no run %', p_about USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT 1 FROM hitl_audit WHERE run_id = p_about AND kind = p_kind
               AND data::jsonb ->> 'run' = p_run) THEN
        RAISE EXCEPTION 'hitl_note_run: run % is already noted', p_run USING ERRCODE = '42501';
    END IF;
    INSERT INTO hitl_audit (at, actor, kind, run_id, token_id, data, prev_hash, hash)
        VALUES ('', '', p_kind, p_about, NULL,
                jsonb_build_object('run', p_run, 'task', r.task)::text, '', '');
END $$
""".replace("$KINDS", ", ".join(f"'{kind}'" for kind in TRIGGER_ENTRIES)),
    "REVOKE ALL ON FUNCTION hitl_note_run(text, text, text) FROM PUBLIC",
]
"""Deciding a review's token on PostgreSQL (reviews.py does the same on SQLite): one function
that runs as the store's owner, so that reviewers need the right to call it and no right to
write the engine's tables. It checks the token's requirement against the session's role in the
transaction that records the verdict, and completes the token and queues its run when the
verdict is final. The store's owner grants who may call it (docs/team.md).

`hitl_note_run` is how a run is triggered with an audit entry (a revert's request): for the
role that triggered that run, only the kinds in TRIGGER_ENTRIES, and once per run."""


_MY_ROLES = sa.text("SELECT rolname FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER')")
_DECIDE = sa.text("SELECT * FROM hitl_decide(:token, :output, :seen, :origin)")


def _decide(
    tx: Tx,
    token_id: str,
    output: str,
    seen: str | None,
    origin: str,
    checks: OutputChecks | None,
    owner: str | None,
    tasks: frozenset[str],
    known: Resume | None,
) -> Decision:
    if checks:
        tokens.check_output(tx, token_id, output, checks, time.time())
    params = {"token": token_id, "output": output, "seen": seen, "origin": origin}
    row = tx.one(_DECIDE, params)
    assert row is not None
    out = Decision(approvals=int(row["approvals"]), needed=int(row["needed"]))
    run_id = row["run_id"] or ""
    if row["outcome"] == "expired":
        out.expired_at = float(row["expires_at"])
        out.events.append(EventRow(0, time.time(), origin, "TokenTimedOut", run_id, token_id, None))
        return out
    out.final = row["outcome"] == "completed"
    kind, data = (
        ("TokenCompleted", {"output": small(output)}) if out.final else ("TokenReviewed", None)
    )
    text = None if data is None else serde.encode(data)
    out.events.append(EventRow(0, time.time(), origin, kind, run_id, token_id, text, data))
    if out.final and owner is not None:
        # Runs waiting on a group this decision settled (hitl_settle_groups queued them).
        for group_id, group_run, group_state in groups.finished_groups(tx, token_id):
            if group_run is not None:
                _take(tx, out, group_run, group_id, group_state, owner, tasks, None)
        if run_id:
            state = TokenState(TokenStatus.COMPLETED, output)
            _take(tx, out, run_id, token_id, state, owner, tasks, known)
    # The token as decided, read in this transaction: no read after the commit, which would
    # queue behind the resumed run's transactions.
    out.row, out.output = tx.one(sql.token_row, {"rid": token_id}), output
    out.requirement = requirements.get(tx, token_id)
    out.verdicts = requirements.verdicts(tx, token_id)
    return out


def _take(
    tx: Tx,
    out: Decision,
    run_id: str,
    token_id: str,
    state: TokenState,
    owner: str,
    tasks: frozenset[str],
    known: Resume | None,
) -> None:
    """Claim the run hitl_decide just queued for *owner*, an engine executing its task (as
    a worker role, which may write the runs), so that it resumes without another transaction.
    Other runs sharing the token stay queued for whichever engine claims them."""
    kept = known if known is not None and known.run_id == run_id else None
    run = None if kept is not None else tx.one(sql.run_row, {"rid": run_id})
    task = kept.task if kept is not None else None if run is None else str(run["task"])
    if task not in tasks:
        return
    now = time.time()
    params = {"rid": run_id, "from_status": RunStatus.QUEUED.value, "owner": owner, "now": now}
    if tx.execute(sql.claim_run, params) != 1:
        return
    announce(tx, out, "RunResumed", run_id, now, owner, token_id)
    if kept is not None:
        tokens_now = {**kept.tokens, token_id: state}
        out.resumed.append(
            Resume(run_id, kept.task, kept.payload, kept.steps, tokens_now, token_id)
        )
    else:
        out.resumed.append(resume(tx, run_id, token_id, run, state))


def _session_user(tx: Tx) -> str:
    row = tx.one(sa.text("SELECT session_user AS name"))
    assert row is not None
    return str(row["name"])


def _upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    migrate.upgrade(conn)
    for statement in (
        IDENTITY_TRIGGERS + AUDIT_TRIGGERS + GROUP_FUNCTIONS + REVIEW_FUNCTIONS
    ):  # asyncpg: one each
        conn.exec_driver_sql(statement)
