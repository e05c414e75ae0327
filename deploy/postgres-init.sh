#!/bin/sh
# First start of the compose PostgreSQL: each service's own database, and the application role the services
# connect as (no superuser, no BYPASSRLS, owns nothing: row-level security holds it to one tenant's rows).
# Migrations run as the owner (postgres) and grant the role what the services need.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v app_password="$NHM_APP_DB_PASSWORD" <<'SQL'
CREATE DATABASE nhm_registry;
CREATE DATABASE nhm_scoring;
CREATE DATABASE nhm_allocation;
CREATE DATABASE nhm_remediation;
CREATE ROLE nhm_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
SQL
