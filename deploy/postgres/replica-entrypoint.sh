#!/bin/bash
# The streaming replica: on first start, a base backup of the primary with -R (standby.signal and
# primary_conninfo written for us) on the primary's slot; afterwards it just starts and follows.
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD in deploy/env/postgres.env}"
: "${PRIMARY_HOST:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -U replicator -d postgres; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" \
    -X stream -R -S replica_1
  chmod 0700 "$PGDATA"
fi
exec postgres
