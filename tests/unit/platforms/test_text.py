from __future__ import annotations

from scheduler_daemon.platforms.text import (
    find_urls,
    graphemes,
    mastodon_length,
    threads_length,
    utf16_length,
    x_weighted_length,
)


def test_graphemes_keep_user_perceived_characters_together() -> None:
    assert graphemes("abc") == 3
    assert graphemes("e\u0301") == 1  # e + combining acute
    assert graphemes("👨‍👩‍👧‍👦") == 1  # ZWJ family
    assert graphemes("👍🏽") == 1  # skin-tone modifier
    assert graphemes("🇫🇷🇩🇪") == 2  # two flags
    assert graphemes("❤️") == 1  # variation selector
    assert graphemes("\r\n") == 1
    assert graphemes("한국어") == 3


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


def test_telegram_counts_utf16_units() -> None:
    assert utf16_length("a🙂") == 3


def test_urls_drop_trailing_punctuation() -> None:
    [span] = find_urls("Read https://example.com/a.")
    assert span.url == "https://example.com/a"
    assert [s.uri for s in find_urls("at www.example.org, ok")] == ["https://www.example.org"]
    assert find_urls("mail me at bob@example.com") == []
