#!/usr/bin/env bash
# `make package`: the PyInstaller bundle (dist/hitl-desktop/), its self-test, the Debian package
# (dist/hitl-desktop_VERSION_ARCH.deb), and the figures: bundle and .deb sizes, build times, and
# the time from launch to the main window (offscreen, median of 5).
#
#   DEB_COMPRESS=zstd bash packaging/build.sh    # 1 s instead of 1–2 min, but 68 MB: over 60
#   START_RUNS=9 bash packaging/build.sh          # more launches for the start-time median
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DEB_COMPRESS=${DEB_COMPRESS:-xz}
START_RUNS=${START_RUNS:-5}
APP=hitl-desktop
DIST=dist
BUNDLE=$DIST/$APP
STAGE=build/deb/$APP

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
mb() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1000000 }'; }
say() { printf '\n== %s\n' "$*"; }

# ---- tools: PyInstaller in the venv; objdump (PyInstaller needs it on Linux) and dpkg-deb.
test -x "$PY" || { echo "no $PY: run 'make test' or create the venv first" >&2; exit 1; }
if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
    echo "installing PyInstaller into the venv"
    "$PY" -m pip install --quiet --disable-pip-version-check "pyinstaller>=6.10,<7"
fi
missing=()
command -v objdump >/dev/null || missing+=(binutils)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing ${missing[*]}"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
DEB=$DIST/${APP}_${VERSION}_${ARCH}.deb

# ---- the bundle
say "PyInstaller bundle ($VERSION)"
t0=$(now)
"$PY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath build/pyinstaller packaging/$APP.spec
bundle_s=$(seconds "$t0" "$(now)")
bundle_bytes=$(du -sb "$BUNDLE" | cut -f1)
echo "$BUNDLE: $(mb "$bundle_bytes") MB in ${bundle_s} s"

say "self-test of the bundle"
env -u DISPLAY -u WAYLAND_DISPLAY "$BUNDLE/$APP" --self-test

say "system libraries vs Depends"
DEPENDS=$("$PY" packaging/check_depends.py "$BUNDLE" packaging/debian/depends)
echo "Depends: $DEPENDS"

# ---- the Debian package
say "Debian package ($DEB_COMPRESS)"
t0=$(now)
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
    "$STAGE/usr/share/doc/$APP"
cp -a "$BUNDLE" "$STAGE/opt/$APP"
# The bootloader finds _internal/ through /proc/self/exe, so a symlink is enough.
ln -s "/opt/$APP/$APP" "$STAGE/usr/bin/$APP"
ln -s "/opt/$APP/$APP" "$STAGE/usr/bin/hitl"  # the same bundle, started as the command line
install -m 644 packaging/debian/$APP.desktop "$STAGE/usr/share/applications/$APP.desktop"
install -m 644 packaging/debian/copyright "$STAGE/usr/share/doc/$APP/copyright"
install -D -m 644 resources/$APP.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/$APP.svg"
for dir in build/icons/hicolor/*/; do  # rendered by the spec (packaging/make_icons.py)
    size=$(basename "$dir")
    install -D -m 644 "$dir/apps/$APP.png" "$STAGE/usr/share/icons/hicolor/$size/apps/$APP.png"
done
chmod -R u+rwX,go+rX,go-w "$STAGE"
installed_kb=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$installed_kb/" \
    -e "s/@DEPENDS@/$DEPENDS/" packaging/debian/control.in > "$STAGE/DEBIAN/control"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$STAGE/usr/share/applications/$APP.desktop"
fi
rm -f "$DIST"/${APP}_*.deb
dpkg-deb --root-owner-group -Z"$DEB_COMPRESS" --build "$STAGE" "$DEB" >/dev/null
deb_s=$(seconds "$t0" "$(now)")
deb_bytes=$(stat -c %s "$DEB")
echo "$DEB: $(mb "$deb_bytes") MB in ${deb_s} s"

# ---- start time of the bundle (the same files the .deb installs)
say "launch → main window, offscreen, median of $START_RUNS"
start=$("$PY" packaging/measure_start.py "$BUNDLE/$APP" --runs "$START_RUNS")
echo "$start"
start_median=$(sed -n 's/^start_median_s=//p' <<<"$start")
start_runs=$(sed -n 's/^start_runs_s=//p' <<<"$start")
start_first=$(sed -n 's/^start_first_s=//p' <<<"$start")

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "NOT met" }'; }
{
    echo "version=$VERSION"
    echo "bundle_mb=$(mb "$bundle_bytes")"
    echo "bundle_build_s=$bundle_s"
    echo "deb=$DEB"
    echo "deb_mb=$(mb "$deb_bytes")"
    echo "deb_compression=$DEB_COMPRESS"
    echo "deb_build_s=$deb_s"
    echo "start_median_s=$start_median"
    echo "start_runs_s=$start_runs"
    echo "start_first_s=$start_first"
} > "$DIST/figures.txt"

cat <<EOF

== figures ($DIST/figures.txt; MB = 10^6 bytes; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))
bundle        $(mb "$bundle_bytes") MB   (PyInstaller one-folder, built in ${bundle_s} s)
.deb          $(mb "$deb_bytes") MB   ($DEB_COMPRESS, built in ${deb_s} s)   target <= 60 MB: $(verdict "$(mb "$deb_bytes")" 60)
start         ${start_median} s median   (launch -> main window shown, offscreen; runs: ${start_runs}; first launch with a new store: ${start_first} s)   target <= 1.5 s: $(verdict "$start_median" 1.5)
EOF
