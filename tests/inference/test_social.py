"""The socialPost engine: platform profiles, post-processing without a model, and the tool."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import pytest

from inference.base import (
    Completion,
    Delta,
    GenerationRequest,
    Stage,
    Structured,
    Usage,
    collect,
    count_tokens,
)
from inference.dev import DevEngine
from inference.social import (
    ELLIPSIS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TOPIC_CHARS,
    PROFILES,
    SEPARATOR,
    HashtagStyle,
    Platform,
    Post,
    SocialSpec,
    TitleRule,
    build_prompt,
    count_length,
    emoji_density,
    extract_hashtags,
    finalize,
    format_hashtag,
    social_post,
    topic_keywords,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji of three people, two ZWJs
THUMB = "\U0001f44d\U0001f3fd"  # thumbs up with a skin tone
CJK_SENTENCES = (
    "今天去了西湖，风景很美。",
    "推荐大家周末去看看！",
    "这家咖啡馆的拿铁特别好喝\U0001f600。",
    f"{FAMILY}一家人一起出游真开心？",
    "我们从早上走到傍晚，一点也不累",
)
EN_SENTENCES = (
    "Coffee in Hangzhou is underrated.",
    "See https://example.com/a/very/long/path?q=1 for the map!",
    "We walked for hours \U0001f600 and loved it.",
    f"The {FAMILY} came too, obviously",
    "Supercalifragilisticexpialidocious views everywhere?",
)


def caption(post: Post) -> str:
    """The part the platform limits: the post text without its title."""
    return post.text.removeprefix(f"{post.title}\n\n") if post.title else post.text


def without_added_emojis(text: str, platform: Platform) -> str:
    for emoji in PROFILES[platform].emoji_palette:
        text = text.replace(" " + emoji, "").replace(emoji, "")
    return text


def make_draft(sentences: tuple[str, ...], count: int, seed: int) -> str:
    rng = random.Random(seed)
    words = [rng.choice(sentences) for _ in range(count)]
    return "\n\n".join(" ".join(words[i : i + 4]) for i in range(0, count, 4))


class RecordingEngine:
    """The dev engine's text, keeping every request it was sent."""

    name = "recording"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []
        self._dev = DevEngine(token_delay=0)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        async for delta in self._dev.stream(request):
            yield delta

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


# -- profiles --------------------------------------------------------------------------------


def test_every_platform_has_a_profile_with_its_documented_rules() -> None:
    assert set(PROFILES) == set(Platform)
    assert {p: PROFILES[p].limit for p in Platform} == {
        Platform.XIAOHONGSHU: 1000,
        Platform.WEIBO: 2000,
        Platform.ZHIHU: 20000,
        Platform.DOUYIN: 55,
        Platform.WECHAT: 20000,
        Platform.X: 280,
        Platform.LINKEDIN: 3000,
        Platform.INSTAGRAM: 2200,
    }
    xhs, wechat = PROFILES[Platform.XIAOHONGSHU], PROFILES[Platform.WECHAT]
    assert (xhs.title, xhs.title_limit) == (TitleRule.REQUIRED, 20)
    assert (wechat.title, wechat.title_limit, wechat.digest_limit) == (TitleRule.REQUIRED, 64, 120)
    assert PROFILES[Platform.ZHIHU].title is TitleRule.OPTIONAL
    assert PROFILES[Platform.INSTAGRAM].hashtags[1] == 30
    wrapped = {p for p in Platform if PROFILES[p].hashtag_style is HashtagStyle.WRAPPED}
    assert wrapped == {Platform.WEIBO, Platform.XIAOHONGSHU}
    adapters = [profile.lora_adapter for profile in PROFILES.values()]
    assert len(set(adapters)) == len(adapters) and xhs.lora_adapter == "xhs-style-v1"
    for profile in PROFILES.values():
        low, high = profile.hashtags
        assert 0 <= low <= high and profile.emoji_density[0] <= profile.emoji_density[1] < 100
        assert all(emoji_density(emoji) == 100 for emoji in profile.emoji_palette)


