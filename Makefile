# Every target installs what it needs: a virtual env with the package and its test tools,
# and (where tests need them) Debian libraries through apt, skipped when already present.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
INSTALL_LOG := $(VENV)/install.log

.PHONY: demo test lint bench bench-ui bench-team bench-peers screenshots package package-test sysdeps clean

# pip's and setuptools' output goes to a log, shown whole only when the install fails: a
# newcomer sees one line, not the editable-install warnings. Upgrading pip may fail offline.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH" >&2; exit 1; }
	@echo "installing hitl-desktop and its tools into $(VENV) (a few minutes the first time)…"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --disable-pip-version-check --upgrade pip >$(INSTALL_LOG) 2>&1 || true
	@$(PY) -m pip install --disable-pip-version-check -e '.[dev]' >>$(INSTALL_LOG) 2>&1 \
	    && $(PY) -c 'import hitl_desktop, PySide6, qasync, sqlalchemy, pytest' >>$(INSTALL_LOG) 2>&1 \
	    || { cat $(INSTALL_LOG) >&2; echo "installing into $(VENV) failed: pip's output is above and in $(INSTALL_LOG)" >&2; exit 1; }
	@touch $(STAMP)

sysdeps:
	@bash .ci/sysdeps.sh

demo: $(STAMP) sysdeps
	@echo "starting the demo console…"
	@$(PY) -m hitl_desktop --demo

test: $(STAMP) sysdeps
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check hitl_desktop tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/engine_bench.py

bench-ui: $(STAMP) sysdeps
	$(PY) bench/ui_bench.py

# Team mode: commit → event in another process on a private, durable PostgreSQL server.
bench-team: $(STAMP) sysdeps
	$(PY) bench/team_latency.py

# hitl-desktop, DBOS and LangGraph side by side (their own venv in bench/peers/.venv).
bench-peers:
	bash bench/peers/run.sh

# Renders the console with the demo data into docs/screenshots/ on a virtual X display.
screenshots: $(STAMP)
	@bash .ci/sysdeps.sh xvfb
	xvfb-run -a -s "-screen 0 1920x1080x24" $(PY) bench/screenshots.py

# The installers take minutes: `make test` does not build them.
package: $(STAMP) sysdeps
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[packaging]' 2>&1 | grep -v '^WARNING: Location' || true
	bash packaging/build.sh

package-test: $(STAMP) sysdeps
	bash packaging/package_test.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
