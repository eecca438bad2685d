"""Check a Linux bundle's system libraries against the .deb's Depends; print the Depends line.

    python packaging/check_depends.py BUNDLE_DIR packaging/debian/depends

Every shared library that a file in BUNDLE_DIR links (DT_NEEDED) and the bundle does not
ship must come, on this machine, from a package named in the depends file (or from libc6,
whose minimum version is taken from the newest GLIBC_x.y symbol version the bundle uses).
Prints the Depends value on stdout; exits 1 naming each library that is not covered or not
found at all, so a spec change that drops a library from the bundle cannot go unnoticed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)")
# Provided by libc6 itself (glibc >= 2.34 merged most of these into libc.so.6).
LIBC6 = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux[-\w]*)\.so")


def elf_files(root: Path) -> list[Path]:
    files = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    files.append(path)
    return files


def needed(path: Path) -> set[str]:
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip().startswith("NEEDED")}


def glibc_version(path: Path) -> tuple[int, int]:
    out = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True).stdout
    return max(((int(a), int(b)) for a, b in GLIBC.findall(out)), default=(0, 0))


def system_libraries() -> dict[str, str]:
    """soname → path, from the dynamic linker's cache (this machine's architecture only)."""
    machine = os.uname().machine.replace("_", "-")  # x86_64 → x86-64 as ldconfig prints it
    libs: dict[str, str] = {}
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        flags, _, path = rest.partition(") => ")
        if machine in flags or "x86" not in flags:
            libs.setdefault(name, path)
    return libs


def package_of(path: str) -> str | None:
    real = os.path.realpath(path)
    candidates = {path, real}
    for p in list(candidates):  # merged /usr: dpkg may know either spelling
        candidates.add(p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p)
    for candidate in candidates:
        done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0].strip()
    return None


def main(bundle: Path, depends_file: Path) -> int:
    declared = [
        line.strip()
        for line in depends_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    allowed = {alt.split()[0] for line in declared for alt in line.split("|")}
    files = elf_files(bundle)
    shipped = {p.name for p in bundle.rglob("*")}
    system = system_libraries()
    problems: list[str] = []
    users: dict[str, list[str]] = {}
    for path in files:
        for name in needed(path) - shipped:
            users.setdefault(name, []).append(str(path.relative_to(bundle)))
    for name, who in sorted(users.items()):
        if LIBC6.match(name):
            continue
        where = system.get(name)
        if where is None:
            problems.append(f"{name}: not found on this machine (needed by {', '.join(who[:3])})")
            continue
        package = package_of(where)
        if package is None:
            problems.append(f"{name}: {where} belongs to no Debian package")
        elif package.split(":")[0] not in allowed:
            problems.append(
                f"{name}: from package {package}, which is not in {depends_file} "
                f"(needed by {', '.join(who[:3])})"
            )
    major, minor = max(glibc_version(p) for p in files)
    if problems:
        print("The bundle links libraries the .deb does not depend on:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(", ".join([f"libc6 (>= {major}.{minor})", *declared]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
