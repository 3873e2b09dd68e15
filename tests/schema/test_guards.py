"""The built-in guards: aliases, tokens, and validation caching that really hits."""

from __future__ import annotations

from strawberry.extensions.validation_cache import _get_validate_cache

from schema.build import VALIDATION_CACHE_SIZE, build_schema


async def test_validation_is_cached_across_operations() -> None:
    schema = build_schema()
    cache = _get_validate_cache(VALIDATION_CACHE_SIZE)
    query = "{ tools { name mode } __typename }"
    await schema.execute(query)
    hits = cache.cache_info().hits
    for _ in range(3):
        result = await schema.execute(query)
        assert result.errors is None
    assert cache.cache_info().hits == hits + 3


async def test_deep_aliased_and_huge_queries_are_refused() -> None:
    schema = build_schema()
    deep = "{ me { id } " + "".join(f"a{i}: tools {{ name }} " for i in range(16)) + "}"
    result = await schema.execute(deep)
    assert result.errors and "aliases" in result.errors[0].message.lower()
    huge = "{ " + " ".join("__typename" for _ in range(2_100)) + " }"
    result = await schema.execute(huge)
    assert result.errors and "token" in result.errors[0].message.lower()
