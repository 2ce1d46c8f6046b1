"""Platform strings made storable: NUL and lone surrogates replaced, lengths capped."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given
from hypothesis import strategies as st

from scheduler_daemon.engine.clean import MAX_ID, MAX_MESSAGE, clean, clean_outcome
from scheduler_daemon.models import Outcome, OutcomeKind, PublishResult

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def test_nul_and_lone_surrogates_become_the_replacement_character() -> None:
    assert clean("evil\x00id", 100) == "evil\ufffdid"
    assert clean("\ud800x\udfff", 100) == "\ufffdx\ufffd"
    assert clean("naïve 🎉 ok", 100) == "naïve 🎉 ok"  # real characters, astral ones too, stay


def test_a_long_string_is_cut_with_an_ellipsis() -> None:
    assert clean("a" * 10, 5) == "aaaa…"
    assert clean("a" * 5, 5) == "aaaaa"


@given(st.text(alphabet=st.characters(codec=None), max_size=300), st.integers(1, 200))
def test_any_string_comes_out_encodable_without_nul_and_within_its_limit(text: str, limit: int) -> None:
    out = clean(text, limit)
    assert len(out) <= limit and "\x00" not in out
    out.encode("utf-8")  # raises on a surrogate


def test_an_outcome_is_cleaned_field_by_field() -> None:
    raw = Outcome(uuid.uuid4(), "webhook", 1, OutcomeKind.PUBLISHED, NOW, NOW,
                  PublishResult("x" * 10_000, "https://h/\x00", {"uri": "kept"}), "m\ud800" * 5000)
    out = clean_outcome(raw)
    assert out.result is not None and len(out.result.platform_post_id or "") == MAX_ID
    assert out.result.platform_post_url == "https://h/\ufffd" and out.result.ref == {"uri": "kept"}
    assert out.error_message is not None and len(out.error_message) == MAX_MESSAGE
    assert "\ud800" not in out.error_message
    assert clean_outcome(Outcome(raw.post_id, "webhook", 1, OutcomeKind.FAILED, NOW, NOW)).result is None
