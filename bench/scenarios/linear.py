"""13. Linear work on the loop (issue 10, item 6): the text checks and the scrubber on
adversarial input, at n and 10·n characters.

Every function that runs on the event loop over a post's text (the URL detection used by
the X and Mastodon length checks, ``_rules.find_urls`` and ``twitter_text.extract_urls``;
X's weighted length; the secret scrubber, with a post's own secrets in scope) gets each
input of a corpus made to hurt a backtracking pattern: long runs of the characters a URL,
a domain, a path or a ``scheme://user:password@`` could start or continue with. Reported:
the CPU time at 10·n over the time at n (linear: about 10; quadratic: about 100), best of
three runs each, and the slowest call at 10·n. A ratio, not a time, is the target, so the
shared machine's speed does not decide it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from scheduler_daemon.platforms._rules import find_urls
from scheduler_daemon.platforms.twitter_text import extract_urls, weighted_length
from scheduler_daemon.redact import SECRETS, own_secrets

from ..context import Context
from ..results import target

# Repeated to the length measured: each is a run a careless pattern rescans from every position.
CORPUS = {
    "letters": "a", "letters then ://": "a", "dots": ".", "label dots": "a.", "digit dots": "1.",
    "hyphens": "a-", "domains": "a.com ", "schemes": "http://", "scheme chars": "ab+",
    "user:password": "a://b:", "colons": "a:", "at signs": "a@", "paths": "x.co/", "queries": "a.com/?",
    "open parens": "https://a.co/(", "path parens": "a.co/((", "brackets": "a.co/[", "t.co": "https://t.co/a?",
}
SUFFIX = {"letters then ://": "://x:y@"}


def _scrub(text: str) -> str:
    with own_secrets("tenant-token-0123456789", "tenant-refresh-0123456789"):
        return SECRETS.scrub(text)


FUNCTIONS: dict[str, Callable[[str], Any]] = {
    "_rules.find_urls": find_urls, "twitter_text.extract_urls": extract_urls,
    "twitter_text.weighted_length": weighted_length, "redact scrub": _scrub,
}


def _text(name: str, n: int) -> str:
    unit = CORPUS[name]
    return (unit * (n // len(unit) + 1))[:n] + SUFFIX.get(name, "")


def _cpu(function: Callable[[str], Any], text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        function(text)
        best = min(best, time.process_time() - started)
    return max(best, 1e-5)  # the clock's resolution: a near-zero time would make a ratio noise


def measure(n: int) -> dict[str, Any]:
    rows = []
    for fname, function in FUNCTIONS.items():
        for name in CORPUS:
            small, big = _cpu(function, _text(name, n)), _cpu(function, _text(name, 10 * n))
            rows.append({"function": fname, "input": name, "ms_small": round(small * 1000, 3),
                         "ms_big": round(big * 1000, 3), "ratio": round(big / small, 1)})
    return {"n": n, "rows": rows}


def run(ctx: Context) -> dict[str, Any]:
    result = measure(ctx.sizes.linear_chars)
    rows = result["rows"]
    worst = max(rows, key=lambda r: r["ratio"])
    slowest = max(rows, key=lambda r: r["ms_big"])
    big = 10 * result["n"]
    result["targets"] = [
        target("linear", f"worst CPU ratio, {big:,} vs {result['n']:,} characters", worst["ratio"], "<=", 30.0,
               "×", f"linear is about 10, quadratic about 100; worst: {worst['function']} on {worst['input']!r}"),
        target("linear", f"slowest call on {big:,} adversarial characters", slowest["ms_big"], "<=", 1000.0, "ms",
               f"{slowest['function']} on {slowest['input']!r}"),
    ]
    return result
