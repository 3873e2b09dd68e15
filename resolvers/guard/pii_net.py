"""E-mail and IP addresses.

E-mail: an ASCII local part, `@`, dotted domain labels and a top-level domain of letters (so
`user@localhost` and internationalised addresses are not matched). IP: dotted quads and IPv6
that the `ipaddress` module accepts, except loopback and unspecified addresses (`127.0.0.1`,
`0.0.0.0`, `::1`), which identify no one. A dotted quad is also a valid four-part version
number: it counts as one (and is left) when it follows `v`, `version`, `release`, `build`,
`firmware`, `版本` and the like, or goes on with `.5` or `-beta`; so does a section number
after `section`, `chapter`, `§` or `第`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from resolvers.guard.pii_span import Kind, Span, after_label

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_%+\-][A-Za-z0-9._%+\-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-@])"
)
_IPV4 = re.compile(
    r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9]|-[A-Za-z])"
)
# Runs of hex digits, colons and dots with two colons at least; validated and trimmed below.
_IPV6_RUN = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
_VERSION = re.compile(
    r"(?:(?<![A-Za-z])v|(?<![A-Za-z])(?:version|ver|release|build|firmware|kernel|chrome"
    r"|upgrade[ds]?\s+to|update[ds]?\s+to|section|sect|chapter|clause)|§"
    r"|版本号?|固件|升级到|更新到|章节|条款|第)[ \t:.=]*\Z",
    re.IGNORECASE,
)
_WORD = re.compile(r"[0-9A-Za-z_]")


def emails(folded: str) -> Iterator[Span]:
    """E-mail addresses; the key is the address casefolded."""
    for match in _EMAIL.finditer(folded):
        yield Span(Kind.EMAIL, match.start(), match.end(), match.group().casefold())


def _public(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return str(address)


def ipv4s(folded: str) -> Iterator[Span]:
    """Dotted-quad IPv4 addresses that do not read as version numbers; the key is the address."""
    for match in _IPV4.finditer(folded):
        if after_label(folded, match.start(), _VERSION):
            continue
        key = _public(match.group())
        if key is not None:
            yield Span(Kind.IP, match.start(), match.end(), key)


def ipv6s(folded: str) -> Iterator[Span]:
    """IPv6 addresses (also `::ffff:192.0.2.1`); the key is the compressed form."""
    for match in _IPV6_RUN.finditer(folded):
        start, end = match.span()
        if (start and _WORD.match(folded, start - 1)) or _WORD.match(folded, end):
            continue  # part of a longer word: `std::vector`, a hash, a timestamp
        # A label's colon before the address or a sentence's dot after it is not part of it.
        if folded.startswith(":", start) and not folded.startswith("::", start):
            start += 1
        while end > start and (
            folded[end - 1] == "." or (folded[end - 1] == ":" and folded[end - 2] != ":")
        ):
            end -= 1
        key = _public(folded[start:end])
        if key is not None and ":" in key:
            yield Span(Kind.IP, start, end, key)
