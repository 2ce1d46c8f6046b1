"""The engine: timers, the dispatcher that claims what falls due, one publish attempt,
the outcome writer, orphan recovery and the status reporter. The publisher's side of an
attempt (``PublishContext``) is ``media.py`` (media URLs and bytes, owner-scoped) and
``token_refresh.py`` (one refresh per connection, stored by compare-and-swap).

Data flows one way: listener → ``Dispatcher`` (arm, sleep, claim) → ``Publisher`` (one
attempt) → ``OutcomeWriter`` (one round trip per batch).
"""
