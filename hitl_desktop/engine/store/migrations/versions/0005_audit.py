"""The audit trail: hitl_audit, append-only and hash-chained.

Each entry's hash covers its fields and the previous entry's hash (see the engine's
store/audit.py). On PostgreSQL a trigger computes the chain under the event log's advisory
lock, with the server's clock and the session's role, and another refuses UPDATE, DELETE and
TRUNCATE of the table.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRIGGERS = [
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


def upgrade() -> None:
    op.create_table(
        "hitl_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("token_id", sa.String(40), nullable=True),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in TRIGGERS:  # one at a time: asyncpg prepares each
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hitl_audit_chain() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS hitl_audit_append_only() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS hitl_netstring(text)")
    op.drop_table("hitl_audit")
