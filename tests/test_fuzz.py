"""Fuzzing the running API with operations generated from its live schema.

Over HTTP: schema-valid queries and mutations, one-violation documents, variables of every
shape, broken documents and raw bodies, sent anonymously, with a user's token or with a bad
one. Over websockets: subscriptions, each bounded by a timeout. The oracle: no 5xx, every body
JSON without a traceback, every error either a request error (parse, validation, variables)
or an expected one with a known code. A masked INTERNAL error is an unexpected exception on
the server: it fails the run with its reference, the operation and the server's log line,
and so does any ERROR the server logs, unless `KNOWN_BUGS` explains it (printed). The bugs
the run found and that were fixed (`FIXED_BUGS`) are sent again as regression tests.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import graphql
import httpx
import pytest
import websockets

from resolvers.core.errors import CreationKingError
from resolvers.core.settings import Settings
from schema.build import build_schema
from schema.types.errors import ErrorCode
from tests import fuzz_support as fuzz
from tests.conftest import GraphQLClient, Socket, open_socket, running_worker, serving
from tests.fuzz_support import Operation

HTTP_COUNTS = {
    "queries": 220,
    "mutations": 300,
    "negative": 150,
    "variables": 170,
    "documents": 170,
    "bodies": 90,
}
MIN_HTTP_OPERATIONS = 1_000
SUBSCRIPTION_COUNT = 120
MIN_SUBSCRIPTIONS = 100
HTTP_TIMEOUT = 30.0
# An answer this slow means the event loop stalled (the server shares the test's loop). Usual
# answers take milliseconds to a few hundred; CI's busy 2-core machine once took 3.4 s for
# one, so the limit leaves about 10x room above that. Speed itself is measured in bench/.
SLOW_SECONDS = 10.0
SUBSCRIPTION_TIMEOUT = 10.0  # from subscribe to complete, error or the client's cancel
TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "')

# Objects of the owner, made before generating, so operations can name real ids.
SEEDS = (
    "{ me { id } }",
    'mutation { createLexicon(input: {name: "seed", sourceLang: "en", targetLang: "zh", '
    'entries: [{source: "cat", target: "mao"}]}) { ... on Lexicon { id } } }',
    'mutation { saveTarotSpread(name: "seed", positions: ["past", "future"]) '
    "{ ... on Preset { id } } }",
    'mutation { saveSwotTemplate(name: "seed", template: {}) { ... on Preset { id } } }',
    'mutation { write(input: {prompt: "seed", maxTokens: 16}, wait: true) '
    "{ ... on Creation { id } } }",
    'mutation { report(input: {topic: "seed"}) { ... on Creation { id } } }',
    'mutation { createUpload(input: {kind: IMAGE, contentType: "image/png", size: 64}) '
    "{ ... on UploadTicket { upload { id } } } }",
)

# Errors graphql-core and Strawberry raise before any resolver runs: parsing, validation
# (with our depth, alias and token guards), operation choice, variable coercion.
REQUEST_ERROR = re.compile(
    r"Syntax Error: |Cannot query field |Unknown (argument|type|directive|fragment|operation) "
    r"|(Field|Argument|Fragment|Directive|The directive|Enum|Value|Expected type) '"
    r"|Variable '\$|Expected value of |(Int|Float|String|Boolean|ID) cannot represent "
    r"|There can be only one |Fragment cannot |Cannot spread fragment "
    r"|This anonymous operation must be the only|Must provide |(Anonymous )?Subscription.* must "
    r"|\d+ aliases found|'[^']*' exceeds maximum operation depth|Token limit"
    r"|'[^']*' selects \d+ fields once fragments are expanded"
    r"|'[^']*' introspects \d+ levels deep|'[^']*' selects \d+ introspection fields"
    r"|Document contains more than|Variable values are nested too deeply"
    r"|Maximum introspection depth exceeded|Validation aborted"
)


def known_codes() -> set[str]:
    """Codes of expected errors: the schema's ErrorCode, our exception types, and the
    request-level ones (BAD_REQUEST; DOCUMENT_TOO_LARGE, an anonymous document over 16K)."""
    codes = {code.value for code in ErrorCode} | {"BAD_REQUEST", "DOCUMENT_TOO_LARGE"}
    pending = list(CreationKingError.__subclasses__())
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes


# --- findings and the oracle ---------------------------------------------------------------


@dataclasses.dataclass
class Finding:
    """One thing the oracle refused, with what the server logged meanwhile."""

    operation: Operation
    problem: str
    log: str = ""
    known: str | None = None

    def report(self) -> str:
        log = f"\n    server log: {self.log}" if self.log else ""
        return f"  - {self.problem}\n    operation: {self.operation.describe()}{log}"

    def signature(self) -> str:
        """What findings of one cause share: the kind of problem and the exception's origin."""
        kind = self.problem.split(":")[0]
        raised = re.search(r"\| (\w+): .*\| at ([^|]*)$", self.log, re.DOTALL)
        if raised:
            return f"{kind}: {raised[1]} at {raised[2].strip()}"
        return re.sub(r"reference [0-9a-f]+", "reference ...", self.problem)[:120]


