"""Validation of uploaded image and audio bytes, before any model sees them.

Images are opened with Pillow only from the formats we accept and checked against our own
pixel limit from the header, before any pixel is decoded (Pillow's global
`Image.MAX_IMAGE_PIXELS` is left alone: it belongs to the whole process). `probe_image` stops
there; `sniff_image` and `decode_image` then decode, so truncated files fail, but never more
than needed: JPEG at a reduced scale (`draft`), other formats only up to the pixel limit.
Decoding is CPU work for a thread pool, not the event loop. Audio is recognised by its magic
bytes; WAV gets an exact duration from `wave`, FLAC, Ogg and M4A a duration from their headers
where it is cheap to read. Anything else raises `BadInput`.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import wave
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, TypeVarTuple

from PIL import Image, UnidentifiedImageError

from inference.base import BadInput

MAX_IMAGE_BYTES = 10 * 1024 * 1024
# 4096×4096: a 12-16 MP photo fits, and far more than a caption model looks at (CLIP sees
# 224-336 px). Lossless formats decode in full (Pillow cannot decode them reduced), so this
# bounds the memory (64 MiB as RGBA) and time of the worst image.
MAX_IMAGE_PIXELS = 4096 * 4096
# Pillow copies a decoded WebP canvas (4 bytes a pixel) while holding the GIL: about 20 ms
# at 2048×2048 on a slow core but 160 ms at 4096×4096, a stall of every other thread.
MAX_WEBP_PIXELS = 2048 * 2048
CHECK_SIDE = 64  # the longer side a JPEG is decoded at to check it is whole
MAX_AUDIO_BYTES = 50 * 1024 * 1024

IMAGE_CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}
AUDIO_CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
}
_PILLOW_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
# Pillow reports broken input through many exception types; all of them mean "bad upload".
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
_MP4_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"mp41", b"mp42", b"isom", b"iso2"})
_MP3_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}
_MP3_SCAN_BYTES = 4_096  # how far past an ID3 tag to look for the first frame (padding)


class Offload(Protocol):
    """Runs CPU-heavy work off the event loop: the caller's bounded pool (resolvers/core/cpu.py),
    or `asyncio.to_thread` where none is handed in."""

    def __call__(self, fn: Callable[[*_Ts], _T], /, *args: *_Ts) -> Awaitable[_T]: ...


@dataclass(frozen=True)
class ImageInfo:
    """A validated image: its format (png, jpeg, webp, gif), size and MIME type."""

    format: str
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class AudioInfo:
    """Validated audio: format (wav, mp3, flac, ogg, m4a), what its headers tell cheaply
    (None when unknown), its MIME type and its size in bytes."""

    format: str
    duration_seconds: float | None
    sample_rate: int | None
    channels: int | None
    content_type: str
    size_bytes: int


def probe_image(data: bytes) -> ImageInfo:
    """Format, size and pixel limit from the header (and a PNG's chunk checksums), without
    decoding a pixel: cheap enough for the event loop, and refuses bombs before any decode."""
    _check_bytes(data)
    with _pillow_errors(), Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as probe:
        info = _image_info(probe)
        probe.verify()
    return info


def sniff_image(data: bytes) -> ImageInfo:
    """Validate an uploaded image and describe it; `BadInput` says what is wrong with it.
    Decodes it (JPEG at a small scale) so truncated files fail: CPU work, off the loop."""
    info, image = decode_image(data, max_side=CHECK_SIDE)
    image.close()
    return info


def decode_image(data: bytes, *, max_side: int | None = None) -> tuple[ImageInfo, Image.Image]:
    """Validate an uploaded image and return it decoded (first frame of a GIF). With
    `max_side`, a JPEG is decoded at the smallest scale keeping that many pixels on its
    longer side (DCT scaling: up to 8× fewer per side); other formats decode in full."""
    info = probe_image(data)
    with _pillow_errors():
        image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
        try:
            if max_side is not None and info.format == "jpeg":
                scale = min(1.0, max_side / max(info.width, info.height))
                wanted = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
                image.draft(image.mode, wanted)
            image.load()
        except BaseException:
            image.close()
            raise
    return info, image


def _check_bytes(data: bytes) -> None:
    if not data:
        raise BadInput("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise BadInput(
            f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (10 MiB)"
        )


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many errors as `BadInput`; its bomb warning as an error, not a log line."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except UnidentifiedImageError as exc:
            raise BadInput("the image is not a PNG, JPEG, WebP or GIF file") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadInput(_too_many_pixels_message(None)) from exc
        except _PILLOW_ERRORS as exc:
            raise BadInput(f"the image is truncated or corrupt ({exc})") from exc


def _image_info(image: Image.Image) -> ImageInfo:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadInput("the image has no pixels")
    fmt = (image.format or "").lower()
    if fmt not in IMAGE_CONTENT_TYPES:
        raise BadInput("the image is not a PNG, JPEG, WebP or GIF file")
    limit = max_pixels(fmt)
    if width * height > limit:
        raise BadInput(_too_many_pixels_message((width, height), limit))
    return ImageInfo(fmt, width, height, IMAGE_CONTENT_TYPES[fmt])


def max_pixels(fmt: str) -> int:
    """The most pixels an image of this format (png, jpeg, webp, gif) may have."""
    return MAX_WEBP_PIXELS if fmt == "webp" else MAX_IMAGE_PIXELS


def _too_many_pixels_message(size: tuple[int, int] | None, limit: int = MAX_IMAGE_PIXELS) -> str:
    what = "the image" if size is None else f"the image is {size[0]}×{size[1]}; it"
    return f"{what} has more than {limit} pixels (possible decompression bomb)"


def sniff_audio(data: bytes) -> AudioInfo:
    """Recognise uploaded audio by its magic bytes and read what its headers tell cheaply."""
    if not data:
        raise BadInput("the audio is empty")
    if len(data) > MAX_AUDIO_BYTES:
        raise BadInput(
            f"the audio is {len(data)} bytes; the limit is {MAX_AUDIO_BYTES} bytes (50 MiB)"
        )
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        duration, rate, channels = _wav(data)
        return _audio("wav", data, duration, rate, channels)
    if data[:4] == b"fLaC":
        return _audio("flac", data, *_flac(data))
    if data[:4] == b"OggS":
        return _audio("ogg", data, *_ogg(data))
    if data[4:8] == b"ftyp":
        return _audio("m4a", data, _m4a_duration(data), None, None)
    if data[:3] == b"ID3" or _mp3_frame(data, 0) is not None:
        rate, channels = _mp3(data)
        return _audio("mp3", data, None, rate, channels)
    raise BadInput("the audio is not a WAV, MP3, FLAC, Ogg or M4A file")


def _audio(
    fmt: str, data: bytes, duration: float | None, rate: int | None, channels: int | None
) -> AudioInfo:
    return AudioInfo(fmt, duration, rate, channels, AUDIO_CONTENT_TYPES[fmt], len(data))


def _wav(data: bytes) -> tuple[float, int, int]:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            rate, channels = reader.getframerate(), reader.getnchannels()
            frame_bytes = reader.getsampwidth() * channels
            # The header's frame count may overstate a cut-off file: count what is there.
            present = len(reader.readframes(reader.getnframes())) // max(frame_bytes, 1)
    except wave.Error as exc:
        if "unknown format" not in str(exc):
            raise BadInput(f"the WAV file is malformed ({exc})") from exc
        return _wav_chunks(data)  # float or extensible WAV, which `wave` cannot read here
    except (EOFError, struct.error) as exc:
        raise BadInput("the WAV file is truncated") from exc
    except (RuntimeError, ValueError, OSError) as exc:  # `wave` on impossible chunk sizes
        raise BadInput("the WAV file is malformed (bad chunk sizes)") from exc
    if rate <= 0 or channels <= 0:
        raise BadInput("the WAV file has no sample rate or channels")
    if present == 0:
        raise BadInput("the WAV file has no audio frames")
    return present / rate, rate, channels


def _wav_chunks(data: bytes) -> tuple[float, int, int]:
    """Duration from the `fmt ` and `data` chunks, for encodings `wave` does not decode."""
    offset, fmt, size = 12, None, None
    while offset + 8 <= len(data) and (fmt is None or size is None):
        chunk, length = struct.unpack_from("<4sI", data, offset)
        if chunk == b"fmt " and length >= 16 and offset + 24 <= len(data):
            _, channels, rate, byte_rate = struct.unpack_from("<HHII", data, offset + 8)
            fmt = (channels, rate, byte_rate)
        elif chunk == b"data":
            size = min(length, len(data) - offset - 8)
        offset += 8 + length + (length & 1)
    if fmt is None or size is None or min(fmt) == 0:
        raise BadInput("the WAV file is malformed (no usable fmt or data chunk)")
    if size == 0:
        raise BadInput("the WAV file has no audio frames")
    channels, rate, byte_rate = fmt
    return size / byte_rate, rate, channels


def _flac(data: bytes) -> tuple[float | None, int, int]:
    # The first metadata block must be STREAMINFO (type 0, 34 bytes).
    if len(data) < 42 or data[4] & 0x7F != 0 or int.from_bytes(data[5:8], "big") != 34:
        raise BadInput("the FLAC file is malformed (no STREAMINFO block)")
    bits = int.from_bytes(data[18:26], "big")
    rate, channels, total = bits >> 44, ((bits >> 41) & 0x7) + 1, bits & 0xF_FFFF_FFFF
    if rate == 0:
        raise BadInput("the FLAC file is malformed (sample rate 0)")
    return (total / rate if total else None), rate, channels


def _ogg(data: bytes) -> tuple[float | None, int | None, int | None]:
    if len(data) < 28 or data[4] != 0:
        raise BadInput("the Ogg file is malformed (bad page header)")
    segments = data[26]
    packet = data[27 + segments : 27 + segments + 19]
    if packet[:7] == b"\x01vorbis" and len(packet) >= 16:
        channels, rate = packet[11], int.from_bytes(packet[12:16], "little")
        skip = 0
    elif packet[:8] == b"OpusHead" and len(packet) >= 12:
        channels, rate = packet[9], 48_000  # Opus always decodes at 48 kHz
        skip = int.from_bytes(packet[10:12], "little")
    else:
        return None, None, None  # another codec in Ogg: accepted, nothing cheap to read
    if rate == 0 or channels == 0:
        raise BadInput("the Ogg file is malformed (sample rate or channels 0)")
    # The last page's granule position counts samples from the start of the stream.
    last = data.rfind(b"OggS")
    granule = int.from_bytes(data[last + 6 : last + 14], "little") if last + 14 <= len(data) else 0
    duration = (granule - skip) / rate if 0 < granule - skip < 1 << 62 else None
    return duration, rate, channels


def _m4a_duration(data: bytes) -> float | None:
    if data[8:12] not in _MP4_AUDIO_BRANDS:
        raise BadInput("the MP4 file is not M4A audio (unknown brand)")
    moov = _box(data, 0, len(data), b"moov")
    mvhd = None if moov is None else _box(data, moov[0], moov[1], b"mvhd")
    if mvhd is None:
        return None
    payload = data[mvhd[0] : mvhd[1]]
    if payload[:1] == b"\x01" and len(payload) >= 32:
        scale, length = struct.unpack_from(">IQ", payload, 20)
    elif payload[:1] == b"\x00" and len(payload) >= 20:
        scale, length = struct.unpack_from(">II", payload, 12)
    else:
        raise BadInput("the M4A file is malformed (short mvhd box)")
    return length / scale if scale and length else None


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The payload span of the first `kind` box among the boxes in data[start:end]."""
    offset = start
    while offset + 8 <= end:
        size, name = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1 and offset + 16 <= end:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = end - offset
        if size < header:
            raise BadInput("the M4A file is malformed (bad box size)")
        if name == kind:
            return offset + header, min(offset + size, end)
        offset += size
    return None


def _mp3(data: bytes) -> tuple[int, int]:
    start = 0
    if data[:3] == b"ID3":
        if len(data) < 10:
            raise BadInput("the MP3 file is truncated (short ID3 tag)")
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        start = 10 + size + (10 if data[5] & 0x10 else 0)
    for offset in range(start, min(start + _MP3_SCAN_BYTES, len(data) - 3)):
        frame = _mp3_frame(data, offset)
        if frame is not None:
            return frame
    raise BadInput("the MP3 file has no audio frame")


def _mp3_frame(data: bytes, offset: int) -> tuple[int, int] | None:
    """Sample rate and channels of an MPEG audio layer III frame header at `offset`."""
    header = data[offset : offset + 4]
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 0x3, (header[1] >> 1) & 0x3
    bitrate, rate_index = header[2] >> 4, (header[2] >> 2) & 0x3
    if version == 1 or layer != 1 or bitrate in (0, 15) or rate_index == 3:
        return None
    return _MP3_RATES[version][rate_index], 1 if header[3] >> 6 == 3 else 2
