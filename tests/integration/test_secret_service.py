"""The keyring path against the real thing: gnome-keyring's Secret Service in a private D-Bus.

``secret_service.sh`` starts gnome-keyring-daemon (secrets component, unlocked) inside
``dbus-run-session``; a child Python process then stores, reads and deletes the key through
``hitl_desktop.secrets`` with keyring's own backend detection, and ``secret-tool`` (libsecret,
another client of the same service) confirms the item is really in the Secret Service.

Needs the Debian packages gnome-keyring, dbus and libsecret-tools (CI installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "secret_service.sh"
KEY = "sk-proj-INTEGRATIONabcdefghijklmnopqrstuvwxyz0123456789q7"

REQUIRED = {
    "dbus-run-session": "dbus",
    "gnome-keyring-daemon": "gnome-keyring",
    "secret-tool": "libsecret-tools",
}
missing = {binary: package for binary, package in REQUIRED.items() if not shutil.which(binary)}
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=(
        f"no Secret Service to test against: {', '.join(missing)} not on PATH "
        f"(apt-get install {' '.join(sorted(set(missing.values())))})"
    ),
)

# Runs inside the private session. Reports through one JSON line; the key never printed.
CHILD = r"""
import json, os, subprocess, sys
import keyring
from hitl_desktop import secrets

key = os.environ["HITL_TEST_KEY"]
no_env = {}  # so OPENAI_API_KEY of the test's environment cannot answer for the keyring
backend = type(keyring.get_keyring())
report = {"backend": f"{backend.__module__}.{backend.__name__}"}
info = secrets.backend_info()
report.update(name=info.name, usable=info.usable, info_backend=info.backend)
report["before"] = secrets.get_api_key(no_env)
secrets.set_api_key(key)
report["read_back"] = secrets.get_api_key(no_env) == key
report["source"] = secrets.key_source(no_env)
# Another process, a fresh keyring instance: the key is in the service, not in this process.
other = subprocess.run(
    [sys.executable, "-c",
     "from hitl_desktop import secrets; import sys; "
     "sys.stdout.write(secrets.get_api_key({}) or '')"],
    capture_output=True, text=True, timeout=60,
)
report["other_process"] = other.stdout == key
# A different client of the Secret Service (libsecret) finds the same item.
lookup = subprocess.run(
    ["secret-tool", "lookup", "service", secrets.SERVICE, "username", secrets.USERNAME],
    capture_output=True, text=True, timeout=30,
)
report["secret_tool"] = lookup.stdout.strip() == key
secrets.delete_api_key()
report["after_delete"] = secrets.get_api_key(no_env)
secrets.delete_api_key()  # deleting again is fine
lookup = subprocess.run(
    ["secret-tool", "lookup", "service", secrets.SERVICE, "username", secrets.USERNAME],
    capture_output=True, text=True, timeout=30,
)
report["secret_tool_after_delete"] = lookup.stdout.strip()
print(json.dumps(report))
"""


def test_the_key_round_trips_through_a_real_secret_service(tmp_path: Path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DBUS_", "GNOME_KEYRING", "XDG_", "PYTHON_KEYRING"))
        and name != "OPENAI_API_KEY"
    }
    env["HOME"] = str(tmp_path / "home")
    env["HITL_TEST_KEY"] = KEY
    (tmp_path / "home").mkdir()
    try:
        done = subprocess.run(
            [
                "dbus-run-session",
                "--",
                "bash",
                str(SCRIPT),
                str(tmp_path / "session"),
                sys.executable,
                "-c",
                CHILD,
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the Secret Service session did not finish in {exc.timeout} s")
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stderr[-3000:]}"
    assert KEY not in done.stdout and KEY not in done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["backend"] == "keyring.backends.SecretService.Keyring"
    assert report["info_backend"] == "keyring.backends.SecretService.Keyring"
    assert report["usable"] is True
    assert report["name"].startswith("Secret Service")
    assert report["before"] is None
    assert report["read_back"] is True
    assert report["source"] == "keyring"
    assert report["other_process"] is True
    assert report["secret_tool"] is True
    assert report["after_delete"] is None
    assert report["secret_tool_after_delete"] == ""

    # gnome-keyring kept the item encrypted on disk: the key is in no file of the session.
    keyrings = tmp_path / "session" / "xdg-data" / "keyrings"
    assert keyrings.is_dir()
    leaked = [
        path for path in tmp_path.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()
    ]
    assert leaked == []