def grouped(findings: Sequence[Finding]) -> str:
    """Findings by signature, most frequent first, each with its shortest operation."""
    groups: dict[str, list[Finding]] = collections.defaultdict(list)
    for finding in findings:
        groups[finding.signature()].append(finding)
    lines = []
    for signature, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        shortest = min(members, key=lambda finding: len(finding.operation.describe(10**6)))
        lines += [f"{len(members)} x {signature}", shortest.report()]
    return "\n".join(lines)


class LogTap(logging.Handler):
    """Keeps the server's log records (our loggers and uvicorn's, which does not propagate)."""

    LOGGERS = ("", "uvicorn")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[LogTap]:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        try:
            yield self
        finally:
            for name in self.LOGGERS:
                logging.getLogger(name).removeHandler(self)

    def referencing(self, reference: str) -> list[logging.LogRecord]:
        return [r for r in self.records if f"(reference {reference})" in r.getMessage()]


def _line(record: logging.LogRecord) -> str:
    """A log record in one line: message, exception, and where it was raised."""
    text = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [frame for frame in frames if "site-packages" not in frame.filename]
        where = [f"{f.filename.rsplit('/', 2)[-2:]!s} {f.lineno} in {f.name}" for f in frames[-1:]]
        if ours and ours[-1] is not frames[-1]:
            where.insert(0, f"ours: {ours[-1].filename} {ours[-1].lineno} in {ours[-1].name}")
        text += f" | {type(exc).__name__}: {exc} | at " + "; ".join(where)
    return text


