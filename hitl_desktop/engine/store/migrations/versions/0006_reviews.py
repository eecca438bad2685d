"""Reviews under rules: a review token's requirement, each reviewer's verdict, and the
versions of the approval policy; an index to read one run's audit entries.

On PostgreSQL the decision function (hitl_decide) and the policy trigger are (re)created by
the store after every upgrade (postgres.py), like the identity and audit triggers.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hitl_requirements",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.Column("approvals", sa.Integer, nullable=False),
        sa.Column("approvers", sa.Text, nullable=False),
        sa.Column("self_approval", sa.Integer, nullable=False),
        sa.Column("remind_at", sa.Float, nullable=True),
        sa.Column("escalate_to", sa.Text, nullable=False),
        sa.Column("seen", sa.String(64), nullable=True),
        sa.Column("requester", sa.String(200), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "hitl_verdicts",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("reviewer", sa.String(200), primary_key=True),
        sa.Column("approve", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("seen", sa.String(64), nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "hitl_policies",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("applied_at", sa.Float, nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_hitl_audit_run", "hitl_audit", ["run_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hitl_decide(text, text, text, text) CASCADE")
        op.execute("DROP FUNCTION IF EXISTS hitl_policy_applied() CASCADE")
    op.drop_index("ix_hitl_audit_run", "hitl_audit")
    op.drop_table("hitl_policies")
    op.drop_table("hitl_verdicts")
    op.drop_table("hitl_requirements")
