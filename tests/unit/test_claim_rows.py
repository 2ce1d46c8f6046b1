"""db/rows.py on what the load and the claim return (migrations/007): the database's due
instant, exact to the microsecond, and every verdict sorted; nothing decodes a raw date."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from scheduler_daemon.db import rows

UTC = dt.timezone.utc
A, B, C, D, E = (uuid.UUID(int=n) for n in range(1, 6))


def record(**fields: Any) -> dict[str, Any]:
    base = {"asked_id": None, "asked_version": 0, "verdict": "due", "due_us": None, "problem": None, "id": None,
            "platform": "webhook", "connection_id": None, "campaign_id": None, "content": "hi", "media": [],
            "thread": None, "first_comment": None, "platform_options": None, "attempt_count": 1,
            "publish_state": {}, "user_id": None, "connections": []}
    return {**base, **fields}


def test_the_instant_is_exact_to_the_microsecond() -> None:
    due_us = 1_924_991_999_999_999  # 2030-12-31T23:59:59.999999Z: a float would round it
    assert rows.instant(due_us) == dt.datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_a_loaded_row_is_armed_or_carries_its_problem() -> None:
    armed = rows.loaded_row({"id": A, "schedule_version": 4, "due_us": 1_500_000, "problem": None})
    assert (armed.due, armed.version, armed.problem) == (1.5, 4, None)
    bad = rows.loaded_row({"id": A, "schedule_version": 4, "due_us": None, "problem": "unknown timezone 'X'"})
    assert bad.due is None and bad.problem == "unknown timezone 'X'"
    counter = rows.loaded_row({"id": A, "schedule_version": 2**63 - 1, "due_us": 1_500_000,
                               "problem": "schedule_version is at its maximum"})
    assert counter.due is None and counter.problem
    odd = rows.loaded_row({"id": A, "schedule_version": 1, "due_us": None, "problem": None})
    assert odd.due is None and odd.problem == "the due instant cannot be computed"


def test_the_claim_result_sorts_every_verdict() -> None:
    result = rows.claim_result([
        record(asked_id=A, asked_version=1, verdict="due", due_us=2_000_000, id=A),
        record(asked_id=B, asked_version=1, verdict="due", due_us=2_000_000),  # another daemon won it
        record(asked_id=C, asked_version=2, verdict="early", due_us=9_000_000),
        record(asked_id=D, asked_version=7, verdict="moved", due_us=3_000_000),
        record(asked_id=E, asked_version=1, verdict="unschedulable", problem="scheduled_date is empty"),
        record(asked_id=B, asked_version=3, verdict="missed", due_us=1_000_000),
        record(asked_id=D, asked_version=8, verdict="busy"),  # another replica's claim held the row
    ], 100_000)
    assert [p.id for p in result.won] == [A] and result.due == {A: 2.0} and len(result) == 1
    assert result.won[0].post is not None and result.won[0].post.scheduled_at == rows.instant(2_000_000)
    assert [(v.id, v.version, v.due) for v in result.rearm] == [(C, 2, 9.0), (D, 7, 3.0)]
    assert [(v.id, v.due) for v in result.missed] == [(B, 1.0)]
    assert [(v.id, v.problem) for v in result.unschedulable] == [(E, "scheduled_date is empty")]
    assert [(v.id, v.version, v.due) for v in result.busy] == [(D, 8, None)]
