"""Alembic migrations, one history per service, run on start-up or by the `migrate` command.

A service's ``migrations/env.py`` is two lines: import its metadata and call :func:`run_env`.
On PostgreSQL an advisory lock makes replicas that start together migrate one at a time.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool, text


def upgrade(database_url: str, migrations_dir: Path, version_table: str, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    config.attributes["version_table"] = version_table
    command.upgrade(config, revision)


def run_env(metadata: MetaData) -> None:
    """Body of a service's env.py (online mode only)."""
    config = context.config
    url = config.attributes["database_url"]
    version_table = config.attributes["version_table"]
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        is_pg = connection.dialect.name == "postgresql"
        lock_id = zlib.crc32(version_table.encode())
        if is_pg:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=version_table,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if is_pg:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                connection.commit()
    engine.dispose()