# -- hashtags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "tag", "rendered"),
    [
        (Platform.WEIBO, "话题", "#话题#"),
        (Platform.WEIBO, "\uff03 data   science #", "#data science#"),
        (Platform.XIAOHONGSHU, "周末 好去处", "#周末 好去处#"),
        (Platform.X, "data science", "#DataScience"),
        (Platform.X, "#python", "#python"),
        (Platform.INSTAGRAM, "iPhone tips", "#iPhoneTips"),
        (Platform.LINKEDIN, "machine-learning ops", "#MachineLearningOps"),
        (Platform.DOUYIN, "数据 科学", "#数据科学"),
        (Platform.ZHIHU, "#话题#", "#话题"),
    ],
)
def test_hashtags_follow_the_platform_syntax(platform: Platform, tag: str, rendered: str) -> None:
    assert format_hashtag(tag, platform) == rendered


@pytest.mark.parametrize(("platform", "tag"), [(Platform.X, "2024"), (Platform.WEIBO, "# ! #")])
def test_a_tag_with_nothing_usable_is_refused(platform: Platform, tag: str) -> None:
    with pytest.raises(ValueError, match="no usable hashtag"):
        format_hashtag(tag, platform)


def test_extraction_reads_both_syntaxes_but_not_code_or_links() -> None:
    text = (
        "今天去了#西湖#，很美 #旅行[话题]# \uff03全角\uff03\n"
        "Coding in C# all day, see https://example.com/docs#setup #DataScience #42 #web3"
    )
    assert extract_hashtags(text) == ["西湖", "旅行", "全角", "DataScience", "web3"]
    assert extract_hashtags(format_hashtag("data science", Platform.WEIBO)) == ["data science"]
    assert extract_hashtags("#python #rust") == ["python", "rust"]


def test_topic_keywords_skip_stopwords_and_split_chinese_at_particles() -> None:
    assert topic_keywords("The best coffee in Hangzhou for remote work") == [
        "best",
        "coffee",
        "Hangzhou",
        "remote",
        "work",
    ]
    assert topic_keywords("周末在杭州的咖啡馆推荐") == ["周末", "杭州", "咖啡馆推荐"]


# -- length ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "x", "weibo", "chars"),
    [
        ("hello", 5, 3, 5),  # Weibo: 5 halves round up to 3
        ("你好", 4, 2, 2),
        ("你好ab", 6, 3, 4),
        ("\U0001f600", 2, 1, 1),
        (FAMILY, 2, 1, 1),  # a ZWJ sequence is one emoji
        (THUMB, 2, 1, 1),
        ("\U0001f1e8\U0001f1f3", 2, 1, 1),  # a flag: two regional indicators
        ("e\u0301", 1, 1, 1),  # NFC makes one character
        ("\u2014\u201c\u201d", 3, 3, 3),  # X weighs general punctuation 1
        ("see https://example.com/a/very/long/path?x=1", 27, 22, 44),
        ("www.example.com and http://a.io", 51, 16, 31),
    ],
)
def test_length_is_counted_the_platform_way(text: str, x: int, weibo: int, chars: int) -> None:
    assert count_length(text, Platform.X) == x
    assert count_length(text, Platform.WEIBO) == weibo
    for platform in (Platform.XIAOHONGSHU, Platform.DOUYIN, Platform.LINKEDIN):
        assert count_length(text, platform) == chars


# -- titles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", range(16, 24))  # 21 to 28 characters
def test_xiaohongshu_titles_are_cut_to_20_without_breaking_an_emoji(lead: int) -> None:
    title = "夏" * lead + FAMILY + THUMB + "天天天"
    post = finalize("正文。", platform=Platform.XIAOHONGSHU, topic="夏天", hashtags=[], title=title)
    assert post.title is not None and post.title.endswith(ELLIPSIS)
    assert count_length(post.title, Platform.XIAOHONGSHU) == 20
    # A cut emoji would leave a ZWJ, a lone skin tone or a lone person behind.
    assert post.title.count("\u200d") == 2 * post.title.count(FAMILY)
    assert post.title.count("\U0001f3fd") == post.title.count(THUMB)
    assert ("\U0001f468" in post.title) == (FAMILY in post.title)


