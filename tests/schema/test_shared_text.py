"""Sockets that send the same document keep one copy of its text (schema.websocket)."""

from __future__ import annotations

from schema.parsing import CACHEABLE_CHARS
from schema.websocket import shared_text


def test_equal_documents_from_different_sockets_become_one_string() -> None:
    query = "subscription E($id: ID!) { creationEvents(id: $id) { __typename seq } }"
    first = "".join(query)  # built at run time: equal to, not the same object as, the next
    second = "".join([query[:10], query[10:]])
    assert first == second and first is not second
    assert shared_text(first) is shared_text(second)


def test_oversized_and_non_string_queries_pass_through_untouched() -> None:
    huge = "{ __typename }" + " " * CACHEABLE_CHARS
    assert shared_text(huge) is huge
    assert shared_text(42) == 42  # type: ignore[arg-type]  # what a hostile client may send
