"""`hitl migrate` on real SQLite files and a real PostgreSQL server: it makes a store that
engines which do not migrate (workers, team consoles) accept, and says plainly why it cannot."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitl_desktop.cli import main
from hitl_desktop.engine import Engine, StoreNotUsable
from tests import pg

REVISION = re.compile(r"^store (\S+) is at schema revision (\d{4})\n$")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HITL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HITL_STORE", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_migrate")
    try:
        yield url
    finally:
        pg.drop_database(name)


def migrate(capsys: pytest.CaptureFixture[str], store: str) -> str:
    code = main(["migrate", "--store", store])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    found = REVISION.match(out)
    assert found is not None, out
    return found[2]


def refused(capsys: pytest.CaptureFixture[str], store: str) -> str:
    code = main(["migrate", "--store", store])
    out, err = capsys.readouterr()
    assert code == 1 and out == "", (code, out)
    assert err.startswith("hitl: error: ") and err.count("\n") == 1, err
    return err


def opens_without_migrating(store: str) -> str:
    """Who the store says we are, opened as a worker opens it (refused unless migrated)."""

    async def go() -> str:
        engine = Engine(store, migrate=False)
        try:
            await engine.open()
            return engine.actor
        finally:
            await engine.stop()

    return asyncio.run(go())


def test_migrate_makes_a_sqlite_store_that_engines_which_do_not_migrate_accept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.db"
    path.touch()  # an empty file, as a worker would find it
    with pytest.raises(StoreNotUsable, match="hitl migrate --store"):
        opens_without_migrating(f"sqlite:///{path}")
    revision = migrate(capsys, str(path))
    opens_without_migrating(f"sqlite:///{path}")
    assert migrate(capsys, str(path)) == revision  # a current store is left as it is
    code = main(["migrate", "--store", str(path), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and '"revision": "' + revision + '"' in out


def test_migrate_a_fresh_postgresql_database(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StoreNotUsable, match="no hitl-desktop schema yet"):
        opens_without_migrating(pg_database)
    code = main(["migrate", "--store", pg_database])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith(f"store {pg_database} is at schema revision ")
    assert opens_without_migrating(pg_database) == "postgres"


def test_a_store_written_by_a_newer_version_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.db"
    migrate(capsys, str(path))
    db = sa.create_engine(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    err = refused(capsys, str(path))
    assert "revision 9999, written by a newer hitl-desktop" in err and "upgrade" in err


def test_another_applications_database_is_refused_and_left_alone(
    demo_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = demo_path.read_bytes()
    err = refused(capsys, str(demo_path))
    assert "another application's database" in err and "customers" in err
    assert demo_path.read_bytes() == before


def test_another_applications_postgresql_database_is_refused(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sa.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://"))
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id integer primary key)"))
    db.dispose()
    err = refused(capsys, pg_database)
    assert "another application's database (it holds the tables invoices)" in err


def test_an_unreachable_server_is_named_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    err = refused(capsys, "postgresql://ana:s3cret@127.0.0.1:1/hitl")
    assert (
        "cannot reach the database server 127.0.0.1:1 of postgresql://ana:***@127.0.0.1:1/" in err
    )
    assert "s3cret" not in err


def test_a_missing_database_and_an_unknown_role_are_named(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = pg_database.rsplit("/", 1)[0]
    err = refused(capsys, f"{server}/no_such_db_{uuid.uuid4().hex[:6]}")
    assert "there is no database no_such_db_" in err and "CREATE DATABASE" in err
    err = refused(capsys, pg_database.replace("postgres@", "nobody_here@"))
    assert "refused role nobody_here" in err and "does not exist" in err


def test_a_role_that_may_not_create_tables_is_told_to_migrate_as_the_owner(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"ben_{uuid.uuid4().hex[:8]}"
    pg.admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        err = refused(capsys, pg_database.replace("postgres@", f"{role}@"))
        assert f"role {role} may not create the store's tables" in err
        assert "as the database's owner" in err
    finally:
        pg.admin(f'DROP ROLE "{role}"')


@pytest.fixture
def password_role(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A role the test server asks a password of (every other role it trusts), owning a fresh
    database; its URL without the password, and the password."""
    server = getattr(request.config, "_hitl_pg", None)
    if server is None or not pg.server_url():
        pytest.skip("needs the PostgreSQL server the tests start (to ask for a password)")
    role, password = f"pw_{uuid.uuid4().hex[:8]}", "right-horse-battery"
    hba = Path(server.datadir) / "pg_hba.conf"
    original = hba.read_text()
    pg.admin(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    database, url = pg.create_database("hitl_pw")
    pg.admin(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
    # Rewritten in place: the file keeps the owner and mode the server gave it.
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    pg.admin("SELECT pg_reload_conf()")
    try:
        yield url.replace("postgres@", f"{role}@"), password
    finally:
        hba.write_text(original)
        pg.admin("SELECT pg_reload_conf()")
        pg.drop_database(database)
        pg.admin(f'DROP ROLE "{role}"')


def test_a_wrong_or_missing_password_is_told_apart_from_an_unreachable_server(
    password_role: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, password = password_role
    wrong = url.replace("@", ":not-the-password@")
    err = refused(capsys, wrong)
    assert "refused the password of role pw_" in err and "wrong password" in err
    assert "not-the-password" not in err
    err = refused(capsys, url)
    assert "it asks for one and none was given" in err and "PGPASSWORD" in err
    # The hint works as given: the password from the environment, never on the command line.
    monkeypatch.setenv("PGPASSWORD", password)
    migrate(capsys, url)


def test_a_missing_sqlite_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "runs.db"
    err = refused(capsys, str(missing))
    assert f"sqlite:///{missing} is not usable as a run store: its file cannot be created" in err
    assert not (tmp_path / "no").exists()
