"""The units are a leaf: every layer imports them, so they import no other part of the app."""

import ast
from pathlib import Path

import hitl_desktop.units


def test_the_units_import_nothing_of_the_app_and_no_qt():
    folder = Path(hitl_desktop.units.__file__).parent
    imported = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert not {
        name for name in imported if name.startswith(("..", "hitl_desktop", "PySide6", "qasync"))
    }
