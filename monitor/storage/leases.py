"""Account leases on PostgreSQL: which of several daemons sharing one database polls an account.

Only PostgreSQL's own mechanisms, no consensus of our own: a lease is a row of `account_lease`
with an expiry set from the database's clock (`now()`, so daemons on machines with skewed clocks
agree). The holder renews it every `LeaseTerms.renew_every`; another daemon takes it with one
`UPDATE ... WHERE expires_at <= now()` over rows locked `FOR UPDATE SKIP LOCKED`, so two daemons
racing for an expired lease never both win. Each daemon also keeps a heartbeat row in
`monitor_daemon`: the number of live daemons gives each its fair share of the accounts, and an
outbox row claimed by a daemon whose heartbeat expired may be claimed by another. The heartbeat
is renewed in its own transaction (`beat`, also by `monitor.wiring` from start until the outbox
sender stopped), never held back by lease renewals waiting for poll cycles; a clean shutdown hands
the leases back first (`leave`) and the outbox claims and heartbeat last (`depart`).

A daemon killed with -9 stops renewing; after `ttl` its leases are free and the next round of a
survivor (at most `renew_every` later) takes them: the account is polled again within
`LeaseTerms.takeover`. The poll cycle's transaction holds the lease row `FOR SHARE`
(`SqlStore.lease_holder`), so a daemon that lost its lease while paused can never store a cycle
or queue an alert for an account another daemon has taken.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.errors import DatabaseInUse
from monitor.storage.engine import storage_errors
from monitor.storage.models import Account, AccountLease, MonitorDaemon, Outbox


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """`takeover`: the longest an account goes unpolled after its daemon died ([database]
    takeover). A lease lasts half of it and is renewed every sixth: two renewals may fail (a
    slow database, a loaded machine) before a live daemon loses its accounts, and a survivor
    notices an expired lease at most one renewal period after it expired; the rest is left for
    starting the accounts it took. An outbox row claimed by a daemon is taken by another only
    a further lease length after that daemon's heartbeat expired (`claim_grace`): a daemon
    whose heartbeat merely lapsed for a moment may be sending it right now."""

    takeover: timedelta = timedelta(seconds=30)

    @property
    def ttl(self) -> timedelta:
        """How long a lease (and a heartbeat) stands without renewal."""
        return self.takeover / 2

    @property
    def renew_every(self) -> timedelta:
        """How often a daemon renews its leases and looks for free ones."""
        return self.takeover / 6


@dataclass(frozen=True, slots=True)
class LeaseRound:
    """What one round left this daemon with: the accounts it holds, those it holds beyond its
    fair share (to hand back once it stopped polling them), and how many daemons are alive."""

    held: frozenset[str]
    excess: tuple[str, ...]
    live_daemons: int
    share: int


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who polls an account and since when, for `portfolio-monitor status`."""

    account: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime


def fair_share(accounts: int, live_daemons: int) -> int:
    """How many accounts one daemon may hold: an even split, rounded up (the shares of all live
    daemons then cover every account, so none is left for lack of room)."""
    return math.ceil(accounts / max(1, live_daemons))


