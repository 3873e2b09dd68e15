"""The import direction: schema -> resolvers -> inference; jobs -> resolvers, inference; and,
inside `resolvers/`, the rooms' rules (each room's docstring says them)."""

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

# The rooms of `resolvers/` and the rooms each may import. The use cases at the top
# (`creation`, `lexicon`, `preset`, `upload`) and the composition helper (`resources`) join
# the rooms and may import any of them.
ROOMS = ("core", "access", "streaming", "storage", "tools", "guard")
ROOM_ALLOWED = {
    "core": {"core"},
    "access": {"core", "access"},
    "storage": {"core", "storage"},
    "guard": {"core", "guard"},
    "streaming": {"core", "storage", "tools", "streaming"},
    # A tool's `prepare` reads what its caller may use: presets, lexicons, uploads.
    "tools": {"core", "access", "storage", "guard", "tools", "usecases"},
}
TOP = {"__init__", "creation", "lexicon", "preset", "upload", "resources"}
MAX_TOP_MODULES = 12


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from resolvers import creation` imports the module resolvers.creation
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)} & set(PACKAGES)


def room_of(module: str) -> str | None:
    """The room of a `resolvers` module: a sub-package's name, "usecases" for the modules at
    the top, None for the package itself."""
    parts = module.split(".")
    if parts[0] != "resolvers" or len(parts) < 2:
        return None
    if parts[1] in ROOMS:
        return parts[1]
    return "usecases" if parts[1] in TOP else None


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


def test_each_room_of_resolvers_imports_only_the_rooms_it_may() -> None:
    wrong = []
    for path in sorted((ROOT / "resolvers").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        room = room_of(module)
        if room is None or room == "usecases":
            continue
        for target in imported_modules(path):
            target_room = room_of(target)
            if target_room is not None and target_room not in ROOM_ALLOWED[room]:
                wrong.append(f"{module} ({room}) imports {target} ({target_room})")
    assert wrong == []


def test_resolvers_top_holds_only_the_use_cases_and_every_room_says_what_it_is() -> None:
    top = sorted(p.stem for p in (ROOT / "resolvers").glob("*.py"))
    assert set(top) == TOP and len(top) <= MAX_TOP_MODULES
    rooms = sorted(p.name for p in (ROOT / "resolvers").iterdir() if (p / "__init__.py").exists())
    assert rooms == sorted(ROOMS)
    for room in ROOMS:
        docstring = ast.get_docstring(
            ast.parse((ROOT / "resolvers" / room / "__init__.py").read_text())
        )
        assert docstring, f"resolvers/{room}/__init__.py has no docstring"


def test_the_tests_mirror_the_rooms() -> None:
    for room in ROOMS:
        tests = list((ROOT / "tests" / "resolvers" / room).glob("test_*.py"))
        assert tests, f"tests/resolvers/{room}/ has no tests"
    assert not list((ROOT / "tests" / "resolvers").glob("test_*.py"))


def test_the_check_itself_sees_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import schema.app\nfrom resolvers import x\nfrom . import y\n")
    assert imported_packages(module) == {"schema", "resolvers"}


def test_the_room_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from resolvers.access import auth\nfrom resolvers.streaming.feed import Feed\n"
    )
    rooms = {room_of(name) for name in imported_modules(module)}
    assert rooms == {"access", "streaming"}
    assert "access" not in ROOM_ALLOWED["streaming"] and "streaming" not in ROOM_ALLOWED["access"]
    assert "streaming" not in ROOM_ALLOWED["tools"]
