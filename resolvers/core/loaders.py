"""DataLoaders, created fresh for every GraphQL operation (never per websocket)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from strawberry.dataloader import DataLoader

from resolvers.core.models import Creation, User


async def _users(ids: Sequence[str]) -> list[User | None]:
    rows = {str(user.id): user for user in await User.filter(id__in=list(ids))}
    return [rows.get(key) for key in ids]


async def _creations(ids: Sequence[str]) -> list[Creation | None]:
    rows = {str(row.id): row for row in await Creation.filter(id__in=list(ids))}
    return [rows.get(key) for key in ids]


class Loaders:
    """The loaders of one operation, each made on first use: most operations need none, and
    every operation makes a `Loaders`. (No `DataLoader[K, V](...)` here: subscripting a
    generic at run time costs more than the loader.)"""

    @cached_property
    def user_by_id(self) -> DataLoader[str, User | None]:
        return DataLoader(load_fn=_users, max_batch_size=500)

    @cached_property
    def creation_by_id(self) -> DataLoader[str, Creation | None]:
        return DataLoader(load_fn=_creations, max_batch_size=500)