class Oracle:
    """Judges answers; counts operations, statuses and error codes; keeps findings.

    Log records a finding shows are claimed by it; every other record at ERROR or above
    becomes a finding of its own (an exception that no answer showed), blamed on the
    operation that was in flight when it was logged."""

    def __init__(self, tap: LogTap) -> None:
        self.tap = tap
        self.codes = known_codes()
        self.findings: list[Finding] = []
        self.claimed: set[int] = set()
        self.in_flight: list[tuple[float, Operation]] = []
        self.sent: collections.Counter[str] = collections.Counter()
        self.callers: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.slowest: list[tuple[float, str]] = []

    def started(self, operation: Operation, caller: str) -> int:
        """Counts `operation`; returns the log position to blame records from."""
        self.sent[operation.category] += 1
        self.callers[caller] += 1
        self.in_flight.append((time.time(), operation))
        return len(self.tap.records)

    def add(
        self, operation: Operation, problem: str, records: Sequence[logging.LogRecord] = ()
    ) -> None:
        self.claimed.update(id(record) for record in records)
        log = " || ".join(_line(record) for record in records)
        self.findings.append(Finding(operation, problem, log))

    def judge_http(self, operation: Operation, response: httpx.Response, since: int) -> None:
        self.statuses[f"{operation.category} {response.status_code}"] += 1
        text = response.text
        if response.status_code >= 500:
            problem = f"HTTP {response.status_code}: {text[:200]!r}"
            self.add(operation, problem, self.tap.records[since:])
            return
        if TRACEBACK.search(text):
            self.add(operation, f"traceback text in the body: {text[:300]!r}")
        try:
            body = json.loads(text)
        except ValueError:
            problem = f"HTTP {response.status_code}, the body is not JSON: {text[:200]!r}"
            self.add(operation, problem)
            return
        if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
            self.add(operation, f"the body is no GraphQL response: {text[:200]!r}")
            return
        self.judge_errors(operation, body.get("errors") or [])

    def judge_errors(self, operation: Operation, errors: Any) -> None:
        for error in errors if isinstance(errors, list) else [errors]:
            problem = self._problem(error)
            if problem is not None:
                reference = (error.get("extensions") or {}).get("reference")
                self.add(operation, problem, self.tap.referencing(reference) if reference else ())

    def _problem(self, error: Any) -> str | None:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return f"an error that is not {{message: string}}: {error!r}"
        code = (error.get("extensions") or {}).get("code")
        self.errors[code or "request error"] += 1
        if code == "INTERNAL":
            return f"masked INTERNAL error: {error['message']} at path {error.get('path')}"
        if code is not None:
            return None if code in self.codes else f"unknown error code {code!r}: {error}"
        if "path" in error:
            return f"an uncoded error from a resolver: {error}"
        if not REQUEST_ERROR.match(error["message"]):
            return f"an unrecognised request error: {error['message']!r}"
        return None

    def timed(self, seconds: float, operation: Operation) -> None:
        self.slowest = sorted([*self.slowest, (seconds, operation.describe(120))])[-5:]

    def audit_log(self) -> None:
        """Findings for the ERROR records no other finding claimed."""
        for record in self.tap.records:
            if record.levelno >= logging.ERROR and id(record) not in self.claimed:
                before = [op for at, op in self.in_flight if at <= record.created]
                blamed = before[-1] if before else self.in_flight[0][1]
                self.add(blamed, f"the server logged: {record.getMessage()[:120]}", [record])

    def explain(self) -> list[Finding]:
        """Marks findings that a known bug explains; returns the others."""
        for finding in self.findings:
            finding.known = next((bug.name for bug in KNOWN_BUGS if bug.explains(finding)), None)
        return [finding for finding in self.findings if finding.known is None]

    def summary(self, title: str, started: float) -> str:
        lines = [
            f"{title}: {sum(self.sent.values())} operations in {time.monotonic() - started:.1f} s"
        ]
        lines += [f"  {category}: {count}" for category, count in sorted(self.sent.items())]
        lines.append(f"  callers: {dict(self.callers.most_common())}")
        lines.append(f"  statuses: {dict(sorted(self.statuses.items()))}")
        lines.append(f"  errors by code: {dict(self.errors.most_common())}")
        lines += [f"  slow: {seconds:.2f} s {what}" for seconds, what in reversed(self.slowest)]
        for bug in KNOWN_BUGS:
            seen = [finding for finding in self.findings if finding.known == bug.name]
            lines.append(f"  known bug {bug.name}: seen {len(seen)} times")
            lines += [finding.report() for finding in seen[:1]]
        return "\n".join(lines)


# --- known server bugs: allowed in the run, each reproduced by a strict xfail test ---------


@dataclasses.dataclass(frozen=True)
class KnownBug:
    """A server bug the run found: findings it `explains` are allowed (and printed); its
    `reproduction` is sent by a strict xfail test, which fails once the bug is fixed."""

    name: str
    reason: str
    reproduction: Operation | None
    explains: Callable[[Finding], bool]


