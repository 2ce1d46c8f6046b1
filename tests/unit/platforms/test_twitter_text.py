"""X's counting rules against twitter-text's own conformance cases (data/…json)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from scheduler_daemon.platforms.twitter_text import extract_urls, weighted_length

CASES: dict[str, list[dict[str, Any]]] = json.loads(
    (pathlib.Path(__file__).parent / "data" / "twitter_text_conformance.json").read_text(encoding="utf-8")
)


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["description"][:60] for case in cases]


@pytest.mark.parametrize("case", CASES["weighted_length"], ids=_ids(CASES["weighted_length"]))
def test_weighted_length(case: dict[str, Any]) -> None:
    assert weighted_length(case["text"]) == case["weighted_length"]


@pytest.mark.parametrize("case", CASES["urls"], ids=_ids(CASES["urls"]))
def test_extract_urls(case: dict[str, Any]) -> None:
    assert [span.url for span in extract_urls(case["text"])] == case["expected"]


@pytest.mark.parametrize("case", CASES["urls_with_indices"], ids=_ids(CASES["urls_with_indices"]))
def test_extract_urls_with_indices(case: dict[str, Any]) -> None:
    assert [[s.url, [s.start, s.end]] for s in extract_urls(case["text"])] == case["expected"]


def test_without_protocol_only_schemes_count() -> None:
    text = "see example.com and https://example.org/a."
    assert [s.url for s in extract_urls(text, without_protocol=False)] == ["https://example.org/a"]
    assert weighted_length("x" * 257 + " https://example.com/" + "y" * 500) == 281
