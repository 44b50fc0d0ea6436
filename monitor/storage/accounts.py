"""Accounts: the row every stored figure hangs off, and what the daemon reads of it at start.

The poll cycle creates an account's row with its first snapshot (`ensure_account`); the daemon
registers every configured account on start, so `status` knows it before its first poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.storage.database import Database
from monitor.storage.engine import dialect_insert
from monitor.storage.ids import IdCache
from monitor.storage.models import Account, AccountSnapshot, AlertState


class Accounts:
    """Stored accounts, their ids remembered in the id cache."""

    def __init__(self, db: Database, ids: IdCache):
        self._db = db
        self._ids = ids

    async def register(
        self, name: str, *, venue: str, asset: str, poll_interval: float | None, now: datetime
    ) -> None:
        """Create or update a configured account (its poll interval lets `status` judge staleness)."""

        def work(conn: Connection) -> int:
            account_id = ensure_account(conn, name, venue, asset, now)
            conn.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(venue=venue, asset=asset, poll_interval=poll_interval)
            )
            return account_id

        account_id = await self._db.write(f"registering account {name!r}", work)
        self._ids.remember_account(name, account_id)

    async def _known_account(self, conn: AsyncConnection, name: str) -> int | None:
        known = self._ids.account(name)
        if known is not None:
            return known
        found: int | None = await conn.scalar(select(Account.id).where(Account.name == name))
        return found

    async def last_snapshot_at(self, account: str) -> datetime | None:
        """When the account's newest stored snapshot was taken (None if it has none)."""
        async with self._db.reading(f"reading the last snapshot of {account!r}") as conn:
            account_id = await self._known_account(conn, account)
            if account_id is None:
                return None
            result: datetime | None = await conn.scalar(
                select(AccountSnapshot.taken_at)
                .where(AccountSnapshot.account_id == account_id)
                .order_by(AccountSnapshot.taken_at.desc())
                .limit(1)
            )
            return result

    async def alert_states(self, account: str) -> dict[str, dict[str, Any]]:
        """The persisted alert state per rule key ({} for a new account)."""
        async with self._db.reading(f"loading alert state of {account!r}") as conn:
            account_id = await self._known_account(conn, account)
            if account_id is None:
                return {}
            rows = await conn.execute(
                select(AlertState.rule_key, AlertState.state).where(
                    AlertState.account_id == account_id
                )
            )
            return {rule_key: dict(state) for rule_key, state in rows}


def ensure_account(conn: Connection, name: str, venue: str, asset: str, now: datetime) -> int:
    """The account's id, its row created if it has none yet (in the caller's transaction)."""
    found = conn.scalar(select(Account.id).where(Account.name == name))
    if found is None:
        # Several daemons on one PostgreSQL register the same accounts at the same moment: the
        # one that loses the race finds the winner's row.
        conn.execute(
            dialect_insert(conn)(Account)
            .values(name=name, venue=venue, asset=asset, poll_interval=None, created_at=now)
            .on_conflict_do_nothing(index_elements=[Account.name])
        )
        found = conn.scalar(select(Account.id).where(Account.name == name))
    assert found is not None
    return found