# Bugs the run found and that were fixed: their reproductions stay as regression tests.
FIXED_BUGS: tuple[KnownBug, ...] = (
    KnownBug(
        "variable-coercion-masked",
        "a variable that does not coerce (wrong type, missing, out of range) is masked as "
        "INTERNAL: the error masking treated graphql-core's own GraphQLError, kept as "
        "original_error by coerce_variable_values, as an unexpected exception",
        Operation(
            "known",
            query="query Page($first: Int!) { creations(first: $first) { __typename } }",
            variables={"first": "ten"},
        ),
        lambda f: f.problem.startswith("masked INTERNAL") and "| GraphQLError:" in f.log,
    ),
    KnownBug(
        "subscription-over-http-masked",
        "a subscription POSTed without the multipart Accept header is executed like a query; "
        "the async generator fails 'Cannot return null for non-nullable field' and is masked "
        "as INTERNAL instead of a 400 (or a request error) saying to use the websocket",
        Operation(
            "known",
            query='subscription { creationEvents(id: "0") { __typename } }',
        ),
        lambda f: (
            f.problem.startswith("masked INTERNAL")
            and "Cannot return null for non-nullable field Subscription." in f.log
        ),
    ),
    KnownBug(
        "huge-json-integer-500",
        "a JSON body with an integer of more than 4,300 digits gets a 500: json.loads raises "
        "a plain ValueError (int max str digits) that GraphQLView.parse_http_body does not "
        "catch as it does JSONDecodeError",
        Operation(
            "known", body=b'{"query": "{ __typename }", "variables": {"n": 1' + b"0" * 4300 + b"}}"
        ),
        lambda f: f.problem.startswith("HTTP 500") and "Exceeds the limit (4300 digits)" in f.log,
    ),
    KnownBug(
        "swot-template-validation-masked",
        "saveSwotTemplate with a template out of range (items 0 or over 8, strategies 0 or "
        "over 5) is masked as INTERNAL instead of an InvalidInputError result: the pydantic "
        "ValidationError of SwotTemplateInput.model_validate (schema/presets.py) escapes",
        Operation(
            "known",
            query='mutation { saveSwotTemplate(name: "t", template: {items: 0}) { __typename } }',
        ),
        lambda f: (
            f.problem.startswith("masked INTERNAL")
            and "ValidationError" in f.log
            and "in save_swot_template" in f.log
        ),
    ),
    KnownBug(
        "fragment-fan-out-exponential",
        "fragments that each spread the one before twice make 2**n selections in a 1 KB "
        "document: strawberry's QueryDepthLimiter and MaxAliasesLimiter walk every spread "
        "without memo, blocking the event loop (18 levels: 3 s; 23: minutes)",
        Operation("known", query=fuzz.fragment_fan_out(18, "__typename")),
        lambda f: f.problem.startswith("slow") and "fragment F1 on" in (f.operation.query or ""),
    ),
    KnownBug(
        "loaders-token-reset-in-another-context",
        "a subscription's stream closed by another task than the one that ran it (the legacy "
        "graphql-ws handler's stop, the garbage collector's finaliser after an invalid "
        "subscription there) raises ValueError: OperationScope.on_operation "
        "(schema/extensions.py) resets its ContextVar token in a Context that did not make it; "
        "asyncio logs 'Task exception was never retrieved' (timing-dependent over a socket, "
        "so reproduced in-process by test_known_bug_loaders_reset_elsewhere)",
        None,
        lambda f: "was created in a different Context" in f.log and "current_loaders" in f.log,
    ),
)

# Still allowed in the run (printed): not ours to fix.
KNOWN_BUGS: tuple[KnownBug, ...] = (
    KnownBug(
        "strawberry-ws-complete-race",
        "graphql-transport-ws: a client completing a stream the moment it ends makes "
        "strawberry 0.341.2's run_operation de-register the already removed id again: "
        "KeyError in forget_id, logged by strawberry.ws.task (a race in the library; no test "
        "can trigger it reliably)",
        None,
        lambda f: "KeyError" in f.log and "in forget_id" in f.log,
    ),
)


# --- sending -------------------------------------------------------------------------------


def authorizations(owner: str, other: str) -> dict[str, str | None]:
    """Authorization headers of the callers in `fuzz_support.CALLERS`."""
    _header, payload, _signature = owner.split(".")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return {
        "owner": f"Bearer {owner}",
        "other": f"Bearer {other}",
        "anonymous": None,
        "forged": f"Bearer {unsigned}.{payload}.",
        "garbage": "Bearer not-a-jwt",
        "basic": "Basic dXNlcjpwYXNz",
    }


async def send(
    http: httpx.AsyncClient, url: str, operation: Operation, auth: str | None
) -> httpx.Response:
    headers = {"accept": "application/json"}
    if operation.content_type:
        headers["content-type"] = operation.content_type
    if auth is not None:
        headers["authorization"] = auth
    return await http.request(
        operation.method,
        url,
        content=operation.content() or None,
        params=operation.params,
        headers=headers,
    )


