"""The CLI on a team store (PostgreSQL): reads and decisions never create or upgrade it."""

import pytest
import sqlalchemy as sa

from hitl_desktop.cli import main
from tests import pg


def test_a_read_on_an_unmigrated_team_store_names_hitl_migrate_and_creates_nothing(capsys):
    if not pg.server_url():
        pytest.skip(pg.SKIP)
    name, url = pg.create_database("hitl_cli_team")
    try:
        assert main(["runs", "--store", url]) == 1
        err = capsys.readouterr().err
        assert "no hitl-desktop schema yet: run `hitl migrate --store" in err
        db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with db.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
        db.dispose()
        assert main(["migrate", "--store", url]) == 0
        capsys.readouterr()
        assert main(["runs", "--store", url, "--json"]) == 0
        assert '"runs": []' in capsys.readouterr().out
    finally:
        pg.drop_database(name)
