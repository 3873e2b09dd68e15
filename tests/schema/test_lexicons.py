"""Lexicon CRUD through GraphQL: validation, uniqueness, privacy."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient

CREATE = """
mutation C($input: CreateLexiconInput!) {
  createLexicon(input: $input) {
    __typename
    ... on Lexicon { id name sourceLang targetLang entries { source target } }
    ... on InvalidInputError { code field message }
    ... on Error { code message }
  }
}
"""
UPDATE = """
mutation U($id: ID!, $input: UpdateLexiconInput!) {
  updateLexicon(id: $id, input: $input) {
    __typename
    ... on Lexicon { name entries { source target } }
    ... on InvalidInputError { field }
    ... on Error { code }
  }
}
"""
DELETE = "mutation D($id: ID!) { deleteLexicon(id: $id) { __typename ... on Error { code } } }"
LIST = "{ lexicons { id name entries { source } } }"
GET = "query G($id: ID!) { lexicon(id: $id) { name } }"

TERMS = [
    {"source": "machine learning", "target": "机器学习"},
    {"source": "model", "target": "模型"},
]


def lexicon(**changes: Any) -> dict[str, Any]:
    return {
        "input": {
            "name": "AI terms",
            "sourceLang": "en",
            "targetLang": "zh",
            "entries": TERMS,
            **changes,
        }
    }


async def test_create_list_update_delete(client: GraphQLClient, token: str) -> None:
    created = (await client.query(CREATE, lexicon(), token))["createLexicon"]
    assert created["__typename"] == "Lexicon" and created["entries"] == TERMS
    lexicon_id = created["id"]
    updated = await client.query(
        UPDATE,
        {"id": lexicon_id, "input": {"entries": [{"source": "GPU", "target": "显卡"}]}},
        token,
    )
    assert updated["updateLexicon"]["entries"] == [{"source": "GPU", "target": "显卡"}]
    assert updated["updateLexicon"]["name"] == "AI terms"
    listed = await client.query(LIST, token=token)
    assert [item["name"] for item in listed["lexicons"]] == ["AI terms"]
    deleted = await client.query(DELETE, {"id": lexicon_id}, token)
    assert deleted["deleteLexicon"]["__typename"] == "Lexicon"
    assert (await client.query(LIST, token=token))["lexicons"] == []


async def test_bad_lexicons_are_refused_and_nothing_is_stored(
    client: GraphQLClient, token: str
) -> None:
    cases = [
        (lexicon(entries=[]), "entries"),
        (lexicon(entries=[{"source": " ", "target": "x"}]), "entries.0.source"),
        (lexicon(entries=[*TERMS, {"source": "MODEL", "target": "型"}]), "entries.2"),
        (lexicon(entries=[{"source": "a" * 201, "target": "x"}]), "entries.0.source"),
        (lexicon(sourceLang="english"), "sourceLang"),
        (lexicon(targetLang="en"), "targetLang"),
        (lexicon(name=""), "name"),
    ]
    for variables, field in cases:
        result = (await client.query(CREATE, variables, token))["createLexicon"]
        assert result["__typename"] == "InvalidInputError", variables
        assert result["field"] == field, (variables, result)
    assert (await client.query(LIST, token=token))["lexicons"] == []
    await client.query(CREATE, lexicon(), token)
    duplicate = (await client.query(CREATE, lexicon(), token))["createLexicon"]
    assert duplicate["field"] == "name"


async def test_lexicons_are_private(client: GraphQLClient, token: str) -> None:
    created = (await client.query(CREATE, lexicon(), token))["createLexicon"]
    stranger = await client.register()
    assert (await client.query(LIST, token=stranger))["lexicons"] == []
    errors = await client.errors(GET, {"id": created["id"]}, stranger)
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    for query, variables in (
        (UPDATE, {"id": created["id"], "input": {"name": "mine now"}}),
        (DELETE, {"id": created["id"]}),
    ):
        result = await client.query(query, variables, stranger)
        assert next(iter(result.values()))["code"] == "NOT_FOUND"
    assert (await client.query(GET, {"id": created["id"]}, token))["lexicon"]["name"] == "AI terms"
    anonymous = await client.errors(LIST)
    assert anonymous[0]["extensions"]["code"] == "UNAUTHENTICATED"
