"""Who: the reviewer who completed a token and whoever triggered a run.

`hitl_tokens.completed_by` and `hitl_runs.created_by`. On PostgreSQL both are set by
triggers to the session's login role whatever a client writes, and cannot be changed
afterwards: the record says who the server knew, not what a client typed.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TRIGGERS = [
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


def upgrade() -> None:
    op.add_column("hitl_runs", sa.Column("created_by", sa.String(200), nullable=True))
    op.add_column("hitl_tokens", sa.Column("completed_by", sa.String(200), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in TRIGGERS:  # one at a time: asyncpg prepares each
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS hitl_tokens_completed_by ON hitl_tokens")
        op.execute("DROP TRIGGER IF EXISTS hitl_runs_created_by ON hitl_runs")
        op.execute("DROP FUNCTION IF EXISTS hitl_token_completed_by()")
        op.execute("DROP FUNCTION IF EXISTS hitl_run_created_by()")
    with op.batch_alter_table("hitl_tokens") as batch:
        batch.drop_column("completed_by")
    with op.batch_alter_table("hitl_runs") as batch:
        batch.drop_column("created_by")
