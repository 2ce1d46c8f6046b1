"""Test and benchmark support shipped with the package: a real PostgreSQL, a local receiver.

Nothing here is used by the daemon itself.
"""
