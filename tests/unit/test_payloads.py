"""The trigger payloads, parsed; anything else is a clear MalformedNotification."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from scheduler_daemon.db.payloads import MalformedNotification, Op, parse

ID = "6f1b9f0e-1111-4111-8111-111111111111"


def payload(**fields: object) -> str:
    base = {"op": "I", "id": ID, "status": "scheduled", "date": "2026-05-01", "time": "09:30:00",
            "tz": "Europe/Paris", "retry_at": None, "version": 3}
    base.update(fields)
    return json.dumps(base)


def test_insert_payload() -> None:
    note = parse(payload())
    assert note.op is Op.INSERT and note.id == uuid.UUID(ID) and note.version == 3 and note.arms
    assert note.key is not None
    assert (note.key.date, note.key.time, note.key.timezone) == (dt.date(2026, 5, 1), dt.time(9, 30), "Europe/Paris")


def test_retry_at_and_disarming_ops() -> None:
    note = parse(payload(op="U", retry_at="2026-05-01T10:00:00.5+00:00"))
    assert note.key is not None and note.key.retry_at == dt.datetime(
        2026, 5, 1, 10, 0, 0, 500000, tzinfo=dt.timezone.utc
    )
    assert not parse(payload(op="U", status="draft")).arms
    assert not parse(payload(op="D")).arms
    assert parse('{"op":"T"}').op is Op.TRUNCATE


def test_null_schedule_fields_parse_so_the_daemon_can_report_them_on_the_row() -> None:
    note = parse(payload(date=None, time=None))
    assert note.key is not None and note.key.date is None and note.key.time is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"op":"X"}', "unknown op"),
        (payload(id=None), "'id' is missing"),
        (payload(id="nope"), "'id' has a bad value"),
        (payload(id=5), "'id' has a bad value"),
        (payload(status=["scheduled"]), "'status' has a bad value"),
        (payload(date="2026-02-30"), "'date' has a bad value"),
        (payload(time="25:00"), "'time' has a bad value"),
        (payload(retry_at="2026-05-01T10:00:00"), "'retry_at' has a bad value"),
        (payload(version="3"), "version '3' is not an integer"),
        (payload(version=True), "is not an integer"),
        ("x" * 9000, "too long"),
        (payload(version=2**63), "outside bigint"),
        (payload(version=10**30), "outside bigint"),
        (payload(version=-(2**63) - 1), "outside bigint"),
        (payload(tz="x" * 101), "'tz' has a bad value"),
        (payload(status="s" * 41), "'status' has a bad value"),
    ],
)
def test_malformed_payloads(raw: str, message: str) -> None:
    with pytest.raises(MalformedNotification, match=message):
        parse(raw)


def test_versions_at_the_bigint_edges_parse() -> None:
    assert parse(payload(version=2**63 - 1)).version == 2**63 - 1
    assert parse(payload(version=-(2**63))).version == -(2**63)


def test_a_version_past_bigint_is_refused_without_printing_a_huge_number() -> None:
    with pytest.raises(MalformedNotification) as raised:
        parse(payload(version=10**4000))
    assert len(str(raised.value)) < 100
