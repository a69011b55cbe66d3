"""Storage: the database engine and transactions, the stored records, migrations, the Redis cache.

Owns ``db`` (one async engine, short transactions), ``models`` (the SQLModel tables), ``migrate``
and ``migrations`` (Alembic), and ``cache`` (Redis marks replicas share). May import only the
foundation modules (``bot.errors``, ``bot.clock``); every other package builds on it.
"""
