"""Named locks in the state database: one holder at a time, taken over only from a holder found stale.

A lock is a row, won by the INSERT that gets in first (a duplicate primary key loses), so it behaves the
same on SQLite and on PostgreSQL and needs neither advisory locks nor a shared filesystem: whoever shares
the state database shares its locks. The holder renews its row (``version`` goes up); whether a holder
is stale is the caller's judgement (a dead process, a lease not renewed), and taking a stale lock over is
an UPDATE conditioned on the row being exactly what the contender read, so of two contenders one wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from stratus.state.db import Base, Database, UtcDateTime
from stratus.state.models import utcnow

__all__ = ["Holder", "LockRow", "Locks"]


class LockRow(Base):
    """Who holds the lock ``name``, since when, and when it last said it was alive."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)  # +1 on every renewal: a takeover must see it unchanged
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class Holder:
    """The current holder of a lock, as read."""

    owner: str
    version: int
    acquired_at: datetime
    renewed_at: datetime


class Locks:
    """Take, renew and release named locks in one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def try_acquire(
        self, name: str, owner: str, stale: Callable[[Holder], bool]
    ) -> tuple[bool, Holder | None]:
        """Take ``name`` for ``owner`` without waiting.

        Returns (True, the stale holder taken over or None) on success, (False, the holder) otherwise.
        """
        now = utcnow()
        for _ in range(3):  # the row may come and go between our statements: look again
            try:
                with self.db.session() as session, session.begin():
                    session.add(LockRow(name=name, owner=owner, version=0, acquired_at=now, renewed_at=now))
                return True, None
            except IntegrityError:
                pass
            holder = self.holder(name)
            if holder is None:
                continue
            if not stale(holder):
                return False, holder
            with self.db.session() as session, session.begin():
                result = session.execute(
                    update(LockRow)
                    .where(
                        LockRow.name == name,
                        LockRow.owner == holder.owner,
                        LockRow.version == holder.version,
                    )
                    .values(owner=owner, version=holder.version + 1, acquired_at=now, renewed_at=now)
                )
            if getattr(result, "rowcount", 0) == 1:
                return True, holder
        current = self.holder(name)
        return current is None, current

    def holder(self, name: str) -> Holder | None:
        """Who holds ``name`` now, or None when nobody does."""
        with self.db.session() as session:
            row = session.get(LockRow, name)
            if row is None:
                return None
            return Holder(row.owner, row.version, row.acquired_at, row.renewed_at)

    def renew(self, name: str, owner: str) -> bool:
        """Say ``owner`` is alive; False when it no longer holds ``name`` (taken over as stale)."""
        with self.db.session() as session, session.begin():
            result = session.execute(
                update(LockRow)
                .where(LockRow.name == name, LockRow.owner == owner)
                .values(version=LockRow.version + 1, renewed_at=utcnow())
            )
        return bool(getattr(result, "rowcount", 0))

    def release(self, name: str, owner: str) -> None:
        """Give ``name`` up; a lock ``owner`` no longer holds is left to its new holder."""
        with self.db.session() as session, session.begin():
            session.execute(delete(LockRow).where(LockRow.name == name, LockRow.owner == owner))
