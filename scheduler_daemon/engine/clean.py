"""Platform strings made storable before they become an ``Outcome``. Pure.

An answer comes from a server that a tenant may control (a webhook, a Mastodon instance,
a PDS). PostgreSQL ``text`` cannot hold NUL (SQLSTATE 22021) and UTF-8 cannot encode a
lone surrogate (asyncpg refuses the whole batch's argument), so one such character in one
post's id used to fail every outcome written with it, again and again. A 10 MB "id" would
be stored as it came. ``clean_outcome`` is applied once, where an attempt's result or
exception has become its Outcome; the writer's bisection (``engine.writer``) catches
whatever still fails.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from ..models import Outcome, PublishResult

MAX_ID = 512  # the longest real ids (AT URIs, LinkedIn URNs) are about 100 characters
MAX_URL = 2048  # what browsers and CDNs reliably carry
MAX_MESSAGE = 4000  # a readable error_message; a thread's list of item URLs fits
REPLACEMENT = "\ufffd"
ELLIPSIS = "…"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # one character class: linear


def clean(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (ending in "…" when cut), NUL and lone
    surrogates replaced by U+FFFD. Cut first, so a huge string costs only ``limit``."""
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return _UNSTORABLE.sub(REPLACEMENT, text)


def _clean_or_none(text: str | None, limit: int) -> str | None:
    return None if text is None else clean(text, limit)


def clean_result(result: PublishResult) -> PublishResult:
    return dataclasses.replace(
        result,
        platform_post_id=_clean_or_none(result.platform_post_id, MAX_ID),
        platform_post_url=_clean_or_none(result.platform_post_url, MAX_URL),
    )


def clean_outcome(outcome: Outcome, scrub: Callable[[str], str] = str) -> Outcome:
    """``outcome`` with its platform id, URL and message storable and bounded; ``scrub``
    (the secret scrubber) runs on the message first, so a cut never leaves half a token."""
    message = None if outcome.error_message is None else clean(scrub(outcome.error_message), MAX_MESSAGE)
    return dataclasses.replace(
        outcome,
        result=None if outcome.result is None else clean_result(outcome.result),
        error_message=message,
    )
