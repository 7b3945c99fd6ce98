#!/bin/bash
# Runs once, when the primary's data folder is first created (docker-entrypoint-initdb.d): the role and slot the
# streaming replica connects with. The replica's WAL stays on the primary until the replica has it (the slot).
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD in deploy/env/postgres.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set=pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SELECT pg_create_physical_replication_slot('replica_1');
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
