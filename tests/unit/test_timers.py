"""The pure schedule: arm, re-arm, cancel, pop in due order, versions, compaction."""

from __future__ import annotations

import random
import uuid

from scheduler_daemon.engine.timers import Armed, Timers

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def test_pops_due_posts_in_order_and_keeps_the_rest() -> None:
    s = Timers()
    s.arm(A, 30.0, 1)
    s.arm(B, 10.0, 1)
    s.arm(C, 20.0, 1)
    assert s.next_due() == 10.0
    assert s.pop_due(25.0) == [Armed(B, 10.0, 1), Armed(C, 20.0, 1)]
    assert len(s) == 1 and A in s and s.next_due() == 30.0
    assert s.pop_due(29.9) == []


def test_rearm_replaces_and_cancel_removes() -> None:
    s = Timers()
    s.arm(A, 10.0, 1)
    s.arm(A, 50.0, 2)
    assert s.get(A) == Armed(A, 50.0, 2)
    assert s.pop_due(20.0) == []
    assert s.cancel(A) is True and s.cancel(A) is False
    assert s.next_due() is None and s.pop_due(100.0) == []


def test_an_older_version_never_replaces_a_newer_one() -> None:
    s = Timers()
    s.arm(A, 50.0, 5)
    assert s.arm(A, 10.0, 4) is False
    assert s.get(A) == Armed(A, 50.0, 5)


def test_arm_says_when_the_earliest_deadline_moved() -> None:
    s = Timers()
    assert s.arm(A, 50.0, 1) is True
    assert s.arm(B, 60.0, 1) is False
    assert s.arm(C, 40.0, 1) is True
    assert s.arm(C, 40.0, 1) is False  # same entry: nothing changed


def test_pop_limit_and_iteration() -> None:
    s = Timers()
    for n in range(10):
        s.arm(uuid.UUID(int=n), float(n), 0)
    assert [a.due for a in s.pop_due(100.0, limit=3)] == [0.0, 1.0, 2.0]
    assert sorted(a.due for a in s) == [float(n) for n in range(3, 10)]


def test_heap_is_compacted_when_stale_entries_pile_up() -> None:
    s = Timers()
    for n in range(3000):
        s.arm(A, float(n), n)  # 3000 re-arms of one post
    assert len(s) == 1
    assert s.heap_size < 2100
    assert s.pop_due(1e9) == [Armed(A, 2999.0, 2999)]


def test_due_by_lists_the_live_posts_of_a_range_and_leaves_them_armed() -> None:
    rng = random.Random(7)
    timers, dues = Timers(), {}
    for _ in range(3000):
        post_id = uuid.uuid4()
        dues[post_id] = rng.uniform(0, 1000)
        timers.arm(post_id, dues[post_id], 1)
    for post_id in list(dues)[:500]:  # re-armed later: the old items are stale
        dues[post_id] += 5
        timers.arm(post_id, dues[post_id], 2)
    for post_id in list(dues)[500:800]:
        timers.cancel(post_id)
        del dues[post_id]
    found = timers.due_by(600, after=200)
    assert sorted(a.id for a in found) == sorted(i for i, d in dues.items() if 200 < d <= 600)
    assert all(a.due == dues[a.id] for a in found) and len(timers) == len(dues)
    assert timers.due_by(-1) == [] and Timers().due_by(1e9) == []


def test_nth_due_is_the_nth_earliest_live_deadline() -> None:
    timers = Timers()
    ids = [uuid.uuid4() for _ in range(50)]
    for n, post_id in enumerate(ids):
        timers.arm(post_id, 100.0 + (n * 7) % 50, 1)
    timers.arm(ids[0], 10.0, 2)  # re-armed: its old item is stale
    timers.cancel(ids[1])
    live = sorted(a.due for a in timers)
    assert [timers.nth_due(n) for n in (1, 2, 10, len(live))] == [live[0], live[1], live[9], live[-1]]
    assert timers.nth_due(len(live) + 1) is None and timers.nth_due(0) is None
    assert Timers().nth_due(1) is None
