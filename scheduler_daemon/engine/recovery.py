"""Orphan recovery: rows left in 'publishing' that no daemon is publishing any more.

* Ours that we are not publishing (the answer to a claim was lost: nothing was sent for
  them) are released: due again at once.
* Those of an instance that is gone (no session of it in ``pg_stat_activity``) for
  longer than ``SCHEDULER_RECOVERY_AFTER_SECONDS``: where the platform deduplicates a
  repeat they are published again, elsewhere they end as a draft saying the outcome is
  unknown (sql/daemon.sql, ``recover_orphans``).

``recover()`` runs at every sync (boot, reconnect, resync: the daemon's ``on_sync``). A
``Service``: while other instances still hold rows in 'publishing', ``run()`` checks
again every ``CHECK_SECONDS`` (``started`` is set once it runs).
"""

from __future__ import annotations

from collections.abc import Collection

import structlog

from ..callbacks import InFlight
from ..db.errors import DB_ERRORS
from ..db.repository import Repository
from ..service import Service

logger = structlog.get_logger("scheduler_daemon.recovery")

CHECK_SECONDS = 5.0


class Recovery(Service):
    name = "recovery"

    def __init__(
        self, repository: Repository, *, after_seconds: float, repeatable: Collection[str], in_flight: InFlight
    ) -> None:
        super().__init__()
        self.repository = repository
        self.after_seconds = after_seconds
        self.repeatable = sorted(repeatable)  # platforms that deduplicate a repeated publish
        self.in_flight = in_flight
        self.orphans_pending = False  # rows other instances hold in 'publishing': recheck them

    async def recover(self) -> None:
        """Resolve the rows left in 'publishing' (raises DB_ERRORS: the caller retries)."""
        released = await self.repository.release_own(list(self.in_flight()))
        if released:
            logger.warning("released rows whose claim answer was lost", posts=len(released))
        for orphan in await self.repository.recover_orphans(self.after_seconds, self.repeatable):
            log = logger.bind(post_id=str(orphan.id), platform=orphan.platform, instance=orphan.instance)
            if orphan.status == "scheduled":
                log.warning("republishing a post a stopped daemon left unfinished (the platform deduplicates)")
            else:
                log.error("a stopped daemon left this post unfinished: outcome unknown, set to draft")
        self.orphans_pending = await self.repository.count_orphans() > 0

    async def run(self) -> None:
        self.started.set()
        while not self.stopping:
            if self.orphans_pending:
                try:
                    await self.recover()
                except DB_ERRORS as exc:
                    logger.warning("recovery check failed; will retry", error=str(exc))
            await self._pause(CHECK_SECONDS)
