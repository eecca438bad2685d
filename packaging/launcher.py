"""The frozen app's entry script (PyInstaller runs this): `hitl-desktop [--self-test]`.

`--self-test` and `--startup-probe` are dispatched here too, before the console's display
check, so that the bundle answers them whatever `hitl_desktop.__main__` already handles.
Started under the name `hitl` (the .deb links /usr/bin/hitl to the bundle), it is the
command line instead: one bundle, two programs.
"""

import sys
from pathlib import Path

CLI_NAMES = ("hitl", "hitl.exe")


def run() -> int:
    args = sys.argv[1:]
    if Path(sys.argv[0]).name.lower() in CLI_NAMES:
        from hitl_desktop.cli import main as cli

        return cli(args)
    if "--self-test" in args:
        from hitl_desktop.selftest import main as self_test

        return self_test(args)
    if "--startup-probe" in args:
        from hitl_desktop.selftest import startup_probe

        return startup_probe(args)
    from hitl_desktop.__main__ import main

    return main(args)


if __name__ == "__main__":
    sys.exit(run())
