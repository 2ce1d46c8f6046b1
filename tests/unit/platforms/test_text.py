from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from scheduler_daemon.platforms._rules import find_urls, graphemes, threads_length, utf8_offset, utf16_length
from scheduler_daemon.platforms.mastodon import mastodon_length
from scheduler_daemon.platforms.twitter_text import weighted_length as x_weighted_length


def test_graphemes_keep_user_perceived_characters_together() -> None:
    assert graphemes("abc") == 3
    assert graphemes("e\u0301") == 1  # e + combining acute
    assert graphemes("👨‍👩‍👧‍👦") == 1  # ZWJ family
    assert graphemes("👍🏽") == 1  # skin-tone modifier
    assert graphemes("🇫🇷🇩🇪") == 2  # two flags
    assert graphemes("❤️") == 1  # variation selector
    assert graphemes("\r\n") == 1
    assert graphemes("한국어") == 3


def test_graphemes_follow_extended_clusters_like_the_bluesky_server() -> None:
    # Intl.Segmenter (what the PDS counts with) and UAX #29 with the Indic conjunct rule:
    assert graphemes("क्ष" * 200) == 200  # Devanagari conjunct: one cluster each
    assert graphemes("a\u200d😀" * 200) == 400  # ZWJ after a letter does not glue the emoji
    assert graphemes("ไทย") == 3  # Thai
    assert graphemes("مرحبا") == 5  # Arabic
    assert graphemes("🏴󠁧󠁢󠁳󠁣󠁴󠁿") == 1  # tag sequence (Scotland)


def test_x_counts_urls_as_23_and_wide_characters_as_2() -> None:
    assert x_weighted_length("hello") == 5
    assert x_weighted_length("https://example.com/" + "a" * 100) == 23
    assert x_weighted_length("see example.com now") == len("see ") + 23 + len(" now")
    assert x_weighted_length("日本") == 4
    assert x_weighted_length("👨‍👩‍👧") == 2
    assert x_weighted_length("a" * 280) == 280 and x_weighted_length("a" * 281) == 281


def test_threads_counts_emoji_by_utf8_bytes() -> None:
    assert threads_length("hi🙂") == 2 + 4
    assert threads_length("é") == 1


def test_mastodon_counts_urls_and_remote_mentions_short() -> None:
    assert mastodon_length("https://example.com/" + "a" * 200) == 23
    assert mastodon_length("@alice@example.social hi") == len("@alice hi")


def test_mastodon_gives_the_url_allowance_only_to_http_urls() -> None:
    bare = "example.com/" + "a" * 40
    assert mastodon_length(bare) == len(bare)  # counted as typed, like the instance does
    assert mastodon_length("http://" + bare) == 23
    assert mastodon_length("क्ष" * 10) == 10


def test_telegram_counts_utf16_units() -> None:
    assert utf16_length("a🙂") == 3


def test_urls_drop_trailing_punctuation() -> None:
    [span] = find_urls("Read https://example.com/a.")
    assert span.url == "https://example.com/a"
    assert [s.uri for s in find_urls("at www.example.org, ok")] == ["https://www.example.org"]
    assert [s.url for s in find_urls("wow https://example.com/x?!...")] == ["https://example.com/x"]
    assert find_urls("mail me at bob@example.com or bob.me@example.com") == []


def test_urls_keep_balanced_parentheses() -> None:
    wiki = "https://en.wikipedia.org/wiki/Python_(programming_language)"
    assert [s.url for s in find_urls(f"See {wiki} now")] == [wiki]
    assert [s.url for s in find_urls(f"(see {wiki})")] == [wiki]
    assert [s.url for s in find_urls(f"({wiki}).")] == [wiki]
    assert [s.url for s in find_urls("(https://example.com/a)")] == ["https://example.com/a"]
    assert [s.url for s in find_urls("<https://example.com/a>")] == ["https://example.com/a"]


def test_bare_domains_need_a_real_top_level_domain() -> None:
    assert [s.url for s in find_urls("example.com example.co.uk example.dev sub.example.みんな")] == [
        "example.com", "example.co.uk", "example.dev",
    ]
    assert find_urls("file.txt archive.tar.gz e.g. 3.14 -bad-.com") == []
    assert [s.url for s in find_urls("go to example.com/a_(b) or example.org:8080/x.")] == [
        "example.com/a_(b)", "example.org:8080/x",
    ]


def test_spans_are_character_offsets_and_utf8_offsets_count_bytes() -> None:
    text = "ünï https://example.com/ö"
    [span] = find_urls(text)
    assert text[span.start : span.end] == span.url == "https://example.com/ö"
    assert (utf8_offset(text, span.start), utf8_offset(text, span.end)) == (len("ünï ".encode()), len(text.encode()))


ADVERSARIAL: list[Callable[[int], str]] = [
    lambda n: "a." * (n // 2),  # many dots: a domain that never gets a TLD
    lambda n: "a" * n,  # one long label
    lambda n: ("abc-" * n)[:n],  # a long domain-like run
    lambda n: ("x.y" * n)[:n] + ".com",  # thousands of labels, then a TLD
    lambda n: "https://x.com/" + "(" * (n // 2) + ")" * (n // 2),  # nested parentheses
    lambda n: "https://x.com/" + ")" * n,  # closing brackets to strip
    lambda n: "(" * (n // 2) + "a.com" * (n // 10),  # openers before each start
    lambda n: ("(https://" * n)[:n],  # schemes without a host
    lambda n: ("example.com/" + "." * 50 + " ") * (n // 63),  # links with trailing dots
    lambda n: ("bob.me@" * n)[:n],  # e-mail-like runs
    lambda n: ("a.com/(b" * n)[:n],  # unclosed path groups, each starting another URL
    lambda n: "http://" + "a-" * (n // 2) + ".com",  # one label as long as the text
    lambda n: ("日本example.comだ" * n)[:n],  # TLDs ending mid-label, ASCII domains inside
    lambda n: "https://x.com/?" + "!" * n,  # a query without an ending character
]


def _cpu_seconds(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(2):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("make", ADVERSARIAL, ids=lambda make: repr(make(40)[:24]))
def test_text_rules_are_linear_on_adversarial_input(make: Callable[[int], str]) -> None:
    """Ten times the text costs about ten times the work, not a hundred (a size-scaling
    check, measured in CPU time with a wide margin; the quadratic pattern this replaces
    took 2.3 s for 16,000 characters)."""

    def everything(text: str) -> Callable[[], object]:
        return lambda: (find_urls(text), x_weighted_length(text), mastodon_length(text), graphemes(text))

    small, large = make(10_000), make(100_000)
    assert len(large) >= 99_000
    small_cost = max(_cpu_seconds(everything(small)), 0.002)
    large_cost = _cpu_seconds(everything(large))
    assert large_cost < 30 * small_cost, (small_cost, large_cost)
