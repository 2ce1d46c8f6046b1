from __future__ import annotations

import asyncio

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.platforms.pacing import Pacer


async def run(pacer: Pacer, jobs: list[tuple[str, str]]) -> dict[str, int]:
    peak: dict[str, int] = {}
    active: dict[str, int] = {}
    release = asyncio.Event()

    async def job(platform: str, account: str) -> None:
        async with pacer.slot(platform, account):
            for key in (platform, f"{platform}/{account}"):
                active[key] = active.get(key, 0) + 1
                peak[key] = max(peak.get(key, 0), active[key])
            await release.wait()
            for key in (platform, f"{platform}/{account}"):
                active[key] -= 1

    tasks = [asyncio.create_task(job(p, a)) for p, a in jobs]
    for _ in range(20):
        await asyncio.sleep(0)  # yields (no timed wait): every job reaches its slot or blocks
    release.set()
    await asyncio.gather(*tasks)
    return peak


async def test_slots_bound_each_platform_and_each_account() -> None:
    pacer = Pacer(PlatformSettings.from_env({"SCHEDULER_LINKEDIN_CONCURRENCY": "2"}))
    jobs = [("linkedin", f"acct{i}") for i in range(5)] + [("telegram", "chat")] * 3 + [("x", "a")] * 5
    peak = await run(pacer, jobs)
    assert peak["linkedin"] == 2
    assert peak["telegram/chat"] == 1
    assert peak["x/a"] == 2
    assert pacer.accounts_tracked == 0  # idle accounts are forgotten
