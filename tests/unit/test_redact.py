"""The scrubber: process secrets everywhere, a post's own secrets only in its own scope,
with a cost bounded by the secrets in scope, not by every tenant's token."""

from __future__ import annotations

import asyncio
import uuid

from scheduler_daemon.db import rows
from scheduler_daemon.redact import REDACTED, SECRETS, Secrets, add_own, own_secrets


def test_a_posts_own_token_is_cut_only_inside_its_own_scope() -> None:
    secrets = Secrets()
    message = "attempt 1 failed (HTTP 429); retrying in 10 s"
    with own_secrets("retrying"):  # tenant A's token happens to be an ordinary word
        assert secrets.scrub("token retrying") == f"token {REDACTED}"
    with own_secrets("tenant-b-token"):  # tenant B's attempt: A's token is no secret of B's
        assert secrets.scrub(message) == message
    assert secrets.scrub(message) == message


def test_process_secrets_are_cut_everywhere_and_the_longest_first() -> None:
    secrets = Secrets()
    secrets.add("db-password-1", "db-password-1-and-more", "short")  # "short" is under MIN_LENGTH
    assert secrets.scrub("x db-password-1-and-more y db-password-1") == f"x {REDACTED} y {REDACTED}"
    assert secrets.scrub("short") == "short" and len(secrets) == 2
    with own_secrets("own-token-1"):
        assert secrets.scrub("db-password-1 own-token-1") == f"{REDACTED} {REDACTED}"


def test_a_token_refreshed_during_the_attempt_joins_its_scope() -> None:
    with own_secrets("old-access-token"):
        add_own("new-access-token", None)
        assert SECRETS.scrub("new-access-token old-access-token") == f"{REDACTED} {REDACTED}"
    assert SECRETS.scrub("new-access-token") == "new-access-token"
    add_own("outside-any-attempt")  # nothing to add to: no error, no global growth
    assert SECRETS.scrub("outside-any-attempt") == "outside-any-attempt"


async def test_concurrent_attempts_keep_their_own_scopes() -> None:
    seen: dict[str, str] = {}
    entered = asyncio.Barrier(2)

    async def attempt(name: str, token: str) -> None:
        with own_secrets(token):
            await entered.wait()  # both scopes are open at once
            seen[name] = SECRETS.scrub("tok-alice-123 tok-bob-456")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(attempt("alice", "tok-alice-123"))
        tasks.create_task(attempt("bob", "tok-bob-456"))
    assert seen == {"alice": f"{REDACTED} tok-bob-456", "bob": f"tok-alice-123 {REDACTED}"}


def test_loading_connections_does_not_grow_the_process_secrets() -> None:
    """The old scrubber added every loaded token to one pattern: its cost grew with every
    tenant served. Ten thousand connections later the process secrets are unchanged."""
    before = len(SECRETS)
    for n in range(10_000):
        rows.connection({
            "id": uuid.uuid4(), "user_id": uuid.uuid4(), "platform": "webhook", "account_id": "a",
            "access_token": f"token-{n:06d}-xyz", "refresh_token": None, "token_expires_at": None,
            "metadata": {}, "needs_reconnect": False,
        })
    assert len(SECRETS) == before
    assert SECRETS.scrub("token-000042-xyz") == "token-000042-xyz"


def test_url_passwords_are_cut_and_a_long_scheme_run_is_scanned_once() -> None:
    assert SECRETS.scrub("postgresql://app:pa55@db/x") == f"postgresql://app:{REDACTED}@db/x"
    text = "a" * 50_000 + "://u:p@h"  # used to take about 15 s: every position rescanned the run
    assert SECRETS.scrub(text).endswith(f"://u:{REDACTED}@h")
