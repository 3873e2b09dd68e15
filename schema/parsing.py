"""Parsing and validation of GraphQL documents, each cached once per distinct text.

The caches are bounded by the bytes of text they hold, not only by entries: a parsed
document takes tens of times its text in memory, and 512 entries of 1 MB documents (a public
query behind a long comment) once came to about 1.4 GB. Documents over `CACHEABLE_CHARS` are
parsed and validated every time they come, never kept; they are rare and the callers who
may send them are signed in (`MAX_ANONYMOUS_CHARS`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse, validate
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from schema.guards import introspects

MAX_TOKENS = 2_000  # tokens in one GraphQL document, checked by the parser
MAX_ANONYMOUS_CHARS = 16 * 1024  # a document from a caller without credentials
CACHEABLE_CHARS = 16 * 1024  # longer documents are never cached
CACHE_ENTRIES = 512
CACHE_CHARS = 2 * 1024 * 1024  # of document text, per cache

V = TypeVar("V")


@dataclass
class TextCache(Generic[V]):
    """Values by document text, least recently used out first, bounded by entries and by
    the characters of the texts it holds."""

    entries: int = CACHE_ENTRIES
    chars: int = CACHE_CHARS
    hits: int = 0
    misses: int = 0
    _values: OrderedDict[tuple[str, object], V] = field(default_factory=OrderedDict)
    _held: int = 0

    def get(self, text: str, extra: object, make: Callable[[], V]) -> V:
        """The value for (`text`, `extra`), made by `make` on a miss (and kept if small)."""
        key = (text, extra)
        value = self._values.get(key)
        if value is not None:
            self.hits += 1
            self._values.move_to_end(key)
            return value
        self.misses += 1
        value = make()
        if len(text) <= CACHEABLE_CHARS:
            self._values[key] = value
            self._held += len(text)
            while len(self._values) > self.entries or self._held > self.chars:
                (dropped, _), _ = self._values.popitem(last=False)
                self._held -= len(dropped)
        return value

    @property
    def held_chars(self) -> int:
        """The characters of text the cache holds now."""
        return self._held


_PARSED: TextCache[DocumentNode] = TextCache()
_VALIDATED: TextCache[tuple[list[GraphQLError], bool]] = TextCache()


def parse_cached(query: str, max_tokens: int = MAX_TOKENS) -> DocumentNode:
    """The parsed document (GraphQLError when it does not parse: never cached)."""
    return _PARSED.get(query, max_tokens, lambda: parse(query, max_tokens=max_tokens))


def validate_cached(
    schema: GraphQLSchema,
    query: str,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
    *,
    hide_suggestions: bool = False,
) -> tuple[list[GraphQLError], bool]:
    """A document's validation errors (without "Did you mean" hints when
    `hide_suggestions`), and whether it introspects (`__schema`, `__type`).

    Keyed by the document's text, not its parsed form: hashing a graphql-core document
    walks every node (170 us for the introspection query, on every request), a string's
    hash is a fraction of that."""

    def check() -> tuple[list[GraphQLError], bool]:
        document = parse_cached(query, max_tokens)
        # strawberry's validate_document, plus graphql-core's hide_suggestions
        all_rules = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        errors = validate(schema, document, all_rules, hide_suggestions=hide_suggestions)
        return errors, introspects(document)

    return _VALIDATED.get(query, (id(schema), max_tokens, rules, hide_suggestions), check)


def cache_stats() -> dict[str, int]:
    """Hits, misses and characters held of both caches (for tests and the bench)."""
    return {
        "parse_hits": _PARSED.hits,
        "parse_misses": _PARSED.misses,
        "parse_chars": _PARSED.held_chars,
        "validation_hits": _VALIDATED.hits,
        "validation_misses": _VALIDATED.misses,
        "validation_chars": _VALIDATED.held_chars,
    }
