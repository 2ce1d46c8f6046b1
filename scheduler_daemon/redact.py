"""The secret scrubber: every string that may reach a log line, a stored message or an
exception passes ``SECRETS.scrub``.

``SECRETS`` holds the secrets the process knows (connection tokens as rows are loaded, the
database password, app credentials); ``scrub`` cuts each of them out, and the password of
any URL (``scheme://user:password@``) too.
"""

from __future__ import annotations

import contextlib
import re
import threading
from urllib.parse import urlsplit

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
REDACTED = "[redacted]"


class Secrets:
    """The set of secret strings to cut out of log lines (thread-safe, regex rebuilt lazily)."""

    MIN_LENGTH = 6  # shorter strings are too likely to be ordinary words

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        new = {v for v in values if v and len(v) >= self.MIN_LENGTH and v not in self._values}
        if new:
            with self._lock:
                self._values |= new
                self._pattern = None

    def add_url(self, url: str | None) -> None:
        if url:
            with contextlib.suppress(ValueError):
                self.add(urlsplit(url).password)

    def scrub(self, text: str) -> str:
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
        if not self._values:
            return text
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern.sub(REDACTED, text)


SECRETS = Secrets()
