-- The processor attempts' rollup (the operator's processor health) goes through a change log as the payments' did
-- in 040. Its triggers were the last rollup work left inside create+confirm's batch statements: an attempt is
-- inserted with the payment and completed with its authorization (INSERT ... ON CONFLICT DO UPDATE, which fires the
-- insert and the update triggers), and each trigger grouped its rows and upserted analytics_processor_hourly.
-- Now each only appends the changed rows' counted columns; the worker's fold moves them into the rollup with the
-- payments' changes, and the operator's reads add what is not folded yet (analytics_attempt_changes_hourly).

CREATE TABLE analytics_attempt_changes (
  -- Attempts are rolled up for the platform only (the rollup's own CHECK): '__platform__' here too, so that the
  -- operator's scope selects the log under the same policy as the rollup.
  tenant_id text NOT NULL CHECK (tenant_id = '__platform__'),
  livemode boolean NOT NULL,
  -- +1: the row as written; -1: the row as it was before.
  s integer NOT NULL,
  hour timestamptz NOT NULL,
  processor text NOT NULL,
  status text NOT NULL,
  -- Null while the attempt has no answer yet.
  latency_ms bigint
);
ALTER TABLE analytics_attempt_changes SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0);
-- The worker vacuums both logs after every fold (foldAnalyticsLogs). A vacuum that finds empty pages at a table's end
-- truncates them under an exclusive lock, which the triggers' inserts would queue behind; the pages are refilled half a
-- second later anyway.
ALTER TABLE analytics_payment_changes SET (vacuum_truncate = false);
ALTER TABLE analytics_attempt_changes SET (vacuum_truncate = false);
ALTER TABLE analytics_attempt_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics_attempt_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON analytics_attempt_changes USING (app_scope_allows(tenant_id, livemode))
  WITH CHECK (app_scope_allows(tenant_id, livemode));

DO $migration$
DECLARE
  source constant text := 'SELECT ''__platform__'', livemode, %s, date_trunc(''hour'', created_at, ''UTC''), '
    'processor, status, CASE WHEN completed_at IS NOT NULL THEN analytics_latency_ms(created_at, completed_at) END '
    'FROM %s';
  sources constant text[] := ARRAY[format(source, 1, 'new_rows'),
    format(source, 1, 'new_rows') || ' UNION ALL ' || format(source, -1, 'old_rows'), format(source, -1, 'old_rows')];
  events constant text[] := ARRAY['insert', 'update', 'delete'];
BEGIN
  FOR e IN 1 .. 3 LOOP
    EXECUTE format('CREATE OR REPLACE FUNCTION analytics_payment_attempts_%s() RETURNS trigger LANGUAGE plpgsql '
        'SECURITY DEFINER SET search_path = public AS $fn$ BEGIN '
        'INSERT INTO analytics_attempt_changes (tenant_id, livemode, s, hour, processor, status, latency_ms) %s; '
        'RETURN NULL; END $fn$',
      events[e], sources[e]);
  END LOOP;
END $migration$;

-- What the log contributes to analytics_processor_hourly, with 038's definitions. security_invoker: the reader's
-- scope applies.
CREATE VIEW analytics_attempt_changes_hourly WITH (security_invoker = true) AS
  SELECT tenant_id, livemode, hour, processor, sum(s)::bigint AS attempts,
    coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0)::bigint AS succeeded,
    coalesce(sum(s) FILTER (WHERE status = 'declined'), 0)::bigint AS declined,
    coalesce(sum(s) FILTER (WHERE status = 'error'), 0)::bigint AS errors,
    coalesce(sum(s) FILTER (WHERE latency_ms IS NULL), 0)::bigint AS pending,
    coalesce(sum(s) FILTER (WHERE latency_ms IS NOT NULL), 0)::bigint AS completed,
    coalesce(sum(s * latency_ms), 0)::bigint AS latency_ms_sum,
    -- How many logged rows each group adds up (the fold reports what it moved).
    count(*) AS changes
  FROM analytics_attempt_changes
  GROUP BY tenant_id, livemode, hour, processor;

