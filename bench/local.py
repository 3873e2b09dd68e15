"""`python -m bench.local`: the local engine through the full stack against its models called
directly, in one run.

- Stack: one `creation-king serve` in embedded mode (no services) with CK_ENGINE=local and
  the given CK_LOCAL_THREADS / CK_LOCAL_SLOTS, one registered user; the `write` and
  `transcribe` subscriptions over graphql-transport-ws from this process (one socket per
  stream). The WAV is uploaded once (createUpload, then PUT) and transcribed by its id.
- Direct (baseline), in this process: `slots` llama_cpp.Llama contexts on the same GGUF with
  the same n_ctx and threads, each generation doing what `inference.local` does (a seeded
  request: `reset()`, then a streamed `create_completion` of `chat_prompt(build_prompt(...))`
  with the same max_tokens, temperature, seed, stop and repeat penalty; an unseeded one: a
  random seed and no reset) on a pool of `slots` threads that queues the rest; and the
  faster-whisper model of `inference.speech.load_model` with the server's settings.

Stack and direct runs alternate (which goes first alternates too), so load drift hits both;
each ratio is the median of the pairs' ratios. Times are taken in this process with
perf_counter from the moment a request is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from bench import procs
from bench.local_sides import (
    PROMPT,
    TEMPERATURE,
    DirectLlamas,
    Meter,
    StackSocket,
    Stream,
    tokens_per_second,
    transcribe_direct,
)
from bench.services import JWT_SECRET
from bench.stats import Summary, ratio
from inference.local import (
    LocalConfig,
)
from inference.speech import SpeechConfig, load_model

REPO = Path(__file__).resolve().parent.parent
SEED = 7
CONCURRENT = 4
TTFT_TOKENS = 4
GOAL_RATIO = 0.9
GOAL_ADDED_TTFT_MS = 5.0
SPEECH = (  # about 23 s at espeak-ng's default rate
    "The lighthouse stood on a rock at the edge of the bay, and every night for forty years "
    "the keeper climbed its stairs to light the lamp. Ships passed in the dark and never knew "
    "his name. On his last night he wrote a letter to the town, thanking the fishermen, the "
    "baker and the children who waved from the harbour wall. In the morning a new keeper "
    "arrived with a small bag and a cat, and the old man walked down the hill without looking "
    "back."
)
REGISTER = """mutation R($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) { ... on AuthSession { accessToken } }
}"""
CREATE_UPLOAD = """mutation U($input: CreateUploadInput!) {
  createUpload(input: $input) {
    __typename ... on UploadTicket { url headers { name value } upload { id } }
  }
}"""
_EVENT = """{
    __typename
    ... on TokenDelta { text }
    ... on CreationCompleted { usage { completionTokens } }
    ... on CreationFailed { code message }
  }"""
WRITE = "subscription W($input: WriteInput!) { write(input: $input) " + _EVENT + " }"
TRANSCRIBE = "subscription T($input: TranscribeInput!) { transcribe(input: $input) " + _EVENT + " }"
T = TypeVar("T")


@dataclass
class Paired(Generic[T]):
    """Alternating runs of one phase: what each side returned, and what it cost."""

    stack: list[T] = field(default_factory=list)
    direct: list[T] = field(default_factory=list)
    stack_meter: Meter = field(default_factory=Meter)
    direct_meter: Meter = field(default_factory=Meter)


async def _alternate(
    runs: int,
    server_pid: int,
    stack: Callable[[], Awaitable[T]],
    direct: Callable[[], Awaitable[T]],
) -> Paired[T]:
    """`runs` pairs, stack first in even pairs and direct first in odd ones."""
    paired: Paired[T] = Paired()
    for i in range(runs):
        sides = [
            (paired.stack, paired.stack_meter, server_pid, stack),
            (paired.direct, paired.direct_meter, os.getpid(), direct),
        ]
        for results, meter, pid, work in sides if i % 2 == 0 else sides[::-1]:
            results.append(await meter.measure(pid, work()))
    return paired


@contextlib.contextmanager
def _server(workdir: Path, config: LocalConfig) -> Iterator[procs.Server]:
    port = procs.free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # an A/B of another checkout
        "CK_ENV": "dev",
        "CK_ENGINE": "local",
        "CK_LOCAL_THREADS": str(config.threads),
        "CK_LOCAL_SLOTS": str(config.slots),
        "CK_DATA_DIR": str(workdir / "data"),
        "CK_JWT_SECRET": JWT_SECRET,
        "CK_ARGON2_TIME_COST": "1",
        "CK_ARGON2_MEMORY_KIB": "1024",
        "CK_RATE_LIMIT_PER_MINUTE": "10000000",
        "CK_CACHE_TTL_SECONDS": "0",  # each seeded run is generated, not answered from cache
    }
    command = procs.serve_command(port)
    with procs.deferred_interrupts():
        server = procs.start_server("local", command, port=port, env=env, cwd=REPO, log_dir=workdir)
    try:
        server.wait_ready(lambda client: client.get("/healthz").status_code == 200, timeout=90)
        yield server
    finally:
        with procs.deferred_interrupts():
            server.stop()


async def _graphql(
    http: httpx.AsyncClient, document: str, variables: dict[str, Any], token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": document, "variables": variables}
    answer = (await http.post("/graphql", json=body, headers=headers)).json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


async def _upload(http: httpx.AsyncClient, token: str, audio: bytes) -> str:
    declared = {"kind": "AUDIO", "contentType": "audio/wav", "size": len(audio)}
    ticket = (await _graphql(http, CREATE_UPLOAD, {"input": declared}, token))["createUpload"]
    if ticket["__typename"] != "UploadTicket":
        raise RuntimeError(f"no upload ticket: {ticket}")
    headers = {h["name"]: h["value"] for h in ticket["headers"]}
    (await http.put(ticket["url"], content=audio, headers=headers)).raise_for_status()
    return str(ticket["upload"]["id"])


@dataclass
class _Sides:
    """What both sides of a run use: the server and its sockets, the direct models."""

    server: procs.Server
    sockets: list[StackSocket]
    upload_id: str
    llamas: DirectLlamas
    whisper: Any
    speech: SpeechConfig
    audio: bytes

    async def writes(
        self, runs: int, max_tokens: int, streams: int, *, seeded: bool = True
    ) -> Paired[list[Stream]]:
        """`runs` pairs of `streams` generations at once (seeds SEED, SEED + 1...)."""

        def seed(k: int) -> int | None:
            return SEED + k if seeded else None

        def variables(k: int) -> dict[str, Any]:
            fields = {"prompt": PROMPT, "genre": "STORY", "maxTokens": max_tokens}
            return {"input": {**fields, "temperature": TEMPERATURE, "seed": seed(k)}}

        async def stack() -> list[Stream]:
            start = time.perf_counter()
            calls = (self.sockets[k].run(WRITE, variables(k), start) for k in range(streams))
            return list(await asyncio.gather(*calls))

        async def direct() -> list[Stream]:
            start = time.perf_counter()
            generate = self.llamas.generate
            calls = (
                generate(max_tokens=max_tokens, seed=seed(k), start=start) for k in range(streams)
            )
            return list(await asyncio.gather(*calls))

        return await _alternate(runs, self.server.pid, stack, direct)

    async def transcriptions(self, runs: int) -> Paired[Stream]:
        """`runs` pairs of transcriptions of the WAV, in English."""

        async def stack() -> Stream:
            variables = {"input": {"uploadId": self.upload_id, "language": "en"}}
            return await self.sockets[0].run(TRANSCRIBE, variables, time.perf_counter())

        async def direct() -> Stream:
            work = self.whisper, self.audio, self.speech.beam_size, time.perf_counter()
            return await asyncio.to_thread(transcribe_direct, *work)

        return await _alternate(runs, self.server.pid, stack, direct)


def _say(began: float, message: str) -> None:
    print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace, workdir: Path, audio: bytes) -> dict[str, Any]:
    began = time.monotonic()
    config = LocalConfig(threads=args.threads, slots=args.slots)
    speech = SpeechConfig(cpu_threads=args.threads)
    with _server(workdir, config) as server:
        _say(began, f"server ready (pid {server.pid}); loading the direct models")
        llamas = DirectLlamas(config)
        whisper = await asyncio.to_thread(load_model, speech)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            credentials = {"email": "local@example.com", "password": "bench password"}
            token = (await _graphql(http, REGISTER, credentials))["register"]["accessToken"]
            upload_id = await _upload(http, token, audio)
        sockets = [await StackSocket.open(server.ws_url, token) for _ in range(CONCURRENT)]
        sides = _Sides(server, sockets, upload_id, llamas, whisper, speech, audio)
        try:
            await sides.writes(1, 8, CONCURRENT)  # warm-up: every context on both sides
            await sides.transcriptions(1)
            _say(began, "warmed up; one stream")
            single = await sides.writes(args.runs, args.tokens, 1)
            _say(began, f"{CONCURRENT} concurrent streams")
            many = await sides.writes(args.concurrent_runs, args.tokens, CONCURRENT)
            _say(began, "time to first token")
            first = await sides.writes(args.ttft_runs, TTFT_TOKENS, 1, seeded=False)
            _say(began, "transcription")
            heard = await sides.transcriptions(args.speech_runs)
            _say(began, "done")
        finally:
            for socket in sockets:
                await socket.aclose()
            llamas.close()
    return {"single": single, "many": many, "first": first, "heard": heard}


def _pair_ratios(paired: Paired[list[Stream]]) -> list[float]:
    pairs = zip(paired.stack, paired.direct, strict=True)
    return [tokens_per_second(stack) / tokens_per_second(direct) for stack, direct in pairs]


def _rate(runs: list[list[Stream]]) -> float:
    return statistics.median(tokens_per_second(run) for run in runs)


def _ttft(runs: list[list[Stream]]) -> list[float]:
    return [run[0].ttft_ms for run in runs]


def _costs(label: str, paired: Paired[list[Stream]], *, same_text: bool = True) -> str:
    """A row of the second table: CPU per token, busy cores, spread of the pairs."""
    stack_tokens = sum(s.tokens for run in paired.stack for s in run)
    direct_tokens = sum(s.tokens for run in paired.direct for s in run)
    stack, direct, ratios = paired.stack_meter, paired.direct_meter, _pair_ratios(paired)
    pairs = zip(paired.stack, paired.direct, strict=True)
    equal = sum(all(a.text == b.text for a, b in zip(s, d, strict=True)) for s, d in pairs)
    return (
        f"| {label} | {stack.per_token(stack_tokens)} + {stack.per_token(stack_tokens, own=True)}"
        f" | {direct.per_token(direct_tokens)} | {stack.busy()} / {direct.busy()} "
        f"| {min(ratios):.2f}-{max(ratios):.2f}x "
        f"| {f'{equal} of {len(paired.stack)}' if same_text else '-'} |"
    )


def _print(result: dict[str, Any], args: argparse.Namespace, audio_s: float) -> None:
    single, many, first = result["single"], result["many"], result["first"]
    heard: Paired[Stream] = result["heard"]
    one, four = statistics.median(_pair_ratios(single)), statistics.median(_pair_ratios(many))
    ttft_stack, ttft_direct = Summary.of(_ttft(first.stack)), Summary.of(_ttft(first.direct))
    added = ttft_stack.p50 - ttft_direct.p50
    rtf_stack = statistics.median(s.done_ms for s in heard.stack) / 1000 / audio_s
    rtf_direct = statistics.median(s.done_ms for s in heard.direct) / 1000 / audio_s
    speed = ratio(rtf_direct, rtf_stack)
    loads = ["/".join(f"{v:.2f}" for v in averages) for averages in result["load"]]
    tokens, at_least = args.tokens, f"≥ {GOAL_RATIO}x"
    goals = [  # figure, stack | direct, comparison, goal, met, verdict
        (
            f"tokens/s, 1 stream of {tokens} tokens ({args.runs} pairs)",
            f"{_rate(single.stack):.1f} | {_rate(single.direct):.1f}",
            f"{one:.3f}x",
            at_least,
            one >= GOAL_RATIO,
            "tokens/s, 1 stream",
        ),
        (
            f"tokens/s, {CONCURRENT} concurrent streams of {tokens} tokens, {args.slots} slots "
            f"({args.concurrent_runs} pairs)",
            f"{_rate(many.stack):.1f} | {_rate(many.direct):.1f}",
            f"{four:.3f}x",
            at_least,
            four >= GOAL_RATIO,
            f"tokens/s, {CONCURRENT} concurrent",
        ),
        (
            f"time to first token p50, ms, prompt cached ({args.ttft_runs} pairs)",
            f"{ttft_stack.p50:.1f} | {ttft_direct.p50:.1f}",
            f"{added:+.1f} ms",
            f"< {GOAL_ADDED_TTFT_MS:.0f} ms added",
            added < GOAL_ADDED_TTFT_MS,
            "added time to first token p50",
        ),
        (
            f"transcribe, real-time factor, {audio_s:.1f} s WAV ({args.speech_runs} pairs)",
            f"{rtf_stack:.3f} | {rtf_direct:.3f}",
            f"{speed:.3f}x speed",
            at_least,
            speed >= GOAL_RATIO,
            "transcription speed",
        ),
    ]
    print(
        f"Local engine, {args.threads} thread(s) per sequence, {args.slots} slots. Load average "
        f"(1/5/15 min) at start {loads[0]}, at end {loads[1]}.\n\n"
        "| figure | stack | direct | stack vs direct | goal | met |\n|---|---:|---:|---:|---|---|"
    )
    for figure, values, compare, goal, met, _ in goals:
        print(f"| {figure} | {values} | {compare} | {goal} | {'met' if met else 'not met'} |")
    print(
        "\n| runs | CPU ms per token, server + client | direct | machine busy cores, "
        "stack / direct | pair ratios | same text |\n|---|---:|---:|---:|---:|---|"
    )
    print(_costs("1 stream", single))
    print(_costs(f"{CONCURRENT} streams", many))
    print(_costs("first token (unseeded)", first, same_text=False))
    differences = [s - d for s, d in zip(_ttft(first.stack), _ttft(first.direct), strict=True)]
    started = Summary.of([run[0].started_ms - run[0].sent_ms for run in first.stack])
    pairs = zip(heard.stack, heard.direct, strict=True)
    words = sum(s.text.split() == d.text.split() for s, d in pairs)
    stack, direct = heard.stack_meter, heard.direct_meter
    print(
        f"\nTime to first token: p50 of the pairs' differences "
        f"{statistics.median(differences):+.1f} ms; CreationStarted p50 {started.p50:.1f} ms "
        f"after subscribing; seeded (prompt read afresh; the {tokens}-token runs) stack "
        f"{Summary.of(_ttft(single.stack)).p50:.1f} ms, direct "
        f"{Summary.of(_ttft(single.direct)).p50:.1f} ms. Transcripts with the same words: "
        f"{words} of {len(heard.stack)}; CPU cores while transcribing, server + client "
        f"{stack.cpu_s / stack.wall_s:.2f} + {stack.own_s / stack.wall_s:.2f}, direct "
        f"{direct.cpu_s / direct.wall_s:.2f}.\n"
    )
    for _, _, compare, _, met, verdict in goals:
        print(f"verdict: {verdict}: {'met' if met else 'not met'} ({compare})")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.local`."""
    parser = argparse.ArgumentParser(prog="python -m bench.local", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (~1 min)")
    parser.add_argument("--tokens", type=int, default=200, help="maxTokens of each stream")
    parser.add_argument("--runs", type=int, default=5, help="pairs of single streams")
    parser.add_argument("--concurrent-runs", type=int, default=4, help="pairs of 4-stream runs")
    parser.add_argument("--ttft-runs", type=int, default=24, help="pairs of 4-token runs")
    parser.add_argument("--speech-runs", type=int, default=3, help="pairs of transcriptions")
    parser.add_argument("--threads", type=int, default=LocalConfig.threads)
    parser.add_argument("--slots", type=int, default=LocalConfig.slots)
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.runs, args.concurrent_runs = 100, 3, 2
        args.ttft_runs, args.speech_runs = 12, 2
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench.local needs espeak-ng (apt-get install espeak-ng)")
    procs.interrupt_on_sigterm()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ck-bench-local-") as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True, capture_output=True)
        audio = wav.read_bytes()
        result = asyncio.run(_run(args, Path(tmp), audio))
    result["load"] = [load_start, os.getloadavg()]
    with wave.open(io.BytesIO(audio)) as header:
        _print(result, args, header.getnframes() / header.getframerate())


if __name__ == "__main__":
    main()
