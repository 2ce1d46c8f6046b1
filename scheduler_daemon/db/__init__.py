"""Everything that talks to PostgreSQL: the only package that imports asyncpg.

Statements live in ``sql/*.sql`` (``sql.q(name)``); ``repository`` (the daemon's) and
``admin`` (the operator commands') return models, never asyncpg records.
"""
