"""The built-in guards: aliases, tokens, and validation caching that really hits."""

from __future__ import annotations

from schema.build import build_schema
from schema.parsing import cache_stats


async def test_validation_is_cached_across_operations() -> None:
    schema = build_schema()
    query = "{ tools { name mode } __typename }"
    await schema.execute(query)
    hits = cache_stats()["validation_hits"]
    for _ in range(3):
        result = await schema.execute(query)
        assert result.errors is None
    assert cache_stats()["validation_hits"] == hits + 3


async def test_deep_aliased_and_huge_queries_are_refused() -> None:
    schema = build_schema()
    deep = "{ me { id } " + "".join(f"a{i}: tools {{ name }} " for i in range(16)) + "}"
    result = await schema.execute(deep)
    assert result.errors and "aliases" in result.errors[0].message.lower()
    huge = "{ " + " ".join("a" for _ in range(2_100)) + " }"  # short: under the size cap
    result = await schema.execute(huge)
    assert result.errors and "token" in result.errors[0].message.lower()


def _fan_out(levels: int) -> str:
    """Fragments that each spread the one before twice: 2**levels selections in ~1 KB."""
    parts = ["fragment F0 on User { id }"]
    parts += [f"fragment F{n} on User {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, levels + 1)]
    return f"query Fan {{ me {{ ...F{levels} }} }}\n" + "\n".join(parts)


async def test_fragment_fan_out_is_refused_at_once() -> None:
    schema = build_schema()
    # 2**40 selections once expanded: strawberry's limiters never finished checking this
    result = await schema.execute(_fan_out(40))
    assert result.errors and "fields once fragments are expanded" in result.errors[0].message
    small = await schema.execute(_fan_out(5))  # 32 selections: within the limit
    assert all("expanded" not in error.message for error in small.errors or [])


async def test_depth_and_aliases_count_through_fragments() -> None:
    schema = build_schema()
    nested = "x { " * 11 + "id" + " }" * 11
    deep = await schema.execute(f"query D {{ ...A }} fragment A on Query {{ {nested} }}")
    assert deep.errors and any("depth of 10" in error.message for error in deep.errors)
    aliased = " ".join(f"a{n}: __typename" for n in range(8))
    many = await schema.execute(
        f"query M {{ ...B ...C }} fragment B on Query {{ {aliased} }} "
        f"fragment C on Query {{ {aliased.replace('a', 'b')} }}"
    )
    assert many.errors and any("16 aliases" in error.message for error in many.errors)


async def test_callers_without_credentials_send_small_documents_only() -> None:
    schema = build_schema()
    padded = "{ tools { name } }\n#" + "x" * 20_000  # a public query behind a long comment
    small = "{ tools { name } }\n#" + "x" * 10_000

    refused = await schema.execute(padded)
    answered = await schema.execute(small)

    assert refused.errors and refused.errors[0].extensions == {"code": "DOCUMENT_TOO_LARGE"}
    assert answered.errors is None and answered.data