async def run_http(
    url: str,
    operations: Sequence[Operation],
    auth: dict[str, str | None],
    oracle: Oracle,
    slow: float = SLOW_SECONDS,
) -> None:
    """One at a time, so what the server logs belongs to the operation in flight."""
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        for operation in operations:
            since = oracle.started(operation, operation.caller)
            started = time.monotonic()
            try:
                response = await send(http, url, operation, auth[operation.caller])
            except httpx.TimeoutException:
                problem = f"no answer within {HTTP_TIMEOUT} s"
                oracle.add(operation, problem, oracle.tap.records[since:])
                continue
            elapsed = time.monotonic() - started
            oracle.timed(elapsed, operation)
            if elapsed > slow:
                problem = f"slow: answered in {elapsed:.1f} s"
                oracle.add(operation, problem, oracle.tap.records[since:])
            oracle.judge_http(operation, response, since)


async def seed(client: GraphQLClient, token: str) -> list[str]:
    """Ids of the owner's objects (and the owner's own), for operations to name."""
    found: list[str] = []
    for document in SEEDS:
        body = (await client.raw(document, token=token)).json()
        ids = _ids_in(body.get("data"))
        if body.get("errors") or not ids:
            print(f"seed skipped ({body.get('errors')}): {document}")
        found += ids
    return found


def _ids_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["id"]] if isinstance(value.get("id"), str) else []
        return own + [found for item in value.values() for found in _ids_in(item)]
    if isinstance(value, list):
        return [found for item in value for found in _ids_in(item)]
    return []


# --- subscriptions -------------------------------------------------------------------------


async def follow(sock: Socket, op_id: str, operation: Operation, oracle: Oracle) -> str:
    """Read `op_id`'s messages to complete or error, or cancel it after `cancel_after`
    events; returns how the stream ended."""
    events = 0
    while True:
        raw = await sock.ws.recv()
        if TRACEBACK.search(str(raw)):
            oracle.add(operation, f"traceback text in a message: {str(raw)[:300]!r}")
        message = json.loads(raw)
        if message.get("id") != op_id:
            continue  # keep-alives, and the tails of streams cancelled before
        kind = message.get("type")
        if kind in ("next", "data"):
            oracle.judge_errors(operation, message["payload"].get("errors") or [])
            events += 1
            if events == operation.cancel_after:
                await sock.send({"id": op_id, "type": _stop(sock.protocol)})
                return f"cancelled after {events} events"
        elif kind == "error":
            oracle.judge_errors(operation, message.get("payload"))
            return "error"
        elif kind == "complete":
            return "complete" if events else "complete without events"
        else:
            oracle.add(operation, f"unexpected message: {message}")
            return "unexpected message"


def _stop(protocol: str) -> str:
    return "complete" if protocol == "graphql-transport-ws" else "stop"


async def stream(sock: Socket, operation: Operation, oracle: Oracle) -> bool:
    """Run one subscription within SUBSCRIPTION_TIMEOUT; False if the server closed the socket."""
    since = oracle.started(operation, f"{operation.caller} over {sock.protocol}")
    op_id = await sock.subscribe(operation.query or "")
    try:
        async with asyncio.timeout(SUBSCRIPTION_TIMEOUT):
            oracle.statuses[await follow(sock, op_id, operation, oracle)] += 1
    except TimeoutError:
        problem = f"no end within {SUBSCRIPTION_TIMEOUT} s"
        oracle.add(operation, problem, oracle.tap.records[since:])
        await sock.send({"id": op_id, "type": _stop(sock.protocol)})
    except websockets.ConnectionClosed as closed:
        code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
        problem = f"the server closed the socket: {code} {reason}"
        oracle.add(operation, problem, oracle.tap.records[since:])
        return False
    return True


async def run_subscriber(
    ws_url: str, auth: str | None, protocol: str, operations: Sequence[Operation], oracle: Oracle
) -> None:
    """One socket for `operations`, one stream at a time; reopened if the server closes it,
    and still answering a ping at the end."""
    pending = list(operations)
    payload = {"Authorization": auth} if auth else {}
    while pending:
        async with open_socket(ws_url, protocol=protocol, payload=payload) as sock:
            while pending:
                if not await stream(sock, pending.pop(0), oracle):
                    break
            else:
                async with asyncio.timeout(SUBSCRIPTION_TIMEOUT):
                    await (await sock.ws.ping())


