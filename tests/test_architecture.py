"""The import direction: schema -> resolvers -> inference; jobs -> resolvers, inference."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schema", "resolvers", "jobs", "inference", "migrations")
ALLOWED = {
    "schema": {"schema", "resolvers"},
    "resolvers": {"resolvers", "inference"},
    "jobs": {"jobs", "resolvers", "inference"},
    "inference": {"inference"},
    "migrations": {"resolvers"},
}
# Composition roots wire the object graph and may import any layer.
COMPOSITION_ROOTS = {"schema/app.py", "schema/cli.py", "jobs/worker.py"}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def test_no_module_imports_against_the_layering() -> None:
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in COMPOSITION_ROOTS:
                continue
            for target in imported_packages(path) - ALLOWED[package]:
                wrong.append(f"{relative} imports {target}")
    assert wrong == []


def test_the_check_itself_sees_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import schema.app\nfrom resolvers import x\nfrom . import y\n")
    assert imported_packages(module) == {"schema", "resolvers"}
