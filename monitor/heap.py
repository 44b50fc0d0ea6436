"""What the daemon builds to start is taken out of the cyclic garbage collector's sight.

Every account's client, ccxt's market lists and venue descriptions, the accounts' first states:
at 1,000 accounts that is hundreds of MiB of objects that live as long as the daemon. Python's
full collection walks every one of them whenever the objects that survived younger collections
grow by a quarter, and with live marks they do, every few seconds: in a 1,000-account live soak
each full collection took 1.2 s and all of them 28 % of the daemon's CPU. `gc.freeze()` moves
what exists into a permanent generation that collections skip. A frozen object is still freed as
soon as nothing refers to it; only a reference cycle among frozen objects stays until the process
ends (an account's old client after a reload, once per reload).

The youngest generation is also collected less often (every `YOUNG_THRESHOLD` net allocations
of container objects instead of 700). A live recompute's snapshot lives until the account's next
one, a second or two: with the default, that outlived two young collections, so every snapshot
reached the oldest generation and its growth set off a full collection every 2.6 s (0.5 s each,
26 % of the CPU with the heap frozen). Collected every ~50,000 allocations, it dies young.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Collection

from monitor.service import CycleReport

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 50_000


class StartupHeapFreeze:
    """A cycle observer: once every watched account has finished its first cycle (so its
    client and its venue's market list exist), collect once, freeze the heap and raise the
    youngest generation's threshold."""

    def __init__(self, watched: Callable[[], Collection[str]]) -> None:
        self._watched = watched
        self._seen: set[str] = set()
        self.frozen = False

    def cycle_finished(self, report: CycleReport) -> None:
        """Count the account's first cycle; the last one to come freezes."""
        if self.frozen or report.by_clock or report.account in self._seen:
            return
        self._seen.add(report.account)
        watched = self._watched()
        if len(self._seen) < len(watched) or not self._seen.issuperset(watched):
            return
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
        self.frozen = True
        self._seen.clear()
        log.info(
            "every account polled once: %d objects frozen out of the garbage collector's "
            "walks (%.2fs)",
            gc.get_freeze_count(),
            time.perf_counter() - started,
        )
