import os

# Qt needs a platform plugin; tests never have a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config):
    """Start a throwaway PostgreSQL server for the target-database tests when the binaries are
    installed and no server is named (HITL_TEST_PG_TARGET, or HITL_TEST_PG for the store too)."""
    if os.environ.get("HITL_TEST_PG_TARGET") or os.environ.get("HITL_TEST_PG"):
        return
    if os.environ.get("HITL_TEST_NO_PG"):
        return
    from tests import pg

    server = pg.start()
    if server is not None:
        os.environ["HITL_TEST_PG_TARGET"] = server.url
        config._hitl_pg = server


def pytest_unconfigure(config):
    server = getattr(config, "_hitl_pg", None)
    if server is not None:
        server.stop()
