"""The user type."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from resolvers.core import models


@strawberry.enum(description="What an account may do.")
class Role(Enum):
    USER = strawberry.enum_value("USER", description="Works with its own objects.")
    ADMIN = strawberry.enum_value(
        "ADMIN", description="Also reads and manages every user's objects, and the audit log."
    )


@strawberry.type(description="An account.")
class User:
    id: strawberry.ID = strawberry.field(description="Stable user id (UUID).")
    email: str = strawberry.field(description="Login e-mail, lower-cased.")
    role: Role = strawberry.field(description="What the account may do.")
    created_at: datetime = strawberry.field(description="When the account was made (UTC).")

    @classmethod
    def from_model(cls, row: models.User) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            role=Role(row.role.value),
            created_at=row.created_at,
        )
