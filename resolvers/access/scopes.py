"""The scopes an API key or OAuth client may hold, and how they match.

`tools:<tool>` starts creations with one tool (`tools:*`: any tool); the others name an
area and an action. A person's own session needs no scopes: it may do everything a user may.
"""

from __future__ import annotations

from collections.abc import Iterable

from resolvers.core.errors import InvalidInput

CREATIONS_READ = "creations:read"  # read, list and follow creations
CREATIONS_CANCEL = "creations:cancel"
LEXICONS_READ = "lexicons:read"
LEXICONS_WRITE = "lexicons:write"
PRESETS_READ = "presets:read"
PRESETS_WRITE = "presets:write"
UPLOADS_WRITE = "uploads:write"  # create and read uploads
TOOLS_ANY = "tools:*"

AREA_SCOPES: dict[str, str] = {
    CREATIONS_READ: "Read, list and follow your creations.",
    CREATIONS_CANCEL: "Cancel your running creations.",
    LEXICONS_READ: "Read your lexicons.",
    LEXICONS_WRITE: "Create, change and delete your lexicons.",
    PRESETS_READ: "Read your saved SWOT templates and tarot spreads.",
    PRESETS_WRITE: "Save and delete SWOT templates and tarot spreads.",
    UPLOADS_WRITE: "Upload images and audio, and read their state.",
    TOOLS_ANY: "Start creations with any tool.",
}
MAX_SCOPES = 40
# Names an external issuer may use for ours (besides ours and Auth0's `read:creations` form).
_EXTERNAL_ALIASES = {"creations:write": TOOLS_ANY}


def tool_scope(tool: str) -> str:
    """The scope that allows starting creations with `tool`."""
    return f"tools:{tool}"


def scope_allows(held: frozenset[str], wanted: str) -> bool:
    """Whether the held scopes cover `wanted` (`tools:*` covers every tool)."""
    return wanted in held or (wanted.startswith("tools:") and TOOLS_ANY in held)


def check_scopes(scopes: Iterable[str], tools: Iterable[str]) -> frozenset[str]:
    """Validated, de-duplicated scopes; InvalidInput names the first unknown one."""
    known = set(AREA_SCOPES) | {tool_scope(tool) for tool in tools}
    chosen = frozenset(scope.strip() for scope in scopes)
    if not chosen:
        raise InvalidInput("scopes: give at least one scope", field="scopes")
    if len(chosen) > MAX_SCOPES:
        raise InvalidInput(f"scopes: at most {MAX_SCOPES}", field="scopes")
    for scope in sorted(chosen):
        if scope not in known:
            raise InvalidInput(
                f"scopes: unknown scope {scope[:60]!r}; known: {', '.join(sorted(known))}",
                field="scopes",
            )
    return chosen


def external_scopes(claimed: Iterable[str]) -> frozenset[str] | None:
    """Our scopes among an external issuer's token scopes: ours by name (`creations:read`),
    in Auth0's `action:area` form (`read:creations`), `creations:write` as `tools:*`; others
    (`openid`...) are dropped. None when it names none of ours: an issuer that defines no
    scopes for our API signs people in, and a person's session needs none."""
    ours: set[str] = set()
    for scope in claimed:
        first, _, second = scope.strip().partition(":")
        for spelled in (f"{first}:{second}", f"{second}:{first}"):
            name = _EXTERNAL_ALIASES.get(spelled, spelled)
            if name in AREA_SCOPES or (name.startswith("tools:") and len(name) > len("tools:")):
                ours.add(name)
                break
    return frozenset(ours) if ours else None
