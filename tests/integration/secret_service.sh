#!/usr/bin/env bash
# Runs a command against a real, private Secret Service: start it under dbus-run-session.
#
#   dbus-run-session -- bash tests/integration/secret_service.sh DIR COMMAND [ARGS...]
#
# DIR (created if needed) holds the keyring files and the runtime dir, so nothing touches the
# user's own keyring. gnome-keyring-daemon starts with its secrets component, unlocked with a
# throwaway password, and exports its variables; COMMAND then runs with them. When COMMAND ends,
# dbus-run-session closes the bus and the daemon exits with it.
# Needs Debian: gnome-keyring dbus (dbus-run-session) libsecret-tools (secret-tool, optional).
set -euo pipefail
dir=$1
shift
mkdir -p "$dir/xdg-data" "$dir/xdg-config" "$dir/run"
chmod 700 "$dir/run"
export XDG_DATA_HOME="$dir/xdg-data" XDG_CONFIG_HOME="$dir/xdg-config" XDG_RUNTIME_DIR="$dir/run"
eval "$(printf 'throwaway-test-password' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
"$@"
