"""The parse and validation caches are bounded by the text they hold."""

from __future__ import annotations

from schema.parsing import CACHEABLE_CHARS, TextCache


def test_large_documents_are_never_kept() -> None:
    cache: TextCache[str] = TextCache()
    large = "#" + "x" * CACHEABLE_CHARS

    cache.get(large, None, lambda: "parsed")
    cache.get(large, None, lambda: "parsed")

    assert cache.held_chars == 0
    assert (cache.hits, cache.misses) == (0, 2)


def test_the_cache_drops_the_oldest_texts_past_its_character_budget() -> None:
    cache: TextCache[int] = TextCache(entries=1_000, chars=10_000)
    texts = [f"{{ a{i} }}" + " " * 990 for i in range(30)]  # 1,000 characters each

    for i, text in enumerate(texts):
        cache.get(text, None, lambda i=i: i)  # type: ignore[misc]

    assert cache.held_chars <= 10_000
    assert cache.get(texts[-1], None, lambda: -1) == 29  # the newest are kept
    assert cache.get(texts[0], None, lambda: -1) == -1  # the oldest went


def test_entries_are_bounded_too() -> None:
    cache: TextCache[int] = TextCache(entries=3, chars=10_000)
    for i in range(10):
        cache.get(f"q{i}", None, lambda i=i: i)  # type: ignore[misc]

    assert cache.held_chars == 6  # three texts of two characters
