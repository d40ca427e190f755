"""Store implementations: PostgreSQL for production, SQLite embedded.

Both implement :class:`actors.ports.Store` and pass one contract suite
(``tests/store``). See ``docs/storage.md``.
"""
