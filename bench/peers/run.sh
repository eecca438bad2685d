#!/usr/bin/env bash
# make bench-peers: hitl-desktop against DBOS and LangGraph, side by side, in one process tree.
# Creates bench/peers/.venv (the peers are not dependencies of the app), installs the peers and
# this project into it, then runs the driver. Extra arguments go to the driver
# (e.g. `bash bench/peers/run.sh --quick`); BENCH_* variables override the round counts
# (see the top of bench/peers/driver.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3.11}"
venv="$here/.venv"
stamp="$venv/.installed"

command -v "$python" >/dev/null || { echo "needs $python on PATH" >&2; exit 1; }
if [[ ! -f "$stamp" || "$here/requirements.txt" -nt "$stamp" || "$root/pyproject.toml" -nt "$stamp" ]]; then
    test -x "$venv/bin/python" || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt" -e "$here/../.."
    "$venv/bin/python" -c 'import dbos, langgraph, langgraph.checkpoint.sqlite.aio, matplotlib, hitl_desktop.engine'
    touch "$stamp"
fi
exec "$venv/bin/python" "$here/driver.py" "$@"
