"""Streamed messages: a result's `data` is encoded once and wrapped per socket, byte for byte
as strawberry would encode the whole message (schema.view.GraphQLView.encode_json)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schema.view import GraphQLView


def strawberry_encoding(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


def view() -> GraphQLView:
    return GraphQLView.__new__(GraphQLView)  # encode_json needs no state


SHARED: dict[str, Any] = {"creationEvents": {"__typename": "TokenDelta", "seq": 3, "text": "é\\"}}


@pytest.mark.parametrize(
    "message",
    [
        {"id": "1", "type": "next", "payload": {"data": SHARED}},  # graphql-transport-ws
        {"type": "data", "id": 'op "2"', "payload": {"data": SHARED}},  # legacy graphql-ws
        {"id": "3", "type": "next", "payload": {"data": None}},
        {"id": "4", "type": "next", "payload": {"data": SHARED, "errors": [{"message": "x"}]}},
        {"id": "5", "type": "complete"},
        {"id": "é" * 200, "type": "next", "payload": {"data": SHARED}},  # a long id, not kept
        {"id": 7, "type": "next", "payload": {"data": SHARED}},  # not a string
        {"data": SHARED, "errors": None, "extensions": {"k": 1}},  # an HTTP body's shape
    ],
)
def test_every_message_is_encoded_as_strawberry_would(message: dict[str, Any]) -> None:
    assert view().encode_json(message) == strawberry_encoding(message)


def test_one_data_object_sent_to_many_sockets_keeps_each_sockets_id() -> None:
    encoded = [
        view().encode_json({"id": str(n), "type": "next", "payload": {"data": SHARED}})
        for n in range(3)
    ]
    assert [json.loads(text)["id"] for text in encoded] == ["0", "1", "2"]
    assert {json.dumps(json.loads(text)["payload"]) for text in encoded} == {
        json.dumps({"data": SHARED})
    }
