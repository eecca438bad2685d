#!/usr/bin/env bash
# macOS disk image of hitl-desktop.app (built by PyInstaller's BUNDLE in hitl-desktop.spec):
#
#   .venv/bin/python -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller \
#       packaging/hitl-desktop.spec
#   bash packaging/macos/make_dmg.sh          # → dist/hitl-desktop-<version>.dmg
#
# The image holds the app and a link to /Applications, to drag it onto. Signing: set
# HITL_CODESIGN_IDENTITY when running PyInstaller (the spec passes it to codesign), then
# notarize the .dmg with `xcrun notarytool submit … --wait` and `xcrun stapler staple`;
# unsigned, the app runs from a terminal and from Finder after "Open" in its context menu.
# Needs macOS (hdiutil): not run on the Linux development machine, but in the CI workflow
# .github/workflows/installers.yml on a macOS runner.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
APP=dist/hitl-desktop.app
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
DMG=dist/hitl-desktop-$VERSION.dmg

[ -d "$APP" ] || { echo "no $APP: run PyInstaller on packaging/hitl-desktop.spec first" >&2; exit 1; }
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
# ditto keeps the bundle's symlinks, extended attributes and signature intact.
ditto "$APP" "$STAGE/hitl-desktop.app"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "hitl-desktop $VERSION" -srcfolder "$STAGE" -fs HFS+ \
    -format UDZO -imagekey zlib-level=9 -ov "$DMG"
hdiutil verify "$DMG"
echo "$DMG: $(du -h "$DMG" | cut -f1)"
