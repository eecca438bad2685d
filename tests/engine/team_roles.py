"""docs/team.md's roles and grants, as written there, for tests on a private server: the same
statements with the role names given a suffix (roles are the server's, shared by every
database on it)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

DOC = Path(__file__).resolve().parents[2] / "docs" / "team.md"
ROLES = ("hitl_worker", "hitl_reviewer", "hitl_admin")


def documented_sql() -> str:
    """The ```sql block of docs/team.md headed 'Roles and grants'."""
    text = DOC.read_text()
    section = text.split("## Roles and grants", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None, "docs/team.md: Roles and grants has no sql block"
    return block.group(1)


def grant(url: str, suffix: str, members: dict[str, list[str]]) -> None:
    """Run the documented statements with each role named `<role>_<suffix>`, then create the
    login roles in *members* (login → groups, named without the suffix), e.g. {"ana":
    ["hitl_reviewer", "finance"]}. Groups not in the document are created NOLOGIN."""
    sql = documented_sql()
    for role in ROLES:
        sql = re.sub(rf"\b{role}\b", f"{role}_{suffix}", sql)
    statements = [_strip_comments(s).strip() for s in sql.split(";")]
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with db.begin() as conn:
            for statement in filter(None, statements):
                conn.execute(sa.text(statement))
            groups = {g for gs in members.values() for g in gs} - set(ROLES)
            for group in sorted(groups):
                conn.execute(sa.text(f'CREATE ROLE "{group}_{suffix}" NOLOGIN'))
            for login, gs in members.items():
                conn.execute(sa.text(f'CREATE ROLE "{login}_{suffix}" LOGIN'))
                for g in gs:
                    conn.execute(sa.text(f'GRANT "{g}_{suffix}" TO "{login}_{suffix}"'))
    finally:
        db.dispose()


def drop(url: str, suffix: str, members: dict[str, list[str]]) -> None:
    from tests import pg

    groups = {g for gs in members.values() for g in gs} | set(ROLES)
    for name in [*members, *sorted(groups)]:
        pg.admin(f'DROP ROLE IF EXISTS "{name}_{suffix}"')


def _strip_comments(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@")
