"""Which document an HTTP request runs: its text, an automatic persisted query (APQ) by
hash, or an entry of a trusted-documents manifest.

- **APQ** (Apollo's protocol): `extensions.persistedQuery = {version: 1, sha256Hash}`. A hash
  alone runs the document registered under it, or answers `PERSISTED_QUERY_NOT_FOUND` (the
  code Apollo's link reacts to by sending hash and text). Hash plus text registers the text
  once its SHA-256 is checked and it ran. Hashes live in a bounded in-process map, and in
  Redis (with a TTL) when the replicas share one.
- **Trusted documents** (`CK_PERSISTED_DOCUMENTS`): only the manifest's operations run, named
  by id (`documentId`, Relay's `doc_id`/`id`, or the APQ hash) or sent as their exact text.
  APQ registration is off then: it would let anyone add documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from resolvers.core import keys

MAX_REGISTERED_BYTES = 64 * 1024  # a longer document is run but never registered
LOCAL_ENTRIES = 2_000
LOCAL_BYTES = 16 * 1024 * 1024
_ID_FIELDS = ("documentId", "doc_id", "id")  # GraphQL-over-HTTP, Relay
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class DocumentRefused(Exception):
    """The request names no document this server will run."""

    status: int
    code: str
    message: str


class TrustedDocuments:
    """A persisted-operations manifest: the only documents that run."""

    def __init__(self, by_id: Mapping[str, str]) -> None:
        self._by_id = dict(by_id)
        self._texts = frozenset(self._by_id.values())

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        """Read an Apollo (`apollo-persisted-query-manifest`) or Relay (`{id: text}`)
        manifest; ValueError says what is wrong with it."""
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"CK_PERSISTED_DOCUMENTS: cannot read {path}: {exc}") from exc
        if (
            isinstance(manifest, dict)
            and manifest.get("format") == "apollo-persisted-query-manifest"
        ):
            operations = manifest.get("operations")
            if not isinstance(operations, list) or not all(
                isinstance(op, dict)
                and isinstance(op.get("id"), str)
                and isinstance(op.get("body"), str)
                for op in operations
            ):
                raise ValueError(f"CK_PERSISTED_DOCUMENTS: {path} has no list of {{id, body}}")
            return cls({op["id"]: op["body"] for op in operations})
        if isinstance(manifest, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
        ):
            return cls(manifest)
        raise ValueError(
            f"CK_PERSISTED_DOCUMENTS: {path} is neither an Apollo persisted-query manifest "
            "nor a Relay map of id to text"
        )

    def __len__(self) -> int:
        return len(self._by_id)

    def text(self, document_id: str) -> str | None:
        """The document listed under `document_id`."""
        return self._by_id.get(document_id)

    def allows(self, query: str) -> bool:
        """Whether this exact text is listed."""
        return query in self._texts


class _LocalStore:
    """Registered documents by hash, least recently used first out, bounded by count and
    bytes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    def get(self, digest: str) -> str | None:
        query = self._entries.get(digest)
        if query is not None:
            self._entries.move_to_end(digest)
        return query

    def put(self, digest: str, query: str) -> None:
        if digest in self._entries:
            self._entries.move_to_end(digest)
            return
        self._entries[digest] = query
        self._bytes += len(query)
        while len(self._entries) > LOCAL_ENTRIES or self._bytes > LOCAL_BYTES:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)


@dataclass(frozen=True)
class Document:
    """What a request runs, and the APQ hash to register its text under once it ran."""

    query: str | None
    register: str | None = None


class Documents:
    """Resolves a request's document: its text, an APQ hash, or a trusted document's id."""

    def __init__(self, *, trusted: TrustedDocuments | None, shared: bool, ttl_seconds: int) -> None:
        self.trusted = trusted
        self._shared = shared  # replicas share Redis: register there too
        self._ttl = ttl_seconds
        self._local = _LocalStore()

    async def document(self, data: Mapping[str, Any], redis: Redis) -> Document:
        """The document a request body or query string names (DocumentRefused if none)."""
        query = data.get("query")
        extensions = data.get("extensions") or {}
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        digest = _digest_of(persisted)
        if self.trusted is not None:
            return Document(self._trusted_query(query, digest, data))
        if isinstance(query, str):
            if digest is None:
                return Document(query)
            if hashlib.sha256(query.encode()).hexdigest() != digest:
                raise DocumentRefused(
                    400,
                    "PERSISTED_QUERY_HASH_MISMATCH",
                    "the persisted query's sha256Hash is not the SHA-256 of its query",
                )
            known = await self._get(digest, redis)
            return Document(query, register=None if known is not None else digest)
        if digest is None:
            return Document(None)
        known = await self._get(digest, redis)
        if known is None:
            raise DocumentRefused(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return Document(known)

    async def register(self, digest: str, query: str, redis: Redis) -> None:
        """Keep `query` under its hash (it was checked and it ran)."""
        if len(query) > MAX_REGISTERED_BYTES:
            return
        self._local.put(digest, query)
        if self._shared:
            await redis.set(keys.persisted_query(digest), query, ex=self._ttl)

    async def _get(self, digest: str, redis: Redis) -> str | None:
        query = self._local.get(digest)
        if query is None and self._shared:
            stored = await redis.get(keys.persisted_query(digest))
            if stored is not None:
                query = stored.decode() if isinstance(stored, bytes) else str(stored)
                self._local.put(digest, query)
        return query

    def _trusted_query(
        self, query: object, digest: str | None, data: Mapping[str, Any]
    ) -> str | None:
        assert self.trusted is not None
        if isinstance(query, str):
            if not self.trusted.allows(query):
                raise DocumentRefused(
                    403,
                    "QUERY_NOT_IN_SAFELIST",
                    "this server runs only its trusted documents; this one is not listed",
                )
            return query
        document_id = digest or next(
            (data[field] for field in _ID_FIELDS if isinstance(data.get(field), str)), None
        )
        if document_id is None:
            return None
        text = self.trusted.text(document_id)
        if text is None:
            raise DocumentRefused(
                404,
                "PERSISTED_QUERY_NOT_IN_LIST",
                f"no trusted document has the id {document_id[:80]!r}",
            )
        return text


def _digest_of(persisted: object) -> str | None:
    """The sha256Hash of an APQ extension, checked; None when there is none."""
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise DocumentRefused(
            400, "PERSISTED_QUERY_VERSION", "persistedQuery must be {version: 1, sha256Hash}"
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
        raise DocumentRefused(
            400, "PERSISTED_QUERY_HASH", "sha256Hash must be 64 hexadecimal characters"
        )
    return digest.lower()
