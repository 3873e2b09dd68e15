"""Image validation (media.sniff_image), measured facts, and the imageCaption stream."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import pytest
from PIL import Image

from inference.base import (
    BadInput,
    Completion,
    Delta,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    collect,
)
from inference.caption import (
    DEV_NOTE,
    Brightness,
    CaptionSpec,
    CaptionStyle,
    Orientation,
    caption,
    measure,
    measured_caption,
    nearest_colour,
    orientation,
)
from inference.dev import DevEngine
from inference.media import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decode_image, sniff_image

NAVY = (0, 0, 128)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def split(
    size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], at: float = 0.5
) -> Image.Image:
    """`left` up to `at` of the width, `right` after it."""
    mode = "RGBA" if len(left) == 4 else "RGB"
    image = Image.new(mode, size, right)
    image.paste(left, (0, 0, round(size[0] * at), size[1]))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width`×`height` and that holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


class RecordingEngine:
    """A fake real engine: streams `chunks`, records requests, notes when a stream closes."""

    name = "triton"

    def __init__(self, chunks: tuple[str, ...] = ("A navy", " and white", " flag. ")) -> None:
        self.chunks = chunks
        self.requests: list[GenerationRequest] = []
        self.closed_streams = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        try:
            for chunk in self.chunks:
                yield Delta(chunk)
        finally:
            self.closed_streams += 1

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


class CountingEngine:
    """Wraps an engine under its own name and counts every call that would reach it."""

    def __init__(self, inner: DevEngine) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.calls += 1
        return self.inner.stream(request)

    async def complete(self, request: GenerationRequest) -> Completion:
        self.calls += 1
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run(pieces: AsyncIterator[Piece]) -> list[Piece]:
    return [piece async for piece in pieces]


def structured(pieces: list[Piece]) -> dict[str, object]:
    found = [p for p in pieces if isinstance(p, Structured)]
    assert len(found) == 1
    assert pieces[-1] is found[0]
    return dict(found[0].data)


# --- sniff_image -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "content_type"),
    [
        ("PNG", "png", "image/png"),
        ("JPEG", "jpeg", "image/jpeg"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
    ],
)
def test_sniff_image_reads_format_size_and_content_type(
    fmt: str, name: str, content_type: str
) -> None:
    data = encode(solid((321, 123), (10, 200, 30)), fmt)

    info = sniff_image(data)

    assert (info.format, info.width, info.height, info.content_type) == (
        name,
        321,
        123,
        content_type,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not an image at all", "not a PNG, JPEG, WebP or GIF"),
        (encode(solid((8, 8), WHITE), "BMP"), "not a PNG, JPEG, WebP or GIF"),
        (encode(solid((8, 8), WHITE), "TIFF"), "not a PNG, JPEG, WebP or GIF"),
    ],
)
def test_sniff_image_refuses_what_is_not_an_accepted_image(data: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        sniff_image(data)


def noisy(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes(
        "RGB", size, bytes((i * 7919) % 251 for i in range(size[0] * size[1] * 3))
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_sniff_image_refuses_truncated_files(fmt: str) -> None:
    data = encode(noisy((200, 200)), fmt)

    with pytest.raises(BadInput, match="truncated or corrupt"):
        sniff_image(data[: len(data) // 2])


def test_sniff_image_refuses_a_png_with_a_broken_checksum() -> None:
    data = bytearray(encode(noisy((64, 64)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF

    with pytest.raises(BadInput, match="truncated or corrupt"):
        sniff_image(bytes(data))


def test_sniff_image_refuses_more_bytes_than_the_limit() -> None:
    data = encode(solid((4, 4), WHITE), "PNG")
    data += b"\0" * (MAX_IMAGE_BYTES + 1 - len(data))

    with pytest.raises(BadInput, match=r"limit is 10485760 bytes \(10 MiB\)"):
        sniff_image(data)


def test_sniff_image_accepts_exactly_the_pixel_limit_in_the_header_check() -> None:
    # 4096×4096 is exactly the limit; the header-only file then fails as truncated, not big.
    assert MAX_IMAGE_PIXELS == 4096 * 4096
    with pytest.raises(BadInput, match="truncated or corrupt"):
        sniff_image(png_header_only(4096, 4096))


def test_sniff_image_holds_webp_to_its_lower_pixel_limit() -> None:
    def webp(width: int, height: int) -> bytes:
        return encode(solid((width, height), WHITE), "WEBP", lossless=True)

    assert sniff_image(webp(2048, 2048)).width == 2048
    with pytest.raises(BadInput, match="2049×2048; it has more than 4194304 pixels"):
        sniff_image(webp(2049, 2048))


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        # Over our limit, under Pillow's: our own check.
        (4097, 4096, "4097×4096; it has more than 16777216 pixels"),
        (6300, 6300, "6300×6300; it has more than 16777216 pixels"),
        # Over Pillow's warning threshold: the warning is an error here, not a log line.
        (10_000, 10_000, "more than 16777216 pixels"),
        # Over twice Pillow's limit: Pillow's DecompressionBombError.
        (20_000, 20_000, "more than 16777216 pixels"),
    ],
)
def test_sniff_image_refuses_decompression_bombs_before_decoding(
    width: int, height: int, message: str
) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        sniff_image(png_header_only(width, height))
    assert "decompression bomb" in str(caught.value)


# --- measured facts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((10, 10, 10), "black"),
        ((250, 250, 250), "white"),
        ((0, 0, 140), "navy blue"),
        ((255, 170, 10), "orange"),
        ((230, 20, 20), "red"),
        ((20, 140, 20), "green"),
        ((140, 200, 240), "sky blue"),
        ((125, 125, 130), "grey"),
    ],
)
def test_nearest_colour_names_colours_by_the_table(rgb: tuple[int, int, int], name: str) -> None:
    assert nearest_colour(rgb) == name


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1200, 800, Orientation.LANDSCAPE),
        (800, 1200, Orientation.PORTRAIT),
        (500, 500, Orientation.SQUARE),
        (100, 102, Orientation.SQUARE),
        (100, 110, Orientation.PORTRAIT),
    ],
)
def test_orientation(width: int, height: int, expected: Orientation) -> None:
    assert orientation(width, height) is expected


def test_measure_a_solid_png_exactly() -> None:
    _, image = decode_image(encode(solid((300, 200), (255, 0, 0)), "PNG"))

    facts = measure(image)

    assert (facts.width, facts.height, facts.aspect) == (300, 200, 1.5)
    assert facts.orientation is Orientation.LANDSCAPE
    assert [(c.name, c.hex, c.share) for c in facts.colours] == [("red", "#ff0000", 1.0)]
    assert facts.brightness is Brightness.DARK  # pure red has a luma of 76
    assert facts.transparent is False


def test_measure_two_colour_halves() -> None:
    facts = measure(split((1200, 800), NAVY, WHITE))

    names = [c.name for c in facts.colours]
    assert sorted(names) == ["navy blue", "white"]
    for colour in facts.colours:
        assert colour.share == pytest.approx(0.5, abs=0.02)
        assert colour.hex == ("#000080" if colour.name == "navy blue" else "#ffffff")
    assert facts.brightness is Brightness.MEDIUM


def test_measure_ranks_colours_by_share_and_keeps_the_top_three() -> None:
    image = Image.new("RGB", (400, 100), WHITE)
    image.paste((0, 0, 128), (0, 0, 100, 100))  # 25%
    image.paste((255, 0, 0), (100, 0, 160, 100))  # 15%
    image.paste((0, 128, 0), (160, 0, 180, 100))  # 5%

    facts = measure(image)

    assert [c.name for c in facts.colours] == ["white", "navy blue", "red"]
    shares = [c.share for c in facts.colours]
    assert shares == pytest.approx([0.55, 0.25, 0.15], abs=0.02)
    assert facts.brightness is Brightness.MEDIUM  # mean luma about 159: white is only 55%


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_measure_survives_lossy_compression(fmt: str) -> None:
    _, image = decode_image(encode(split((400, 200), NAVY, WHITE), fmt, quality=90))

    facts = measure(image)

    assert {c.name for c in facts.colours[:2]} == {"navy blue", "white"}
    assert sum(c.share for c in facts.colours[:2]) == pytest.approx(1.0, abs=0.03)


def test_measure_counts_only_visible_pixels_and_reports_transparency() -> None:
    image = split((200, 100), (0, 0, 0, 0), (0, 128, 0, 255))
    _, decoded = decode_image(encode(image, "PNG"))

    facts = measure(decoded)

    assert facts.transparent is True
    assert [(c.name, c.share) for c in facts.colours] == [("green", 1.0)]


def test_measure_an_opaque_rgba_image_is_not_transparent() -> None:
    _, decoded = decode_image(encode(solid((50, 50), (255, 255, 255, 255), "RGBA"), "PNG"))

    facts = measure(decoded)

    assert facts.transparent is False
    assert facts.brightness is Brightness.BRIGHT


def test_measure_a_gif_with_a_transparent_index() -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 255, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 10, 40))
    _, decoded = decode_image(encode(image, "GIF", transparency=1))

    facts = measure(decoded)

    assert facts.transparent is True
    assert [(c.name, c.share) for c in facts.colours] == [("yellow", 1.0)]


@pytest.mark.parametrize(("alphas", "transparent"), [(b"\xff\x00", True), (b"\xff\xff", False)])
def test_measure_a_palette_png_by_the_alphas_of_the_indices_it_uses(
    alphas: bytes, transparent: bool
) -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 255, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 10, 40))
    _, decoded = decode_image(encode(image, "PNG", transparency=alphas + b"\x00" * 10))

    facts = measure(decoded)

    assert facts.transparent is transparent


def test_measure_a_large_jpeg_from_a_reduced_decode_reports_its_real_size() -> None:
    info, decoded = decode_image(
        encode(split((4000, 3000), NAVY, WHITE), "JPEG", quality=90), max_side=96
    )

    facts = measure(decoded, (info.width, info.height))

    assert decoded.size[0] < 4000 / 4  # DCT-scaled: never decoded at full size
    assert (facts.width, facts.height) == (4000, 3000)
    assert {c.name for c in facts.colours[:2]} == {"navy blue", "white"}


def test_measured_caption_states_size_shape_colours_and_brightness() -> None:
    facts = measure(split((1200, 800), WHITE, NAVY, at=0.75))

    assert measured_caption(facts, CaptionStyle.SHORT) == (
        "A 1200×800 landscape image, mostly white and navy blue, bright."
    )
    assert measured_caption(facts, CaptionStyle.DETAILED) == (
        "A 1200×800 landscape image, mostly white and navy blue, bright. "
        "Colour shares: white 75%, navy blue 25%."
    )


# --- caption() ------------------------------------------------------------------------------


async def test_caption_with_the_dev_engine_is_honest_and_never_calls_it() -> None:
    engine = CountingEngine(DevEngine(token_delay=0))
    data = encode(split((1200, 800), WHITE, NAVY, at=0.75), "PNG")

    pieces = await run(caption(engine, CaptionSpec(data), model="clip", request_id="r1"))

    assert engine.calls == 0
    assert pieces[0] == Stage(0.0, "analysing")
    text = "A 1200×800 landscape image, mostly white and navy blue, bright."
    assert [p for p in pieces if isinstance(p, Delta)] == [Delta(text, tokens=0)]
    result = structured(pieces)
    assert result["model_caption"] is False
    assert result["note"] == DEV_NOTE
    assert result["caption"] == text
    assert (result["width"], result["height"], result["format"]) == (1200, 800, "png")
    assert result["orientation"] == "landscape"
    assert result["brightness"] == "bright"
    assert result["transparent"] is False
    colours = result["colours"]
    assert isinstance(colours, list)
    assert [c["name"] for c in colours] == ["white", "navy blue"]
    assert [c["hex"] for c in colours] == ["#ffffff", "#000080"]


async def test_caption_with_the_dev_engine_notes_a_language_it_did_not_use() -> None:
    engine = CountingEngine(DevEngine(token_delay=0))
    spec = CaptionSpec(encode(solid((10, 10), WHITE), "PNG"), language="zh")

    result = structured(await run(caption(engine, spec, model="clip", request_id="r1")))

    assert result["note"] == f"{DEV_NOTE}; written in English"
    assert engine.calls == 0


async def test_caption_with_a_real_engine_sends_the_image_and_streams_the_caption() -> None:
    engine = RecordingEngine()
    data = encode(solid((64, 48), NAVY), "JPEG")
    spec = CaptionSpec(data, style=CaptionStyle.ALT_TEXT, language="de", max_tokens=40)

    pieces = await run(caption(engine, spec, model="clip", request_id="r7"))

    [request] = engine.requests
    assert (request.model, request.request_id, request.max_tokens) == ("clip", "r7", 40)
    assert base64.b64decode(str(request.parameters["image_b64"])) == data
    assert request.parameters["content_type"] == "image/jpeg"
    assert request.parameters["style"] == "alt_text"
    assert request.parameters["language"] == "de"
    assert "alt text" in request.prompt and "de" in request.prompt
    assert [p.text for p in pieces if isinstance(p, Delta)] == ["A navy", " and white", " flag. "]
    assert any(isinstance(p, Usage) and p.prompt_tokens > 0 for p in pieces)
    result = structured(pieces)
    assert result["caption"] == "A navy and white flag."
    assert result["model_caption"] is True
    assert "note" not in result
    assert (result["width"], result["height"], result["format"]) == (64, 48, "jpeg")


async def test_caption_refuses_a_bad_image_before_calling_the_engine() -> None:
    engine = RecordingEngine()

    with pytest.raises(BadInput, match="not a PNG"):
        await run(caption(engine, CaptionSpec(b"GIF89a-nope"), model="clip", request_id="r"))
    assert engine.requests == []


async def test_caption_closes_the_model_stream_when_the_consumer_stops() -> None:
    engine = RecordingEngine()
    spec = CaptionSpec(encode(solid((8, 8), WHITE), "PNG"))
    pieces = cast(AsyncGenerator[Piece, None], caption(engine, spec, model="m", request_id="r"))

    async for piece in pieces:
        if isinstance(piece, Delta):
            break
    await pieces.aclose()

    assert engine.closed_streams == 1


def test_measure_scales_a_16_bit_grey_png_instead_of_clipping_it_to_white() -> None:
    _, decoded = decode_image(encode(Image.new("I;16", (30, 20), 40_000), "PNG"))

    facts = measure(decoded)

    assert [(c.name, c.hex) for c in facts.colours] == [("grey", "#9c9c9c")]  # 40000 / 256
    assert facts.brightness is Brightness.MEDIUM


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_every_prefix_of_an_image_is_accepted_or_refused_with_bad_input(fmt: str) -> None:
    data = encode(noisy((40, 30)), fmt)

    for end in range(0, len(data), 7):
        try:
            sniff_image(data[:end])
        except BadInput:
            continue
