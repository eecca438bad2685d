#!/usr/bin/env bash
# Debian packages the tests and the demo need, installed through apt only where missing:
# Qt's runtime libraries; PostgreSQL (the tests start a throwaway server for the target
# database tests; the package's own cluster is not used); a real Secret Service (gnome-keyring
# in a private D-Bus session) for the keyring integration test; Chromium, the browser engine the
# signed links' page is rendered with in a test (headless). Arguments add packages (e.g. xvfb
# for `make screenshots`).
set -euo pipefail
needed=(libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3
        libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 fonts-dejavu-core
        postgresql gnome-keyring dbus dbus-x11 libsecret-tools chromium "$@")
missing=()
for pkg in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "missing system libraries (install them yourself): ${missing[*]}" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system libraries: ${missing[*]}…"
# apt's output is shown only when it fails, whole.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
           "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "installing system libraries failed: apt-get's output is above" >&2
    exit 1
fi
