"""The daemon raises its soft descriptor limit to what SCHEDULER_CONCURRENCY needs."""

from __future__ import annotations

import resource

from scheduler_daemon import fdlimit


def test_the_soft_limit_is_raised_to_what_the_concurrency_needs_when_the_hard_limit_allows() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = fdlimit.needed(2048, 20)
    assert want == 2048 + 20 + fdlimit.SPARE
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, soft), hard))  # a stingy shell
        got = fdlimit.ensure(2048, 20)
        expected = want if hard == resource.RLIM_INFINITY else min(want, hard)
        assert got == expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
