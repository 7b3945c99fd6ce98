-- Issue 14: request logs in one partition per UTC day, dropped whole when the retention period has passed.
--
-- Every tenant request writes one row, reads included, so this is the platform's busiest table. Two things were wrong
-- with 018's. The purge deleted at most 10,000 rows every five minutes (33 a second) while the API writes thousands a
-- second: past a few requests a second the table grew without end, and deleting row by row at the rate it fills would
-- have cost as much again in WAL and vacuum. And each row paid for four index entries and a foreign-key check: 500-row
-- batches measured 11.5-12.3 µs a row, of which the check on tenants was 3 µs (a locking read of the tenant's row per
-- row) and the id and created_at indexes most of the rest.
--
-- Now the primary key is (tenant_id, livemode, id, created_at): it is the tenant-and-mode listing order the separate
-- index gave, it finds one log by its id within a tenant as the old key did, and a key of a partitioned table must
-- hold the partitioning column. created_at needs no index: the purge drops a day's partition, it no longer searches
-- rows by age. The tenant foreign key goes: only an authenticated tenant's request is logged, and tenants are never
-- deleted. Measured on the same 500-row batches: 5.3-6.1 µs a row.
--
-- request_log_partition creates a day's partition ahead of time (the worker keeps today and the next two days in
-- place); a row whose day has none (the worker stopped for days) goes to the default partition, which the purge
-- empties row by row as before. Partitions are reached only through request_logs, whose policy applies; each also has
-- row-level security on with no policy, so a role granted a partition directly (GRANT ... ON ALL TABLES) still sees
-- none of it.

ALTER TABLE request_logs RENAME TO request_logs_018;
ALTER INDEX request_logs_pkey RENAME TO request_logs_018_pkey;
ALTER INDEX request_logs_tenant RENAME TO request_logs_018_tenant;
ALTER INDEX request_logs_errors RENAME TO request_logs_018_errors;
ALTER INDEX request_logs_created RENAME TO request_logs_018_created;

CREATE TABLE request_logs (
  id text NOT NULL,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  method text NOT NULL,
  path text NOT NULL,
  route text,
  status integer NOT NULL,
  api_key_id text,
  idempotency_key text,
  idempotent_replayed boolean NOT NULL DEFAULT false,
  error_type text,
  error_code text,
  latency_ms integer NOT NULL,
  source_ip text,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, livemode, id, created_at)
) PARTITION BY RANGE (created_at);
-- The Developers page's usual question is "what failed": errors keep their own index.
CREATE INDEX request_logs_errors ON request_logs (tenant_id, livemode, id DESC) WHERE status >= 400;
CREATE TABLE request_logs_default PARTITION OF request_logs DEFAULT;
ALTER TABLE request_logs_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_logs_default FORCE ROW LEVEL SECURITY;

ALTER TABLE request_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON request_logs
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

-- Runs with its caller's rights: the worker's purge (as the tables' owner, see migrate.ts) and this migration. False
-- when the partition could not be made now: the default partition holds rows of that day (they stay there until the
-- purge deletes them), or the lock on request_logs was not granted within the caller's lock_timeout (next time).
CREATE FUNCTION request_log_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  partition_name constant text := 'request_logs_' || to_char(p_day, 'YYYYMMDD');
BEGIN
  IF to_regclass(partition_name) IS NOT NULL THEN
    RETURN true;
  END IF;
  EXECUTE format('CREATE TABLE %I PARTITION OF request_logs FOR VALUES FROM (%L) TO (%L)', partition_name,
    p_day::timestamp AT TIME ZONE 'UTC', (p_day + 1)::timestamp AT TIME ZONE 'UTC');
  EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', partition_name);
  RETURN true;
EXCEPTION WHEN check_violation OR lock_not_available THEN
  RETURN false;
END $$;

-- The days 018's table holds, then today and the next two.
SELECT request_log_partition(day)
FROM (SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS day FROM request_logs_018
  UNION SELECT (now() AT TIME ZONE 'UTC')::date + ahead FROM generate_series(0, 2) ahead) days;
INSERT INTO request_logs SELECT id, tenant_id, livemode, method, path, route, status, api_key_id, idempotency_key,
  idempotent_replayed, error_type, error_code, latency_ms, source_ip, created_at FROM request_logs_018;
DROP TABLE request_logs_018;

-- Keeps the next days' partitions in place, drops each day whose every row is older than p_older_than, and deletes up
-- to p_limit such rows from the default partition. Returns the rows removed; a dropped partition counts as
-- PostgreSQL's estimate of its rows (reltuples), since counting them exactly would read the whole day. A lock on
-- request_logs that is not granted within two seconds (a long report reading the logs) leaves the change to the next
-- run rather than stalling the API's inserts queued behind it.
CREATE OR REPLACE FUNCTION worker_purge_request_logs(p_older_than interval, p_limit integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
  cutoff constant timestamptz := now() - p_older_than;
  expired record;
  removed bigint := 0;
  deleted bigint;
BEGIN
  PERFORM request_log_partition((now() AT TIME ZONE 'UTC')::date + ahead) FROM generate_series(0, 2) ahead;
  FOR expired IN
    SELECT c.oid::regclass AS partition, greatest(c.reltuples, 0)::bigint AS estimate
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'request_logs'::regclass AND c.relname ~ '^request_logs_[0-9]{8}$'
      AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
  LOOP
    BEGIN
      EXECUTE format('DROP TABLE %s', expired.partition);
      removed := removed + expired.estimate;
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
  END LOOP;
  DELETE FROM request_logs_default WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM request_logs_default WHERE created_at < cutoff LIMIT p_limit));
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN removed + deleted;
END $$;
