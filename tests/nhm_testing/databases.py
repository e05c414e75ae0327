"""Fresh, migrated databases per test, on SQLite and PostgreSQL.

Each service's schema is migrated once per test session into a template (a SQLite file, or a PostgreSQL
template database); every test then gets its own copy, which is fast and keeps tests independent.
Names carry the process id, so several test runs can share one PostgreSQL server.

On PostgreSQL a migrated database is migrated as the server's user (the owner, NHM_TEST_POSTGRES_URL's) and
handed out for the application role (APP_ROLE, created if missing): services under test connect as a role
row-level security holds, as in production. Tests that inspect or plant rows behind a service's back open
:func:`owner_url` of it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from nhm_platform.database_roles import application_url, ensure_login_role
from nhm_platform.migrations import upgrade
from nhm_platform.service import ServiceSpec
from nhm_platform.settings import ServerSettings

POSTGRES_URL_VARIABLE = "NHM_TEST_POSTGRES_URL"
APP_ROLE = ServerSettings.database_app_role


def owner_url(url: str) -> str:
    """The same database as the tables' owner (the test server's user); a SQLite URL as it is."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.username != APP_ROLE:
        return url
    base = make_url(os.environ[POSTGRES_URL_VARIABLE])
    return parsed.set(username=base.username, password=base.password).render_as_string(hide_password=False)


class SqliteProvisioner:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._templates: dict[str, Path] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def fresh(self, spec: ServiceSpec[Any]) -> str:
        with self._lock:
            template = self._templates.get(spec.name)
            if template is None:
                template = self._root / f"template-{spec.name}.db"
                upgrade(f"sqlite:///{template}", spec.migrations_dir, spec.version_table)
                self._templates[spec.name] = template
            path = self._root / f"{spec.name}-{next(self._counter)}.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    def empty(self, name: str) -> str:
        return f"sqlite:///{self._root / f'{name}-{next(self._counter)}.db'}"

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


class PostgresProvisioner:
    def __init__(self, base_url: str) -> None:
        self._base = make_url(base_url)
        self._prefix = f"nhmt{os.getpid()}"
        self._templates: dict[str, str] = {}
        self._created: list[str] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self._base.host or "127.0.0.1", port=self._base.port or 5432,
            user=self._base.username or "postgres", password=self._base.password,
            dbname=self._base.database or "postgres", autocommit=True)

    def _url(self, database: str) -> str:
        return self._base.set(database=database).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self._created.append(name)

    def fresh(self, spec: ServiceSpec[Any]) -> str:
        with self._lock:
            template = self._templates.get(spec.name)
            if template is None:
                template = f"{self._prefix}_tmpl_{spec.name}"
                self._create(template)
                ensure_login_role(self._url(template), APP_ROLE)  # the migrations grant it; a fresh server lacks it
                upgrade(self._url(template), spec.migrations_dir, spec.version_table, app_role=APP_ROLE)
                self._templates[spec.name] = template
            name = f"{self._prefix}_{spec.name}_{next(self._counter)}"
            self._create(name, template)
        return application_url(self._url(name))

    def empty(self, name: str) -> str:
        with self._lock:
            database = f"{self._prefix}_{name}_{next(self._counter)}"
            self._create(database)
        return self._url(database)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        with self._admin() as conn:
            for name in reversed(self._created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
