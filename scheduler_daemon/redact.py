"""The secret scrubber: every string that may reach a log line, a stored message or an
exception passes ``SECRETS.scrub``.

Two kinds of secret, cut out by plain substring replacement (linear in the text, per
secret), never by one pattern that grows:

* **process secrets** (``SECRETS.add``): the database password, the Supabase service key,
  app credentials. Few and fixed, so scrubbed everywhere, in every line.
* **a post's own secrets** (``own_secrets``): the tokens of the connections a publish
  attempt uses, and any refreshed during it. They are scrubbed only inside that
  attempt's scope (a ``contextvars`` scope: the attempt's task and whatever it awaits or
  starts), where they could appear. A tenant's token is scrubbed from that tenant's own
  lines and messages, never from another's: a token equal to the word ``retrying`` does
  not cut that word out of everyone's messages, and the cost of a scrub stays bounded by
  the few secrets in scope however many tenants the daemon has served.

The password of any URL (``scheme://user:password@``) is cut too.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

# A scheme starts where no scheme character precedes it: without the lookbehind every
# position of a long run of letters before "://" rescans the run (quadratic: 40,000
# letters took 9 s); with it each run is scanned once.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I
)
REDACTED = "[redacted]"
MIN_LENGTH = 6  # shorter strings are too likely to be ordinary words

# The secrets of the publish attempt running in this context (a set the attempt may grow
# when it refreshes a token), or None outside any attempt.
_OWN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("scheduler_own_secrets", default=None)


def _worth(values: Iterable[str | None]) -> set[str]:
    return {v for v in values if v and len(v) >= MIN_LENGTH}


@contextlib.contextmanager
def own_secrets(*values: str | None) -> Iterator[None]:
    """Scrub ``values`` (and the enclosing scope's) from everything scrubbed in this scope."""
    outer = _OWN.get()
    token = _OWN.set(_worth(values) | (outer or set()))
    try:
        yield
    finally:
        _OWN.reset(token)


def add_own(*values: str | None) -> None:
    """Add secrets learned during an attempt (refreshed tokens) to its scope; outside one,
    nothing to add to (the caller has no attempt to protect)."""
    scope = _OWN.get()
    if scope is not None:
        scope |= _worth(values)


class Secrets:
    """The process secrets, plus the current scope's (thread-safe)."""

    MIN_LENGTH = MIN_LENGTH

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()  # longest first: a secret inside another goes with it
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many process secrets are held (a scope's are not)."""
        return len(self._values)

    def add(self, *values: str | None) -> None:
        new = _worth(values) - set(self._values)
        if new:
            with self._lock:
                self._values = tuple(sorted({*self._values, *new}, key=len, reverse=True))

    def add_url(self, url: str | None) -> None:
        if url:
            with contextlib.suppress(ValueError):
                self.add(urlsplit(url).password)

    def in_scope(self) -> tuple[str, ...]:
        """The secrets to cut here: the process's, then the current scope's (each longest first)."""
        own = _OWN.get()
        return (*self._values, *sorted(own, key=len, reverse=True)) if own else self._values

    def scrub(self, text: str, secrets: tuple[str, ...] | None = None) -> str:
        """``secrets``: ``in_scope()`` taken once for many strings (a log line's fields)."""
        if "://" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
        for secret in self.in_scope() if secrets is None else secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


SECRETS = Secrets()
