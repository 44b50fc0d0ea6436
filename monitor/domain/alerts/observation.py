"""What the poll cycle tells the alert rules about one account in one cycle."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.domain.errors import MonitorError
from monitor.domain.immutable import immutable
from monitor.domain.model import Snapshot


@immutable
class Observation:
    """One cycle of one account as the alert rules see it.

    `snapshot` is None when this cycle's fetch failed; `fetch_error` then says why (an
    `ExchangeAuthError` raises the API-key alert; other errors only age the data). Rules that need
    a snapshot keep their state unchanged in such a cycle: missing data never resolves an alert.
    `last_success_at` is the time of the last successful poll before this one (None if there was
    none since the daemon started). `changed_tier_symbols` lists symbols whose bracket / risk-limit
    table the exchange changed since the previous fetch. `silenced_until` is the end of the
    account's latest active silence (None: not silenced). `venue` names the venue and address
    the account's requests go to (`binanceusdm@production`; None: unknown) and `venue_accounts`
    every watched account sharing it, sorted: a pause of that venue is one alert, carried by the
    first of them. `watching_since` is when the daemon started watching the account: before
    any successful poll the data has been missing since then, even when the rules are first
    evaluated later (a first fetch that hangs). `live_marks` says the snapshot is the last
    fetched state re-run at newer marks: the venue's own figures in it are as of that fetch.
    """

    account: str
    poll_interval: timedelta
    snapshot: Snapshot | None = None
    fetch_error: MonitorError | None = None
    last_success_at: datetime | None = None
    changed_tier_symbols: tuple[str, ...] = ()
    silenced_until: datetime | None = None
    venue: str | None = None
    venue_accounts: tuple[str, ...] = ()
    watching_since: datetime | None = None
    live_marks: bool = False

    def silenced(self, now: datetime) -> bool:
        """A silence is in force for this account at `now`."""
        return self.silenced_until is not None and now < self.silenced_until

    def last_data_at(self) -> datetime | None:
        """When the newest usable data of this account was taken."""
        times = [] if self.last_success_at is None else [self.last_success_at]
        if self.snapshot is not None:
            times.append(self.snapshot.taken_at)
        return max(times, default=None)