class LeaseBoard:
    """One daemon's view of the lease tables (PostgreSQL only)."""

    def __init__(self, engine: AsyncEngine, name: str, terms: LeaseTerms) -> None:
        self._engine = engine
        self.name = name
        self.terms = terms

    def _expiry(self) -> ColumnElement[datetime]:
        return func.now() + literal(self.terms.ttl)

    async def join(self, host: str, pid: int) -> None:
        """Record this daemon's heartbeat. Raises `DatabaseInUse` when a live daemon with the
        same name keeps renewing its own (two daemons with one name would both think they held
        its accounts); a heartbeat left by a killed daemon of that name is waited out."""
        seen: datetime | None = None
        while True:
            async with self._engine.connect() as conn:
                with storage_errors("reading the daemons on this database"):
                    row = (
                        await conn.execute(
                            select(
                                MonitorDaemon.host,
                                MonitorDaemon.pid,
                                MonitorDaemon.renewed_at,
                                MonitorDaemon.expires_at > func.now(),
                            ).where(MonitorDaemon.name == self.name)
                        )
                    ).first()
            if row is None or not row[3] or (row[0], row[1]) == (host, pid):
                break
            if seen is not None and row[2] != seen:
                holder = f"pid {row[1]} on {row[0]}"
                raise DatabaseInUse(
                    f"another portfolio-monitor daemon named {self.name!r} ({holder}) is running "
                    "on this database; give each daemon its own [database] daemon_name",
                    holder=holder,
                )
            seen = row[2]
            await asyncio.sleep(self.terms.renew_every.total_seconds())
        async with self._transaction("recording this daemon's heartbeat") as conn:
            await conn.execute(self._heartbeat(host, pid))

    def _heartbeat(self, host: str, pid: int) -> Any:
        """An upsert of this daemon's heartbeat row."""
        values = {
            "name": self.name,
            "host": host,
            "pid": pid,
            "started_at": func.now(),
            "renewed_at": func.now(),
            "expires_at": self._expiry(),
        }
        statement = pg_insert(MonitorDaemon).values(**values)
        return statement.on_conflict_do_update(
            index_elements=[MonitorDaemon.name],
            set_={k: statement.excluded[k] for k in values if k != "name"},
        )

    async def beat(self) -> None:
        """Renew this daemon's heartbeat alone, in its own transaction: while it stands, the
        outbox rows this daemon claimed are its own (it may be sending them right now)."""
        async with self._transaction("renewing the daemon heartbeat") as conn:
            renewed = await conn.execute(
                update(MonitorDaemon)
                .where(MonitorDaemon.name == self.name)
                .values(renewed_at=func.now(), expires_at=self._expiry())
                .returning(MonitorDaemon.name)
            )
            if renewed.first() is None:
                # Our row was removed (an operator, a restored database): write it again; the
                # leases still naming us are ours, as no other live daemon has our name.
                await conn.execute(self._heartbeat(socket.gethostname(), os.getpid()))

    async def round(self, accounts: Sequence[str]) -> LeaseRound:
        """Renew the heartbeat, then every lease this daemon still holds among `accounts`, and
        take free or expired ones up to its fair share (in a second transaction)."""
        wanted = sorted(set(accounts))
        # The heartbeat commits on its own first: renewing the leases below waits for the poll
        # cycles holding lease rows FOR SHARE, and a heartbeat must not be held back with them
        # (it says this daemon's outbox claims are still being sent).
        await self.beat()
        async with self._transaction("renewing account leases") as conn:
            now = func.now()
            rows = await conn.execute(
                select(Account.name, Account.id).where(Account.name.in_(wanted))
            )
            ids = {str(name): int(account_id) for name, account_id in rows}
            held = set(
                (
                    await conn.execute(
                        update(AccountLease)
                        .where(
                            AccountLease.holder == self.name,
                            AccountLease.account_id.in_(list(ids.values())),
                        )
                        .values(renewed_at=now, expires_at=self._expiry())
                        .returning(AccountLease.account_id)
                    )
                ).scalars()
            )
            live = int(
                await conn.scalar(
                    select(func.count())
                    .select_from(MonitorDaemon)
                    .where(MonitorDaemon.expires_at > now)
                )
                or 1
            )
            share = fair_share(len(wanted), live)
            room = share - len(held)
            if room > 0:
                await self._add_missing(conn, ids)
                held |= await self._take_expired(conn, ids, room)
        names = {account_id: name for name, account_id in ids.items()}
        held_names = frozenset(names[i] for i in held)
        excess = tuple(sorted(held_names)[share:]) if len(held_names) > share else ()
        return LeaseRound(held_names, excess, live, share)

    async def _add_missing(self, conn: AsyncConnection, ids: dict[str, int]) -> None:
        """Give every account a lease row, held by no one and expired, so that taking one is
        always the UPDATE over rows locked SKIP LOCKED. In account order: daemons adding the
        same rows at once then wait for each other instead of deadlocking."""
        missing = (
            select(
                Account.id,
                literal(""),
                func.now(),
                func.now(),
                func.now() - literal(timedelta(days=1)),
            )
            .where(
                Account.id.in_(list(ids.values())),
                ~select(AccountLease.account_id)
                .where(AccountLease.account_id == Account.id)
                .exists(),
            )
            .order_by(Account.id)
        )
        await conn.execute(
            pg_insert(AccountLease)
            .from_select(
                ["account_id", "holder", "acquired_at", "renewed_at", "expires_at"], missing
            )
            .on_conflict_do_nothing(index_elements=[AccountLease.account_id])
        )

    async def _take_expired(
        self, conn: AsyncConnection, ids: dict[str, int], room: int
    ) -> set[int]:
        expired = (
            select(AccountLease.account_id)
            .where(
                AccountLease.account_id.in_(list(ids.values())),
                AccountLease.expires_at <= func.now(),
                AccountLease.holder != self.name,
            )
            # Longest expired first; among the never held, spread by a hash of the account and
            # daemon names so that daemons starting together try different rows first.
            .order_by(
                AccountLease.expires_at,
                func.md5(func.cast(AccountLease.account_id, String) + literal(self.name)),
            )
            .limit(room)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(AccountLease)
            .where(AccountLease.account_id.in_(expired.scalar_subquery()))
            .values(
                holder=self.name,
                acquired_at=func.now(),
                renewed_at=func.now(),
                expires_at=self._expiry(),
            )
            .returning(AccountLease.account_id)
        )
        return set((await conn.execute(statement)).scalars())

    async def release(self, accounts: Sequence[str]) -> None:
        """Hand back leases at once (this daemon stopped polling them): another daemon takes
        them at its next round instead of waiting for them to expire."""
        if not accounts:
            return
        names = list(accounts)
        async with self._transaction("releasing account leases") as conn:
            await conn.execute(
                delete(AccountLease).where(
                    AccountLease.holder == self.name,
                    AccountLease.account_id.in_(
                        select(Account.id).where(Account.name.in_(names)).scalar_subquery()
                    ),
                )
            )

    async def leave(self) -> None:
        """A clean shutdown, once polls stopped: every lease goes, so others take the accounts
        at once. The heartbeat stays until `depart()`: the outbox is still being flushed, and
        without it another daemon would take the rows this one is sending and send them too."""
        async with self._transaction("releasing this daemon's leases") as conn:
            await conn.execute(delete(AccountLease).where(AccountLease.holder == self.name))

    async def depart(self) -> None:
        """The last step of a clean shutdown, once this daemon's sender stopped: its undelivered
        outbox claims are handed back (others send them at once, not after the grace) and its
        heartbeat goes."""
        async with self._transaction("removing this daemon's heartbeat") as conn:
            await conn.execute(
                update(Outbox)
                .where(Outbox.claimed_by == self.name, Outbox.delivered_at.is_(None))
                .values(claimed_by=None)
            )
            await conn.execute(delete(AccountLease).where(AccountLease.holder == self.name))
            await conn.execute(delete(MonitorDaemon).where(MonitorDaemon.name == self.name))

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[AsyncConnection]:
        with storage_errors(action):
            async with self._engine.begin() as conn:
                yield conn


async def leases(engine: AsyncEngine) -> list[LeaseInfo]:
    """Every account lease with its holder, by account name ([] on SQLite: one daemon)."""
    if engine.dialect.name != "postgresql":
        return []
    with storage_errors("reading account leases"):
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    Account.name,
                    AccountLease.holder,
                    AccountLease.acquired_at,
                    AccountLease.renewed_at,
                    AccountLease.expires_at,
                )
                .join(Account, and_(Account.id == AccountLease.account_id))
                .where(AccountLease.holder != "")  # a row no daemon has held yet
                .order_by(Account.name)
            )
            return [LeaseInfo(*row) for row in rows]
