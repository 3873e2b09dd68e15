"""The user type."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers import models


@strawberry.type(description="An account.")
class User:
    id: strawberry.ID = strawberry.field(description="Stable user id (UUID).")
    email: str = strawberry.field(description="Login e-mail, lower-cased.")
    created_at: datetime = strawberry.field(description="When the account was made (UTC).")

    @classmethod
    def from_model(cls, row: models.User) -> User:
        return cls(id=strawberry.ID(str(row.id)), email=row.email, created_at=row.created_at)
