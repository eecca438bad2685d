"""Waits for any / all of several tokens: the members of each group.

On PostgreSQL the function that settles groups inside a decision (hitl_settle_groups, called
by hitl_decide) is (re)created by the store after every upgrade (postgres.py). Workers write
the new table as they write hitl_tokens: on an existing team store, whoever holds rights on
hitl_tokens is given the same on it here, so the upgrade needs no new grants to keep working.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COPY_GRANTS = """
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT DISTINCT grantee, privilege_type FROM information_schema.role_table_grants
        WHERE table_name = 'hitl_tokens' AND table_schema = current_schema()
            AND privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
            AND grantee <> current_user
    LOOP
        EXECUTE format('GRANT %s ON hitl_group_members TO %I', g.privilege_type, g.grantee);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "hitl_group_members",
        sa.Column("group_id", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("token_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(3), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_hitl_group_members_token", "hitl_group_members", ["token_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_COPY_GRANTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hitl_settle_groups(text, double precision, text)")
    op.drop_index("ix_hitl_group_members_token", "hitl_group_members")
    op.drop_table("hitl_group_members")
