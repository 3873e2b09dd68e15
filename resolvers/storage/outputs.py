"""Where a creation's text is kept: in its row, or in object storage when it is large."""

from __future__ import annotations

import logging

from resolvers.core.errors import ServiceUnavailable
from resolvers.core.models import Creation
from resolvers.storage.objects import ObjectMissing, ObjectStore

log = logging.getLogger(__name__)
MAX_OUTPUT_BYTES = 64 * 1024 * 1024  # no output we make comes near; a guard on reads


class Outputs:
    """Keeps outputs over `inline_bytes` in the store; the row then holds their start."""

    def __init__(self, store: ObjectStore, *, inline_bytes: int) -> None:
        self.store = store
        self._inline_bytes = inline_bytes

    async def keep(self, creation_id: str, text: str) -> tuple[str, str | None]:
        """(what the row's `output` holds, the object key of the whole text or None)."""
        data = text.encode()
        if len(data) <= self._inline_bytes:
            return text, None
        key = f"outputs/{creation_id}.txt"
        try:
            await self.store.put(key, data, "text/plain; charset=utf-8")
        except Exception:  # the text must not be lost with the store: keep it in the row
            log.warning("creation %s: output kept in the row, storage failed", creation_id)
            return text, None
        return data[: self._inline_bytes].decode(errors="ignore"), key

    async def full(self, creation: Creation) -> str:
        """The whole output of a creation, wherever it is kept."""
        return await self.read(creation.output, creation.output_key)

    async def read(self, inline: str, key: str | None) -> str:
        """The whole output, from the row's `output` and `output_key`."""
        if key is None:
            return inline
        try:
            data = await self.store.get(key, limit=MAX_OUTPUT_BYTES)
        except ObjectMissing:
            raise ServiceUnavailable(f"the output kept as {key} is missing") from None
        return data.decode()
