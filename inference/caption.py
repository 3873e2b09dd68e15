"""The imageCaption tool's engine: measured facts about an image, then a caption.

The facts (size, orientation, dominant colours, brightness, transparency) are measured from
the pixels and need no model: from a 96-pixel nearest-neighbour sample of an image decoded no
larger than needed (JPEG at a reduced scale), in the pool the caller hands in (`Offload`). A
real engine (CLIP on Triton) receives the image as base64 in the request's `parameters` and
streams the caption. The dev engine cannot see images, so it is never called: the caption is
then built from the measured facts only, and says so.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image

from inference.base import (
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    count_tokens,
    relayed,
)
from inference.dev import NAME as DEV_ENGINE
from inference.media import ImageInfo, Offload, decode_image

MIN_CAPTION_TOKENS = 16
MAX_CAPTION_TOKENS = 512
DEFAULT_CAPTION_TOKENS = 160
SAMPLE_SIDE = 96  # the colour sample's longer side, in pixels
TOP_COLOURS = 3
MENTION_SHARE = 0.1  # a colour is named in the measured caption from this share on
SQUARE_TOLERANCE = 0.02  # width/height within 2% of 1 counts as square
DARK_BELOW = 85  # mean luma (0-255) under this is dark
BRIGHT_FROM = 170  # mean luma from this on is bright
OPAQUE_FROM = 128  # alpha from this on counts as visible for colours and brightness
DEV_NOTE = "dev-engine cannot see images; this caption describes measured size and colours only"

# A fixed palette of named colours; each sampled pixel takes the nearest name.
NAMED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (0, 0, 0)),
    ("white", (255, 255, 255)),
    ("grey", (128, 128, 128)),
    ("silver", (192, 192, 192)),
    ("red", (255, 0, 0)),
    ("maroon", (128, 0, 0)),
    ("orange", (255, 165, 0)),
    ("yellow", (255, 255, 0)),
    ("olive", (128, 128, 0)),
    ("green", (0, 128, 0)),
    ("lime", (0, 255, 0)),
    ("teal", (0, 128, 128)),
    ("cyan", (0, 255, 255)),
    ("sky blue", (135, 206, 235)),
    ("blue", (0, 0, 255)),
    ("navy blue", (0, 0, 128)),
    ("purple", (128, 0, 128)),
    ("magenta", (255, 0, 255)),
    ("pink", (255, 192, 203)),
    ("brown", (139, 69, 19)),
    ("beige", (245, 245, 220)),
)


class CaptionStyle(StrEnum):
    """How to caption: one line, a fuller description, or accessible alt text."""

    SHORT = "short"
    DETAILED = "detailed"
    ALT_TEXT = "alt_text"


class Orientation(StrEnum):
    """The image's shape."""

    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"
    SQUARE = "square"


class Brightness(StrEnum):
    """Mean luma of the visible pixels, in three bands."""

    DARK = "dark"
    MEDIUM = "medium"
    BRIGHT = "bright"


_GUIDES = {
    CaptionStyle.SHORT: "Caption this image in one short sentence.",
    CaptionStyle.DETAILED: "Describe this image in detail: subject, setting, colours, mood.",
    CaptionStyle.ALT_TEXT: (
        "Write alt text for this image for a screen reader user: what it shows and why it "
        "matters, in under 125 characters, without 'image of'."
    ),
}


@dataclass(frozen=True)
class CaptionSpec:
    """A validated caption request; `image` is the uploaded bytes."""

    image: bytes
    style: CaptionStyle = CaptionStyle.SHORT
    language: str = "en"
    max_tokens: int = DEFAULT_CAPTION_TOKENS


@dataclass(frozen=True)
class Colour:
    """A named colour, the mean of the pixels that took its name, and their share."""

    name: str
    hex: str
    share: float


@dataclass(frozen=True)
class ImageFacts:
    """What was measured from the pixels."""

    width: int
    height: int
    orientation: Orientation
    aspect: float
    colours: tuple[Colour, ...]
    brightness: Brightness
    transparent: bool


def orientation(width: int, height: int) -> Orientation:
    """Landscape, portrait, or square when the sides are within `SQUARE_TOLERANCE`."""
    if abs(width / height - 1) <= SQUARE_TOLERANCE:
        return Orientation.SQUARE
    return Orientation.LANDSCAPE if width > height else Orientation.PORTRAIT


def nearest_colour(rgb: tuple[int, int, int]) -> str:
    """The name of the palette colour nearest to `rgb` ("redmean" weighted RGB distance)."""
    r, g, b = rgb

    def distance(entry: tuple[str, tuple[int, int, int]]) -> float:
        nr, ng, nb = entry[1]
        mean = (r + nr) / 2
        return (
            (2 + mean / 256) * (r - nr) ** 2
            + 4 * (g - ng) ** 2
            + (2 + (255 - mean) / 256) * (b - nb) ** 2
        )

    return min(NAMED_COLOURS, key=distance)[0]