def test_titles_that_fit_stay_and_a_required_title_comes_from_the_topic() -> None:
    short = "夏天\ud83d\ude00海边"  # a UTF-16 surrogate pair is joined, not split
    post = finalize("正文。", platform=Platform.XIAOHONGSHU, topic="夏天", hashtags=[], title=short)
    assert post.title == "夏天\U0001f600海边"
    topic = "一个关于夏天在海边度假的超级详细的攻略和清单。第二句不用"
    derived = finalize(
        "正文。", platform=Platform.XIAOHONGSHU, topic=topic, hashtags=[], title=None
    )
    assert derived.title == topic[:19] + ELLIPSIS
    drafted = finalize("Title: 西湖一日游\n正文。", platform=Platform.XIAOHONGSHU, topic=topic,
                       hashtags=[], title=None)  # fmt: skip
    assert drafted.title == "西湖一日游" and not drafted.body.startswith("Title")
    empty = finalize("Title:\n正文。", platform=Platform.XIAOHONGSHU, topic="西湖", hashtags=[],
                     title=" ")  # fmt: skip
    assert (empty.title, empty.body[:3]) == ("西湖", "正文。")
    on_x = finalize(
        "# Big news\nWe shipped.", platform=Platform.X, topic="t", hashtags=[], title="T"
    )
    assert on_x.title is None and on_x.body.startswith("Big news\nWe shipped.")


# -- finalize --------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", list(Platform))
@pytest.mark.parametrize("sentences", [CJK_SENTENCES, EN_SENTENCES], ids=["cjk", "en"])
def test_finalized_posts_always_fit(platform: Platform, sentences: tuple[str, ...]) -> None:
    limit = PROFILES[platform].limit
    drafts = [make_draft(sentences, n, seed=n) for n in (0, 1, 3, 20, 120, 900, 2400)]
    drafts += ["x" * 30000, "长" * 30000, FAMILY * 3000]  # no boundary anywhere
    for draft in drafts:
        post = finalize(draft, platform=platform, topic="西湖 coffee walks",
                        hashtags=["data science", "Hangzhou"], title="标题")  # fmt: skip
        assert post.length == count_length(caption(post), platform) <= post.limit == limit
        assert caption(post).endswith(" ".join(post.hashtags)) and post.hashtags
        assert post.body.count("\u200d") == 2 * post.body.count(FAMILY)
        post.text.encode("utf-8")  # no lone surrogate
        length = count_length(draft, platform)
        if length * 1.2 + 40 < limit:  # room for the tags and the emojis added
            assert not post.truncated
            assert without_added_emojis(post.body, platform) == draft.strip()
        if length > limit:
            assert post.truncated and post.length > limit // 3  # cut, not emptied


def test_room_for_hashtags_is_reserved_before_the_body_is_cut() -> None:
    draft = "Ship small changes often. " * 40
    post = finalize(draft, platform=Platform.X, topic="shipping software",
                    hashtags=["continuous delivery", "devops"], title=None)  # fmt: skip
    assert post.hashtags == ("#ContinuousDelivery", "#devops")
    assert post.text.endswith("often.\n\n#ContinuousDelivery #devops")
    assert post.length <= 280 < count_length(draft, Platform.X) and post.truncated


def test_a_word_cut_ends_with_an_ellipsis_and_cjk_cuts_between_characters() -> None:
    post = finalize("word " * 200, platform=Platform.X, topic="t", hashtags=["tag"], title=None)
    assert post.body.endswith("word" + ELLIPSIS) and "wor" + ELLIPSIS not in post.body
    cjk = finalize("长" * 100, platform=Platform.DOUYIN, topic="t", hashtags=["话题"], title=None)
    assert cjk.body.startswith("长" * 40) and ELLIPSIS in cjk.body and cjk.length <= 55


