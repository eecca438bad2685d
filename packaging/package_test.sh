#!/usr/bin/env bash
# `make package-test`: install the .deb on this machine, run the installed app's self-test
# (offscreen, and on a virtual X display when xvfb-run is there), time its start, remove the
# package and check that nothing of it is left. Builds the .deb first when dist/ has none for
# the current version. Needs root (or sudo) for dpkg.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
APP=hitl-desktop
START_RUNS=${START_RUNS:-5}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
DEB=dist/${APP}_${VERSION}_$(dpkg --print-architecture).deb
[ -f "$DEB" ] || bash packaging/build.sh

say() { printf '\n== %s\n' "$*"; }
fail() { echo "package-test FAILED: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$APP" 2>/dev/null | grep -q "install ok installed"; }

if installed; then
    fail "$APP is already installed here ($(dpkg-query -W -f='${Version}' $APP)); remove it first"
fi
cleanup() {  # on any failure too: leave the machine as it was
    if installed; then $SUDO dpkg -r "$APP" >/dev/null || true; fi
    rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT

say "dpkg -i $DEB"
t0=$(date +%s.%N)
if ! $SUDO dpkg -i "$DEB"; then
    echo "installing the missing dependencies with apt-get"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -f -y -qq >/dev/null
fi
installed || fail "dpkg did not install $APP"
echo "installed in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

say "installed files"
for path in /usr/bin/$APP /usr/bin/hitl /opt/$APP/$APP /usr/share/applications/$APP.desktop \
    /usr/share/icons/hicolor/scalable/apps/$APP.svg \
    /usr/share/icons/hicolor/256x256/apps/$APP.png; do
    [ -e "$path" ] || fail "$path is missing"
    echo "ok    $path"
done
[ "$(command -v $APP)" = "/usr/bin/$APP" ] || fail "$APP is not /usr/bin/$APP on PATH"

# A login-like environment: no display, a fresh HOME (nothing of this checkout or of root's).
run_clean() {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP/home" \
        LANG=C.UTF-8 "$@"
}
mkdir -p "$TMP/home"

say "/usr/bin/$APP --self-test (offscreen)"
run_clean /usr/bin/$APP --self-test || fail "the self-test failed (exit $?)"

if command -v xvfb-run >/dev/null; then
    say "/usr/bin/$APP --self-test on a virtual X display (xcb: the Depends libraries)"
    run_clean xvfb-run -a env QT_QPA_PLATFORM=xcb /usr/bin/$APP --self-test \
        || fail "the self-test on X failed"
else
    echo "(xvfb-run not installed: the X11 platform plugin was not exercised)"
fi

say "/usr/bin/hitl: the command line from the bundle (demo target, profile, request, approve)"
run_clean /usr/bin/hitl demo-db "$TMP/target.db" || fail "hitl demo-db failed"
run_clean /usr/bin/hitl profile add shop --target "$TMP/target.db" \
    --deny customers.password_hash || fail "hitl profile add failed"
run_clean /usr/bin/hitl request 'Refund $20 on invoice 1042' --profile shop \
    --store "$TMP/runs.db" --json >"$TMP/request.json" || fail "hitl request failed"
token=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["token_id"])' "$TMP/request.json") \
    || fail "hitl request printed no token: $(cat "$TMP/request.json")"
run_clean /usr/bin/hitl approve "$token" --store "$TMP/runs.db" --reviewer package-test \
    | tee "$TMP/approve.txt" || fail "hitl approve failed"
grep -q '^applied: ' "$TMP/approve.txt" || fail "hitl approve did not apply the refund"
run_clean /usr/bin/hitl approve "$token" --store "$TMP/runs.db" 2>"$TMP/again.txt" \
    && fail "approving twice succeeded"
grep -q 'already decided' "$TMP/again.txt" || fail "a second approval: $(cat "$TMP/again.txt")"
echo "ok    hitl demo-db, profile add, request, approve (and a second approve refused)"

say "start of the installed app: launch -> main window, offscreen, median of $START_RUNS"
run_clean "$PY" packaging/measure_start.py /usr/bin/$APP --runs "$START_RUNS"

say "dpkg -r $APP"
$SUDO dpkg -r "$APP"
installed && fail "$APP is still installed"
for path in /usr/bin/$APP /usr/bin/hitl /opt/$APP /usr/share/applications/$APP.desktop \
    /usr/share/icons/hicolor/scalable/apps/$APP.svg; do
    [ ! -e "$path" ] || fail "$path is left after dpkg -r"
done
echo "removed: no $APP files left"
echo
echo "package-test passed"
