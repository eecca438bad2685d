"""Each package is used through its public face: nothing outside ``agent/`` imports an agent
submodule, nothing outside ``engine/`` an engine submodule, so either can be rearranged behind
its ``__init__`` without touching the layers above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hitl_desktop

PACKAGE = Path(hitl_desktop.__file__).parent
FACES = ("agent", "engine")
"""The packages whose submodules only they themselves import."""


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at *path* in the package at *root*."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, public: dict[str, set[str]]
) -> list[str]:
    """The absolute names *node* imports in module *module*: for ``from X import a``, ``X`` and
    ``X.a`` (``a`` may be a submodule) unless ``a`` is one of the names *public* says X exports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    exported = public.get(base, set())
    return [base, *(f"{base}.{a.name}" for a in node.names if a.name not in exported)]


def exports(package: Path) -> set[str]:
    """The names in the ``__all__`` of the package at *package*."""
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def is_submodule(name: str, root: Path, face: str) -> bool:
    """Whether *name* is a module inside ``<root>.<face>`` (not the package itself)."""
    prefix = f"{root.name}.{face}."
    if not name.startswith(prefix):
        return False
    first = name[len(prefix) :].split(".")[0]
    home = root / face
    return (home / f"{first}.py").is_file() or (home / first / "__init__.py").is_file()


def layer_violations(root: Path) -> list[str]:
    """``file:line: import`` for every import in the package at *root* that goes past a
    package's public face: into `FACES` from outside them, or from the agent into the engine's
    submodules."""
    public = {f"{root.name}.{face}": exports(root / face) for face in FACES}
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        inside = path.relative_to(root).parts[0]
        module = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = imported(node, module, path.name == "__init__.py", public)
            for face in FACES:
                if face == inside or (inside == "engine" and face == "agent"):
                    continue  # a package's own modules; the engine never imports the agent
                if any(is_submodule(name, root, face) for name in names):
                    where = path.relative_to(root.parent).as_posix()
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
                    break
    return found


def test_every_package_is_imported_through_its_public_face():
    violations = layer_violations(PACKAGE)
    assert not violations, "imports past a package's public face (import from the package):\n" + (
        "\n".join(violations)
    )


def write(root: Path, name: str, text: str = "") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A small package shaped like hitl_desktop, every import through the public faces."""
    root = tmp_path / "hitl_desktop"
    write(root, "__init__.py")
    write(root, "agent/__init__.py", "from .diff import Diff\nfrom ..engine import Engine\n")
    write(root, "agent/diff.py", "from ..engine import Engine, wait\n\nclass Diff: ...\n")
    write(
        root,
        "engine/__init__.py",
        'from . import wait\nfrom .engine import Engine\n\n__all__ = ["Engine", "wait"]\n',
    )
    write(root, "engine/engine.py", "class Engine: ...\n")
    write(root, "engine/serde.py", "def seconds(text): ...\n")
    write(root, "engine/wait.py", "async def for_token(token): ...\n")
    write(root, "ui/__init__.py")
    write(root, "ui/view.py", "from ..agent import Diff\nfrom hitl_desktop.engine import Engine\n")
    write(root, "config.py", "from .agent import Diff\n")
    return root


def test_imports_through_the_public_faces_pass(package: Path):
    assert layer_violations(package) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("ui/view.py", "from ..agent.diff import Diff", "from ..agent.diff import Diff"),
        ("ui/view.py", "from ..agent import diff", "from ..agent import diff"),
        ("ui/view.py", "import hitl_desktop.engine.serde", "import hitl_desktop.engine.serde"),
        ("config.py", "from .engine.engine import Engine", "from .engine.engine import Engine"),
        (
            "config.py",
            "def later():\n    from hitl_desktop.agent.diff import Diff",
            "from hitl_desktop.agent.diff import Diff",
        ),
        ("agent/diff.py", "from ..engine.serde import seconds", "from ..engine.serde import"),
        ("agent/__init__.py", "from ..engine import serde", "from ..engine import serde"),
    ],
)
def test_an_import_past_a_public_face_is_named_with_its_file_and_line(
    package: Path, name: str, text: str, expected: str
):
    path = package / name
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, text]) + "\n", encoding="utf-8")
    line = len(lines) + 1 + text.count("\n")
    [violation] = layer_violations(package)
    assert violation.startswith(f"hitl_desktop/{name}:{line}: {expected}")