-- The fold, rewritten as one statement over both logs. 040's ran the log through three aggregations (hourly, breakdown,
-- and the hourly again for the platform), each from the raw changes; here the changes are netted once per payment
-- (a create+confirm's three rows, +1 as created, -1 and +1 as confirmed, become one), and every rollup is summed from
-- that (hashed: sorting the log by its long key took half the time). One statement, one snapshot: the DELETEs remove
-- exactly the rows the upserts added up. Still REPEATABLE READ and one fold at a time, as in 040: a fold whose
-- snapshot predates another's commit fails at its DELETE with a serialization error instead of adding those rows
-- twice, and its upserts are undone with it.
CREATE OR REPLACE FUNCTION worker_fold_analytics() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public SET jit = off SET enable_sort = off AS $$
DECLARE
  folded bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'repeatable read' THEN
    RAISE EXCEPTION 'worker_fold_analytics() must run in a REPEATABLE READ transaction';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('worker_fold_analytics')) THEN
    RETURN 0;
  END IF;
  BEGIN
    WITH net AS MATERIALIZED (
      SELECT tenant_id, livemode, hour, currency, payment_method_id, status, approved, declined, decline_reason,
        sum(s) AS s, sum(s * amount) AS amount, sum(s * amount_received) AS amount_received, sum(s * fee) AS fee,
        count(*) AS changes
      FROM analytics_changes
      GROUP BY tenant_id, livemode, hour, currency, payment_method_id, status, approved, declined, decline_reason
    ), h AS MATERIALIZED (
      SELECT tenant_id, livemode, hour, currency, sum(s)::bigint AS payments_count,
        sum(amount)::bigint AS payments_amount, coalesce(sum(s) FILTER (WHERE approved), 0)::bigint AS approved_count,
        coalesce(sum(amount) FILTER (WHERE approved), 0)::bigint AS approved_amount,
        coalesce(sum(s) FILTER (WHERE declined), 0)::bigint AS declined_count,
        coalesce(sum(amount) FILTER (WHERE declined), 0)::bigint AS declined_amount,
        coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0)::bigint AS succeeded_count,
        coalesce(sum(s) FILTER (WHERE status = 'canceled'), 0)::bigint AS canceled_count,
        sum(amount_received)::bigint AS captured_amount, sum(fee)::bigint AS fees
      FROM net GROUP BY tenant_id, livemode, hour, currency
    ), hourly AS (
      INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count, payments_amount,
          approved_count, approved_amount, declined_count, declined_amount, succeeded_count, canceled_count,
          captured_amount, fees)
        SELECT tenant_id, livemode, hour, currency, pg_backend_pid(), payments_count, payments_amount, approved_count,
          approved_amount, declined_count, declined_amount, succeeded_count, canceled_count, captured_amount, fees
        FROM h
        WHERE (payments_count, payments_amount, approved_count, approved_amount, declined_count, declined_amount,
          succeeded_count, canceled_count, captured_amount, fees) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY tenant_id, livemode, hour, currency
        ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
          payments_count = r.payments_count + excluded.payments_count,
          payments_amount = r.payments_amount + excluded.payments_amount,
          approved_count = r.approved_count + excluded.approved_count,
          approved_amount = r.approved_amount + excluded.approved_amount,
          declined_count = r.declined_count + excluded.declined_count,
          declined_amount = r.declined_amount + excluded.declined_amount,
          succeeded_count = r.succeeded_count + excluded.succeeded_count,
          canceled_count = r.canceled_count + excluded.canceled_count,
          captured_amount = r.captured_amount + excluded.captured_amount, fees = r.fees + excluded.fees
    ), bd AS (
      SELECT n.tenant_id, n.livemode, d.dimension, n.hour, n.currency, d.value, sum(n.s)::bigint AS payments_count,
        sum(n.amount)::bigint AS payments_amount, coalesce(sum(n.s) FILTER (WHERE n.approved), 0)::bigint AS approved_count,
        coalesce(sum(n.s) FILTER (WHERE n.declined), 0)::bigint AS declined_count,
        sum(n.amount_received)::bigint AS captured_amount
      FROM (SELECT * FROM net WHERE (s, amount, amount_received) <> (0, 0, 0)) n
      -- A lookup by key per payment, as in 040's view: never a join that reads payment_methods whole.
      LEFT JOIN LATERAL (SELECT brand, country FROM payment_methods WHERE id = n.payment_method_id LIMIT 1) pm ON true
      CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
        ('decline_code', n.decline_reason)) d (dimension, value)
      WHERE d.value IS NOT NULL
      GROUP BY n.tenant_id, n.livemode, d.dimension, n.hour, n.currency, d.value
    ), breakdown AS (
      INSERT INTO analytics_breakdown_hourly AS r (tenant_id, livemode, dimension, hour, currency, value, slot,
          payments_count, payments_amount, approved_count, declined_count, captured_amount)
        SELECT tenant_id, livemode, dimension, hour, currency, value, pg_backend_pid(), payments_count,
          payments_amount, approved_count, declined_count, captured_amount
        FROM bd
        WHERE (payments_count, payments_amount, approved_count, declined_count, captured_amount) <> (0, 0, 0, 0, 0)
        ORDER BY tenant_id, livemode, dimension, hour, currency, value
        ON CONFLICT (tenant_id, livemode, dimension, hour, currency, value, slot) DO UPDATE SET
          payments_count = r.payments_count + excluded.payments_count,
          payments_amount = r.payments_amount + excluded.payments_amount,
          approved_count = r.approved_count + excluded.approved_count,
          declined_count = r.declined_count + excluded.declined_count,
          captured_amount = r.captured_amount + excluded.captured_amount
    ), ph AS (
      SELECT '__platform__'::text AS tenant_id, livemode, hour, currency, sum(payments_count)::bigint AS payments_count,
        sum(payments_amount)::bigint AS payments_amount, sum(approved_count)::bigint AS approved_count,
        sum(declined_count)::bigint AS declined_count, sum(captured_amount)::bigint AS captured_amount
      FROM h GROUP BY livemode, hour, currency
    ), platform AS (
      INSERT INTO analytics_platform_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count,
          payments_amount, approved_count, declined_count, captured_amount)
        SELECT tenant_id, livemode, hour, currency, pg_backend_pid(), payments_count, payments_amount, approved_count,
          declined_count, captured_amount
        FROM ph
        WHERE (payments_count, payments_amount, approved_count, declined_count, captured_amount) <> (0, 0, 0, 0, 0)
        ORDER BY tenant_id, livemode, hour, currency
        ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
          payments_count = r.payments_count + excluded.payments_count,
          payments_amount = r.payments_amount + excluded.payments_amount,
          approved_count = r.approved_count + excluded.approved_count,
          declined_count = r.declined_count + excluded.declined_count,
          captured_amount = r.captured_amount + excluded.captured_amount
    ), ah AS MATERIALIZED (
      SELECT * FROM analytics_attempt_changes_hourly
    ), processors AS (
      INSERT INTO analytics_processor_hourly AS r (tenant_id, livemode, hour, processor, slot, attempts, succeeded,
          declined, errors, pending, completed, latency_ms_sum)
        SELECT tenant_id, livemode, hour, processor, pg_backend_pid(), attempts, succeeded, declined, errors, pending,
          completed, latency_ms_sum
        FROM ah
        WHERE (attempts, succeeded, declined, errors, pending, completed, latency_ms_sum) <> (0, 0, 0, 0, 0, 0, 0)
        ORDER BY tenant_id, livemode, hour, processor
        ON CONFLICT (tenant_id, livemode, hour, processor, slot) DO UPDATE SET
          attempts = r.attempts + excluded.attempts, succeeded = r.succeeded + excluded.succeeded,
          declined = r.declined + excluded.declined, errors = r.errors + excluded.errors,
          pending = r.pending + excluded.pending, completed = r.completed + excluded.completed,
          latency_ms_sum = r.latency_ms_sum + excluded.latency_ms_sum
    ), payment_changes AS (
      DELETE FROM analytics_payment_changes
    ), attempt_changes AS (
      DELETE FROM analytics_attempt_changes
    )
    SELECT coalesce((SELECT sum(changes) FROM net), 0) + coalesce((SELECT sum(changes) FROM ah), 0) INTO folded;
    RETURN folded;
  EXCEPTION WHEN serialization_failure THEN
    -- Another fold moved some of these rows after this snapshot was taken: this one's upserts are undone.
    RETURN 0;
  END;
END $$;

-- The backfill empties this log too before it rebuilds the rollups from the base tables.
CREATE OR REPLACE FUNCTION analytics_backfill() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE payments, refunds, disputes, payment_attempts, fraud_reviews IN SHARE MODE;
  TRUNCATE analytics_payment_changes, analytics_attempt_changes;
  PERFORM analytics_backfill_rollups();
END $$;
REVOKE ALL ON FUNCTION analytics_backfill() FROM PUBLIC;