def test_hashtags_are_counted_deduplicated_and_padded() -> None:
    requested = ["Travel", "travel", "#travel#", " TRAVEL ", "旅行", "trip ideas", "TripIdeas"]
    draft = "好玩。#旅行 #Beach #beach #海边# #sun #sea #sand #surf #wave #tide #shell #coast"
    post = finalize(draft, platform=Platform.XIAOHONGSHU, topic="海边", hashtags=requested,
                    title=None)  # fmt: skip
    assert post.hashtags[:4] == ("#Travel#", "#旅行#", "#trip ideas#", "#Beach#")
    assert len(post.hashtags) == 10  # Xiaohongshu's maximum
    keys = [tag.strip("#").replace(" ", "").casefold() for tag in post.hashtags]
    assert len(set(keys)) == len(keys)
    on_x = finalize("Hi.", platform=Platform.X, topic="t", hashtags=requested, title=None)
    assert on_x.hashtags == ("#Travel", "#旅行")
    padded = finalize("Hi.", platform=Platform.LINKEDIN, topic="Remote work for engineering "
                      "managers", hashtags=[], title=None, keywords=["remote"])  # fmt: skip
    assert padded.hashtags == ("#remote", "#work", "#engineering")  # LinkedIn's minimum


def test_hashtags_in_the_wrong_syntax_are_taken_out_and_rendered_right() -> None:
    weibo = finalize("今天天气很好。#DataScience #机器 学习#\n#AI", platform=Platform.WEIBO,
                     topic="天气", hashtags=[], title=None)  # fmt: skip
    assert weibo.body.startswith("今天天气很好。")
    assert "#" not in weibo.body and weibo.hashtags == ("#DataScience#", "#机器 学习#", "#AI#")
    x = finalize("I love #python because it is fun! #数据 科学#", platform=Platform.X,
                 topic="t", hashtags=[], title=None)  # fmt: skip
    assert x.body.startswith("I love python because it is fun!")
    assert x.hashtags == ("#python", "#数据科学")


def test_emoji_density_is_raised_at_sentence_ends_without_removing_text() -> None:
    draft = "今天去了西湖，风景很美。推荐大家周末去看看！我们从早上走到傍晚。\n拿铁很好喝。" * 3
    post = finalize(draft, platform=Platform.XIAOHONGSHU, topic="西湖", hashtags=[], title="西湖")
    palette = PROFILES[Platform.XIAOHONGSHU].emoji_palette
    assert emoji_density(draft) == 0 and emoji_density(post.body) >= 3.0
    assert without_added_emojis(post.body, Platform.XIAOHONGSHU) == draft.strip()
    for emoji in palette:  # each one follows a sentence end or closes a line
        for index in [i for i, ch in enumerate(post.body) if ch == emoji]:
            assert post.body[index - 1] in "。！\n" + "".join(palette)
    english = "We walked. We ate. We slept. " * 5
    insta = finalize(english, platform=Platform.INSTAGRAM, topic="t", hashtags=[], title=None)
    assert emoji_density(insta.body) >= 2.0
    assert without_added_emojis(insta.body, Platform.INSTAGRAM) == english.strip()


def test_emojis_are_never_removed_and_not_added_where_the_style_has_none() -> None:
    dense = "好开心\U0001f600\U0001f600\U0001f600。"
    post = finalize(dense, platform=Platform.XIAOHONGSHU, topic="开心", hashtags=[], title=None)
    assert post.body == dense
    plain = "结论先行。理由如下。"
    assert (
        finalize(plain, platform=Platform.ZHIHU, topic="t", hashtags=[], title=None).body == plain
    )


