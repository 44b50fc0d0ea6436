"""Silences: an account's notifications suppressed until a given time (alert state still kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from monitor.domain.errors import InvalidInput
from monitor.storage.database import Database
from monitor.storage.models import Account, Silence


@dataclass(frozen=True, slots=True)
class SilenceInfo:
    """An active or past silence of an account's notifications."""

    id: int
    account: str
    until: datetime
    created_at: datetime
    reason: str


class Silences:
    """The silences stored in the database."""

    def __init__(self, db: Database):
        self._db = db

    async def add(
        self, account: str, *, until: datetime, reason: str, now: datetime
    ) -> SilenceInfo:
        """Silence an account's notifications until `until`."""

        def work(conn: Connection) -> int:
            account_id = conn.scalar(select(Account.id).where(Account.name == account))
            if account_id is None:
                raise InvalidInput("account", f"unknown account {account!r}")
            silence_id: int | None = conn.scalar(
                insert(Silence)
                .values(account_id=account_id, until=until, created_at=now, reason=reason)
                .returning(Silence.id)
            )
            assert silence_id is not None
            return silence_id

        created = await self._db.write(f"silencing {account!r}", work)
        return SilenceInfo(created, account, until, now, reason)

    async def remove(self, silence_id: int) -> bool:
        """Delete a silence; False if there was none with that id."""

        def work(conn: Connection) -> bool:
            return bool(conn.execute(delete(Silence).where(Silence.id == silence_id)).rowcount)

        return await self._db.write("removing a silence", work)

    async def silenced_until(self, account: str, now: datetime) -> datetime | None:
        """When the account's last active silence ends (None: notifications are not silenced)."""
        async with self._db.reading(f"reading silences of {account!r}") as conn:
            until: datetime | None = await conn.scalar(
                select(func.max(Silence.until))
                .join(Account, Account.id == Silence.account_id)
                .where(Account.name == account, Silence.until > now)
            )
            return until

    async def ends(self, now: datetime) -> dict[str, datetime]:
        """Every silenced account's last active silence end, in one read for all accounts."""
        async with self._db.reading("reading silences") as conn:
            rows = await conn.execute(
                select(Account.name, func.max(Silence.until))
                .join(Account, Account.id == Silence.account_id)
                .where(Silence.until > now)
                .group_by(Account.name)
            )
            return dict(rows.all())

    async def active(self, now: datetime, account: str | None = None) -> list[SilenceInfo]:
        """Silences still in force at `now`, for one account or all."""
        async with self._db.reading("reading silences") as conn:
            query = (
                select(Silence.id, Account.name, Silence.until, Silence.created_at, Silence.reason)
                .join(Account, Account.id == Silence.account_id)
                .where(Silence.until > now)
                .order_by(Silence.until)
            )
            if account is not None:
                query = query.where(Account.name == account)
            rows = await conn.execute(query)
            return [SilenceInfo(*row) for row in rows]
