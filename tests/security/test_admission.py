"""Admission under the daily token quota stores the same row on Postgres (one call of the
`ck_admit_creation` function, migrations/0011) as Tortoise's own insert, refuses what does not
fit without storing anything, and counts the day as the quota says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from resolvers.access.limits import _row_json, store_admitted
from resolvers.core import db
from resolvers.core.errors import RateLimited
from resolvers.core.models import Creation, CreationStatus, User

DAY = 1_000
# Columns a run sets on its own (ids and clocks differ between the two rows compared).
_OWN = {"id", "created_at", "updated_at"}


@pytest.fixture
async def user(pg_url: str) -> AsyncIterator[User]:
    await db.open_db(pg_url)
    try:
        user = await User.create(
            id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@e.com", password_hash="x"
        )
        yield user
    finally:
        await db.close_db()


def _creation(user: User, reserved: int, **values: Any) -> Creation:
    return Creation(
        id=uuid.uuid4(),
        owner_id=user.id,
        tool="write",
        input={"prompt": 'Ünïcode "quotes" \\ and\nlines', "nested": {"list": [1, 2.5, None]}},
        status=CreationStatus.RUNNING,
        model="dev",
        model_name="placeholder",
        variant=None,
        cache_key="k" * 64,
        reserved_tokens=reserved,
        masked=[{"field": "prompt", "kind": "EMAIL", "placeholder": "[EMAIL_1]", "count": 1}],
        **values,
    )


async def _row(creation_id: uuid.UUID) -> dict[str, Any]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT * FROM creations WHERE id = $1", [creation_id]
    )
    return dict(rows[0])


async def test_an_admitted_row_is_the_row_tortoise_would_store(user: User) -> None:
    # given one creation stored by admission and its twin stored by Tortoise's insert
    admitted, saved = _creation(user, 100), _creation(user, 100)
    await store_admitted(admitted, per_day=DAY)
    await saved.save(force_create=True)
    # then every column holds the same value, JSON, NULLs and defaults included
    mine, theirs = await _row(admitted.id), await _row(saved.id)
    assert {k: v for k, v in mine.items() if k not in _OWN} == {
        k: v for k, v in theirs.items() if k not in _OWN
    }
    # and the clocks a save sets were set on the object and stored as they are
    assert admitted.created_at is not None and mine["created_at"] == admitted.created_at
    assert abs(mine["created_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    # and the object is known as stored: Tortoise updates it, never inserts it again
    admitted.status = CreationStatus.COMPLETED
    await admitted.save(update_fields=["status"])
    assert (await _row(admitted.id))["status"] == "COMPLETED"


async def test_what_does_not_fit_is_refused_and_not_stored(user: User) -> None:
    # given 600 of the day's 1,000 tokens held by a running creation, and 100 used of a
    # finished one that had reserved 900 (a finished creation counts what it used)
    await store_admitted(_creation(user, 600), per_day=DAY)
    finished = _creation(user, 300)
    await store_admitted(finished, per_day=DAY)
    await Creation.filter(id=finished.id).update(
        status=CreationStatus.COMPLETED, completion_tokens=100, reserved_tokens=900
    )
    # when a creation reserving 301 tokens asks: 600 + 100 + 301 > 1,000
    over = _creation(user, 301)
    with pytest.raises(RateLimited) as refused:
        await store_admitted(over, per_day=DAY)
    # then it is refused with the tokens left and the wait until midnight UTC, and not stored
    assert "300 of today's 1000 are left" in refused.value.message
    assert 0 < refused.value.retry_after <= 86_400
    assert not await Creation.filter(id=over.id).exists()
    # and one reserving exactly what is left is admitted
    fits = _creation(user, 300)
    await store_admitted(fits, per_day=DAY)
    assert await Creation.filter(id=fits.id).exists()


async def test_yesterdays_creations_do_not_count(user: User) -> None:
    # given a creation of yesterday that held the whole quota
    old = _creation(user, DAY)
    await store_admitted(old, per_day=DAY)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await Creation.filter(id=old.id).update(created_at=yesterday)
    # then today's whole quota is free
    today = _creation(user, DAY)
    await store_admitted(today, per_day=DAY)
    assert await Creation.filter(id=today.id).exists()


async def test_an_unknown_owner_stores_nothing(user: User) -> None:
    # given a creation whose owner does not exist (deleted meanwhile)
    ghost = _creation(user, 10)
    ghost.owner_id = str(uuid.uuid4())
    # then admission fails on the foreign key and stores nothing
    with pytest.raises(IntegrityError):
        await store_admitted(ghost, per_day=DAY)
    assert not await Creation.filter(id=ghost.id).exists()


async def test_only_the_admissions_transaction_skips_the_wal_flush(user: User) -> None:
    # given a pooled connection, inside a transaction of its own
    creation = _creation(user, 10)
    async with in_transaction() as connection:
        before = await connection.execute_query_dict("SHOW synchronous_commit")
        await connection.execute_query(
            "SELECT ck_admit_creation($1::jsonb, $2, $3)",
            [_row_json(creation), datetime.now(UTC) - timedelta(days=1), DAY],
        )
        # then the admission commits without waiting for the flush
        during = await connection.execute_query_dict("SHOW synchronous_commit")
    assert before[0]["synchronous_commit"] == "on"
    assert during[0]["synchronous_commit"] == "off"
    # and the setting ends with that transaction: the next one on the pool flushes again
    after = await connections.get("default").execute_query_dict("SHOW synchronous_commit")
    assert after[0]["synchronous_commit"] == "on"
    assert await Creation.filter(id=creation.id).exists()