def test_wechat_gets_a_digest_within_120_characters() -> None:
    draft = "第一段讲清楚背景和问题。" * 30
    post = finalize(draft, platform=Platform.WECHAT, topic="t", hashtags=[], title="标题")
    assert post.digest is not None and post.digest.startswith("第一段讲清楚背景和问题。")
    assert len(post.digest) <= 120 and post.digest.endswith("。")
    assert (
        finalize("正文。", platform=Platform.X, topic="t", hashtags=[], title=None).digest is None
    )


# -- the tool --------------------------------------------------------------------------------


def test_specs_beyond_the_limits_are_refused() -> None:
    SocialSpec(Platform.X, "t" * MAX_TOPIC_CHARS, hashtags=("a" * MAX_TAG_CHARS,) * MAX_TAGS)
    for bad in (
        {"topic": "  "},
        {"topic": "t" * (MAX_TOPIC_CHARS + 1)},
        {"hashtags": ("a",) * (MAX_TAGS + 1)},
        {"keywords": ("a" * (MAX_TAG_CHARS + 1),)},
        {"max_tokens": 0},
        {"platform": "myspace"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SocialSpec(**{"platform": Platform.X, "topic": "t", **bad})  # type: ignore[arg-type]


def test_the_prompt_carries_the_platform_profile() -> None:
    spec = SocialSpec(Platform.XIAOHONGSHU, "周末去哪儿", hashtags=("周末",), keywords=("杭州",))
    prompt = build_prompt(spec)
    assert "#topic words#" in prompt and "#周末#" in prompt and "杭州" in prompt
    assert "at most 20 characters" in prompt and "Simplified Chinese" in prompt
    assert PROFILES[Platform.XIAOHONGSHU].tone in prompt
    assert prompt.endswith("about this:\n周末去哪儿")
    x = build_prompt(SocialSpec(Platform.X, "launch", tone="dry wit", language="fr"))
    assert "#TopicWords" in x and "280 weighted" in x and "dry wit" in x and " in fr, " in x
    assert "Title" not in x  # X posts have none


@pytest.mark.parametrize("platform", list(Platform))
async def test_social_post_streams_the_draft_then_the_finished_post(platform: Platform) -> None:
    engine = RecordingEngine()
    spec = SocialSpec(platform, "Weekend coffee shops in Hangzhou for remote workers",
                      hashtags=("coffee",), seed=7)  # fmt: skip
    pieces = [p async for p in social_post(engine, spec, model="social", request_id="r1")]

    profile = PROFILES[platform]
    (request,) = engine.requests
    assert request.parameters == {"lora_adapter": profile.lora_adapter}
    assert (request.model, request.seed, request.max_tokens) == ("social", 7, profile.draft_tokens)
    assert pieces[0] == Usage(prompt_tokens=count_tokens(build_prompt(spec)))
    assert pieces[1] == Stage(0.0, "drafting")
    formatting = pieces.index(Stage(0.9, "formatting"))
    drafted = pieces[2:formatting]
    assert all(isinstance(p, Delta) and p.tokens == 1 for p in drafted)
    expected = await DevEngine(token_delay=0).complete(request)
    assert "".join(p.text for p in drafted if isinstance(p, Delta)) == expected.text
    final, result = pieces[formatting + 1 :]
    assert isinstance(final, Delta) and isinstance(result, Structured)

    data = json.loads(json.dumps(result.data))
    assert final == Delta(SEPARATOR + data["text"], tokens=0)
    assert data["platform"] == platform.value and data["lora_adapter"] == profile.lora_adapter
    assert data["limit"] == profile.limit and data["length"] <= profile.limit
    assert data["hashtags"][0] == format_hashtag("coffee", platform)
    low, high = profile.hashtags
    assert max(low, 1) <= len(data["hashtags"]) <= high
    assert (data["title"] is not None) == (profile.title is TitleRule.REQUIRED)
    assert data["text"].startswith(data["title"] or data["body"])
    post_caption = data["text"].removeprefix(f"{data['title']}\n\n")
    assert count_length(post_caption, platform) == data["length"]
    assert emoji_density(data["body"]) >= profile.emoji_density[0]
