"""The schema as a contract with partners: the committed SDL against the last released one.

`schema/released.graphql` is the SDL partners last generated clients from. A change that
would break such a client (graphql-core's `find_breaking_changes`: a field removed, a type
made stricter or looser where clients rely on it...) fails `make check`, unless its exact
description is listed in `schema/breaking-changes.txt` with the reason it is intended.
Releasing (`creation-king check-schema --release`) makes the current SDL the released one
and empties that list.
"""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as build_sdl
from graphql import find_breaking_changes

RELEASED_PATH = Path(__file__).with_name("released.graphql")
INTENDED_PATH = Path(__file__).with_name("breaking-changes.txt")
_INTENDED_HEADER = """\
# Breaking changes against schema/released.graphql that are intended, one per line, exactly
# as `creation-king check-schema` prints them; a comment after " # " says why.
# `creation-king check-schema --release` empties this list.
"""


def breaking_changes(released_sdl: str, current_sdl: str) -> list[str]:
    """What in `current_sdl` breaks a client of `released_sdl`, one description each."""
    changes = find_breaking_changes(build_sdl(released_sdl), build_sdl(current_sdl))
    return sorted(f"{change.type.name}: {change.description}" for change in changes)


def intended(text: str) -> set[str]:
    """The lines of breaking-changes.txt, without comments."""
    lines = (line.split(" # ", 1)[0].strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def unintended_changes(current_sdl: str) -> list[str]:
    """Breaking changes of `current_sdl` that breaking-changes.txt does not list."""
    allowed = intended(INTENDED_PATH.read_text()) if INTENDED_PATH.exists() else set()
    return [c for c in breaking_changes(RELEASED_PATH.read_text(), current_sdl) if c not in allowed]


def release(current_sdl: str) -> None:
    """Make `current_sdl` the released contract; no breaking change is pending after it."""
    RELEASED_PATH.write_text(current_sdl)
    INTENDED_PATH.write_text(_INTENDED_HEADER)
