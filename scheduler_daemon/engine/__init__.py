"""The engine: timers, the dispatcher that claims what falls due, one publish attempt,
the outcome writer, orphan recovery and the status reporter.

Data flows one way: listener → ``Dispatcher`` (arm, sleep, claim) → ``Publisher`` (one
attempt) → ``OutcomeWriter`` (one round trip per batch).
"""