# --- the tests -----------------------------------------------------------------------------


def _assert_clean(oracle: Oracle, title: str, started: float) -> None:
    oracle.audit_log()
    unexplained = oracle.explain()
    print(oracle.summary(title, started))
    assert not unexplained, f"{len(unexplained)} findings:\n{grouped(unexplained)}"


async def test_fuzz_over_http(settings: Settings) -> None:
    started = time.monotonic()
    sdl = build_schema().as_str()
    schema = graphql.build_schema(sdl)
    assert not fuzz.check_scalars(schema), "add strategies to fuzz_support.SCALAR_VALUES"
    async with serving(settings) as (server, client, owner), LogTap().attached() as tap:
        auth = authorizations(owner, await client.register())
        ids = await seed(client, owner)
        queries = fuzz.query_documents(sdl, schema, ids)
        strategies = {
            "queries": fuzz.operations(queries, "queries"),
            "mutations": fuzz.operations(fuzz.mutation_documents(sdl, schema, ids), "mutations"),
            "negative": fuzz.operations(fuzz.negative_documents(sdl, ids), "negative"),
            "variables": fuzz.variable_operations(schema, ids),
            "documents": fuzz.operations(
                fuzz.broken_documents(schema, queries) | fuzz.subscription_documents(schema, ids),
                "documents",
            ),
            "bodies": fuzz.raw_bodies(queries),
        }
        operations = [
            operation
            for category, strategy in strategies.items()
            for operation in fuzz.spread(
                fuzz.draw(strategy, HTTP_COUNTS[category]), caller=fuzz.CALLERS
            )
        ]
        print(f"generated {len(operations)} operations in {time.monotonic() - started:.1f} s")
        oracle = Oracle(tap)
        await run_http(server.url + "/graphql", operations, auth, oracle)
    _assert_clean(oracle, "fuzz over HTTP", started)
    assert sum(oracle.sent.values()) >= MIN_HTTP_OPERATIONS


async def test_fuzz_subscriptions(settings: Settings) -> None:
    started = time.monotonic()
    schema = graphql.build_schema(build_schema().as_str())
    async with serving(settings) as (server, client, owner), LogTap().attached() as tap:
        auth = authorizations(owner, await client.register())
        ids = await seed(client, owner)
        operations = fuzz.spread(
            fuzz.draw(fuzz.subscriptions(schema, ids), SUBSCRIPTION_COUNT),
            caller=fuzz.SOCKET_CALLERS,
            protocol=fuzz.PROTOCOLS,
            cancel_after=fuzz.CANCEL_AFTER,
        )
        oracle = Oracle(tap)
        groups: dict[tuple[str, str], list[Operation]] = collections.defaultdict(list)
        for operation in operations:
            groups[operation.caller, operation.protocol].append(operation)
        async with running_worker(server):
            await asyncio.gather(
                *(
                    run_subscriber(server.ws_url, auth[caller], protocol, group, oracle)
                    for (caller, protocol), group in groups.items()
                )
            )
    _assert_clean(oracle, "fuzz over websockets", started)
    assert sum(oracle.sent.values()) >= MIN_SUBSCRIPTIONS


@pytest.mark.parametrize(
    "bug",
    [pytest.param(bug, id=bug.name) for bug in FIXED_BUGS if bug.reproduction is not None],
)
async def test_found_bug_stays_fixed(settings: Settings, bug: KnownBug) -> None:
    assert bug.reproduction is not None
    async with serving(settings) as (server, _client, owner), LogTap().attached() as tap:
        oracle = Oracle(tap)
        auth = {"owner": f"Bearer {owner}"}
        await run_http(server.url + "/graphql", [bug.reproduction], auth, oracle, slow=1.0)
    oracle.audit_log()
    assert not oracle.findings, "\n".join(finding.report() for finding in oracle.findings)


async def test_loaders_reset_elsewhere_stays_fixed() -> None:
    # As the legacy graphql-ws handler does on `stop`: the stream ran in one task (here
    # to its first result, an error), another task closes it.
    results = await build_schema().subscribe("subscription { __typename }")
    await anext(results)
    await asyncio.create_task(results.aclose())