def measure(image: Image.Image, size: tuple[int, int] | None = None) -> ImageFacts:
    """Measure size, orientation, the top colours, brightness and transparency of `image`;
    `size` is the original size when `image` was decoded reduced (a JPEG draft)."""
    width, height = size or image.size
    transparent = _transparent(image)
    scale = min(1.0, SAMPLE_SIDE / max(image.size))
    sample_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Nearest-neighbour sampling keeps real pixel colours; averaging would invent blends
    # (a red-green edge turning brown) and name colours the image does not have. Only the
    # sample is converted: a full-size RGBA copy would cost 4 bytes a pixel.
    sample = _rgba(image.resize(sample_size, Image.Resampling.NEAREST))
    counts: dict[tuple[int, int, int, int], int] = {}
    for n, pixel in sample.getcolors(maxcolors=sample_size[0] * sample_size[1]) or []:
        if isinstance(pixel, tuple):
            r, g, b, a = pixel
            counts[r, g, b, a] = n
    visible = {pixel: n for pixel, n in counts.items() if pixel[3] >= OPAQUE_FROM}
    if not visible:  # wholly transparent: describe the hidden colours rather than nothing
        visible = counts
    total = sum(visible.values())
    named: dict[str, list[int]] = {}
    luma = 0.0
    for (r, g, b, _), n in visible.items():
        sums = named.setdefault(nearest_colour((r, g, b)), [0, 0, 0, 0])
        sums[0] += r * n
        sums[1] += g * n
        sums[2] += b * n
        sums[3] += n
        luma += (0.299 * r + 0.587 * g + 0.114 * b) * n
    ranked = sorted(named.items(), key=lambda item: (-item[1][3], item[0]))[:TOP_COLOURS]
    colours = tuple(
        Colour(name, _hex(s[0] // s[3], s[1] // s[3], s[2] // s[3]), round(s[3] / total, 3))
        for name, s in ranked
    )
    mean_luma = luma / total
    brightness = (
        Brightness.DARK
        if mean_luma < DARK_BELOW
        else Brightness.BRIGHT
        if mean_luma >= BRIGHT_FROM
        else Brightness.MEDIUM
    )
    return ImageFacts(
        width=width,
        height=height,
        orientation=orientation(width, height),
        aspect=round(width / height, 3),
        colours=colours,
        brightness=brightness,
        transparent=transparent,
    )


def _transparent(image: Image.Image) -> bool:
    """Whether any pixel is less than opaque, without converting the whole image."""
    if "A" in image.getbands():
        low, _ = image.getchannel("A").getextrema()
        return isinstance(low, int) and low < 255
    if "transparency" not in image.info:
        return False
    key = image.info["transparency"]
    if image.mode in ("P", "L") and isinstance(key, int | bytes):
        # A transparent index or grey level (int), or a palette's alphas (bytes): is one used?
        used = [value for _, value in image.getcolors(maxcolors=256) or []]
        if isinstance(key, int):
            return key in used
        return any(isinstance(v, int) and v < len(key) and key[v] < 255 for v in used)
    low, _ = _rgba(image).getchannel("A").getextrema()  # rare: RGB or 16-bit with a tRNS key
    return isinstance(low, int) and low < 255


def _rgba(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit greys (PNG) would clip to white if converted directly; scale to 8 bits.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGBA")


def analyse(data: bytes) -> tuple[ImageInfo, ImageFacts]:
    """Validate and measure an image, decoding no more than the sample needs (CPU work)."""
    info, image = decode_image(data, max_side=SAMPLE_SIDE)
    with image:
        return info, measure(image, (info.width, info.height))


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hex(r: int, g: int, b: int) -> str:
    return f"#{r:02x}{g:02x}{b:02x}"


def measured_caption(facts: ImageFacts, style: CaptionStyle) -> str:
    """A caption stating only measured facts, e.g. "A 1200×800 landscape image, mostly navy
    blue and white, bright."; the detailed style adds each colour's share."""
    names = [c.name for c in facts.colours if c.share >= MENTION_SHARE] or [
        c.name for c in facts.colours[:1]
    ]
    mostly = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    text = f"A {facts.width}×{facts.height} {facts.orientation} image"
    text += f", mostly {mostly}" if mostly else ""
    text += f", {facts.brightness}"
    text += ", with transparent areas." if facts.transparent else "."
    if style is CaptionStyle.DETAILED and facts.colours:
        shares = ", ".join(f"{c.name} {round(c.share * 100)}%" for c in facts.colours)
        text += f" Colour shares: {shares}."
    return text


def build_prompt(spec: CaptionSpec) -> str:
    """The model prompt: the style's instructions and the language to answer in."""
    return f"{_GUIDES[spec.style]}\nAnswer in the language with BCP 47 tag {spec.language}."


async def caption(
    engine: Engine,
    spec: CaptionSpec,
    *,
    model: str,
    request_id: str,
    offload: Offload = asyncio.to_thread,
) -> AsyncIterator[Piece]:
    """Measure the image (through `offload`, off the event loop), then stream a caption from
    the model (or, with the dev engine, state the measured facts without calling it); a
    structured result at the end."""
    yield Stage(0.0, "analysing")
    info, facts = await offload(analyse, spec.image)
    result: dict[str, object] = {
        "width": facts.width,
        "height": facts.height,
        "format": info.format,
        "orientation": str(facts.orientation),
        "aspect": facts.aspect,
        "colours": [{"name": c.name, "hex": c.hex, "share": c.share} for c in facts.colours],
        "brightness": str(facts.brightness),
        "transparent": facts.transparent,
    }
    if engine.name == DEV_ENGINE:
        text = measured_caption(facts, spec.style)
        yield Delta(text, tokens=0)
        note = DEV_NOTE if spec.language == "en" else f"{DEV_NOTE}; written in English"
        yield Structured({**result, "caption": text, "model_caption": False, "note": note})
        return
    yield Stage(0.5, "captioning")
    prompt = build_prompt(spec)
    yield Usage(prompt_tokens=count_tokens(prompt))
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens,
        temperature=0.2,
        parameters={
            "image_b64": await offload(_base64, spec.image),  # up to 10 MiB
            "content_type": info.content_type,
            "style": str(spec.style),
            "language": spec.language,
        },
    )
    parts: list[str] = []
    async with relayed(engine, request, parts) as deltas:
        async for delta in deltas:
            yield delta
    yield Structured({**result, "caption": "".join(parts).strip(), "model_caption": True})
