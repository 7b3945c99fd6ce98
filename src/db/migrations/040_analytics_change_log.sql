-- Issue 13 allows the rollups at most 5% of the payment path's throughput; after 038 they still took about 15%. What
-- cost was not the triggers' firing but their work inside every batch statement: grouping the batch, looking each
-- card up in payment_methods, sorting, and three upserts (hourly, breakdown, platform) onto rows with long chains of
-- versions. In a single session's loop of 14-payment updates (PostgreSQL CPU per statement, alternated, load 7–14):
-- no trigger 0.52 ms, 038's trigger 1.10 ms, a trigger that only appends the changed rows 0.74 ms.
--
-- So the payments triggers now only append what each row contributes to analytics_payment_changes, a log with no
-- index: +1 for a new row, -1 for an old one. The worker folds the log into the same rollup rows as before
-- (worker_fold_analytics, every half second), in bulk: a grouping and a card lookup per fold instead of per batch.
-- Readers add what the log holds to what the rollups hold (the analytics_changes_* views, the same sums), in the
-- same statement and so the same snapshot: a fold moves rows from one to the other atomically and no reader sees a
-- contribution twice or not at all. Figures stay exact at every instant, folded or not; the log only has to stay
-- short for reads to stay fast (it holds about the last half second of payment changes while the worker runs).
--
-- Refunds, disputes, processor attempts and reviews keep their triggers of 035/038: they are not on the path of
-- create+confirm, and a refund is one row against a payment's three.

CREATE TABLE analytics_payment_changes (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  -- +1: the row as written; -1: the row as it was before (an update appends both, a delete the old one).
  s integer NOT NULL,
  -- The UTC hour of the payment's creation: computed once here, not by every fold and read.
  hour timestamptz NOT NULL,
  currency text NOT NULL,
  amount bigint NOT NULL,
  amount_received bigint NOT NULL,
  fee bigint,
  status text NOT NULL,
  payment_method_id text,
  last_payment_error jsonb
);
-- Every fold deletes what it moved, and the fold and the readers scan the log whole: vacuumed as soon as autovacuum
-- visits, unthrottled, and by the worker every 30 seconds (which owns the table for that, see migrate.ts).
ALTER TABLE analytics_payment_changes SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0);
ALTER TABLE analytics_payment_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE analytics_payment_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON analytics_payment_changes USING (app_scope_allows(tenant_id, livemode))
  WITH CHECK (app_scope_allows(tenant_id, livemode));

-- Statement-level triggers of 035 keep firing these; only their bodies change: one insert into the log, of the new
-- rows (+1), the old ones (-1) or both.
DO $migration$
DECLARE
  source constant text := 'SELECT tenant_id, livemode, %s, date_trunc(''hour'', created_at, ''UTC''), currency, amount, '
    'amount_received, fee, status, payment_method_id, last_payment_error FROM %s';
  sources constant text[] := ARRAY[format(source, 1, 'new_rows'),
    format(source, 1, 'new_rows') || ' UNION ALL ' || format(source, -1, 'old_rows'), format(source, -1, 'old_rows')];
  events constant text[] := ARRAY['insert', 'update', 'delete'];
BEGIN
  FOR e IN 1 .. 3 LOOP
    EXECUTE format('CREATE OR REPLACE FUNCTION analytics_payments_%s() RETURNS trigger LANGUAGE plpgsql '
        'SECURITY DEFINER SET search_path = public AS $fn$ BEGIN '
        'INSERT INTO analytics_payment_changes (tenant_id, livemode, s, hour, currency, amount, amount_received, fee, '
        'status, payment_method_id, last_payment_error) %s; RETURN NULL; END $fn$',
      events[e], sources[e]);
  END LOOP;
END $migration$;

-- What the log contributes to each payments rollup, with the definitions 035 gave the triggers. security_invoker:
-- the reader's row-level security applies to the log and to payment_methods, so a tenant's session sees its own
-- changes only (the fold, a SECURITY DEFINER function, sees them all). Sums are linear in s, so the hourly view
-- adds the changes up as they are; the breakdown nets them first (below).
CREATE VIEW analytics_changes WITH (security_invoker = true) AS
  SELECT tenant_id, livemode, hour, currency, s::bigint AS s, amount,
    amount_received, coalesce(fee, 0) AS fee, status, payment_method_id,
    status IN ('requires_capture', 'succeeded') AS approved,
    analytics_payment_declined(status, last_payment_error) AS declined,
    CASE WHEN analytics_payment_declined(status, last_payment_error)
      THEN coalesce(analytics_decline_reason(last_payment_error), 'unknown') END AS decline_reason
  FROM analytics_payment_changes;

CREATE VIEW analytics_changes_hourly WITH (security_invoker = true) AS
  SELECT tenant_id, livemode, hour, currency,
    sum(s)::bigint AS payments_count, sum(s * amount)::bigint AS payments_amount,
    coalesce(sum(s) FILTER (WHERE approved), 0)::bigint AS approved_count,
    coalesce(sum(s * amount) FILTER (WHERE approved), 0)::bigint AS approved_amount,
    coalesce(sum(s) FILTER (WHERE declined), 0)::bigint AS declined_count,
    coalesce(sum(s * amount) FILTER (WHERE declined), 0)::bigint AS declined_amount,
    coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0)::bigint AS succeeded_count,
    coalesce(sum(s) FILTER (WHERE status = 'canceled'), 0)::bigint AS canceled_count,
    sum(s * amount_received)::bigint AS captured_amount, sum(s * fee)::bigint AS fees,
    -- Refunds and disputes are rolled up by their own triggers, straight into the tables.
    0::bigint AS refunds_count, 0::bigint AS refunds_amount, 0::bigint AS disputes_count,
    0::bigint AS disputes_amount, 0::bigint AS disputes_won_count, 0::bigint AS disputes_lost_count,
    0::bigint AS disputes_lost_amount, 0::bigint AS fraud_disputes_count, 0::bigint AS fraud_disputes_amount
  FROM analytics_changes
  GROUP BY tenant_id, livemode, hour, currency;

CREATE VIEW analytics_changes_breakdown WITH (security_invoker = true) AS
  SELECT c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value,
    sum(c.s)::bigint AS payments_count, sum(c.amount)::bigint AS payments_amount,
    coalesce(sum(c.s) FILTER (WHERE c.approved), 0)::bigint AS approved_count,
    coalesce(sum(c.s) FILTER (WHERE c.declined), 0)::bigint AS declined_count,
    sum(c.amount_received)::bigint AS captured_amount
  FROM (
    -- Netted per card first: a payment created and confirmed between two folds leaves one change of its three (+1
    -- as created, -1 and +1 as confirmed), and only what is left is looked up.
    SELECT tenant_id, livemode, hour, currency, payment_method_id, approved, declined, decline_reason, sum(s) AS s,
      sum(s * amount) AS amount, sum(s * amount_received) AS amount_received
    FROM analytics_changes
    GROUP BY tenant_id, livemode, hour, currency, payment_method_id, approved, declined, decline_reason
    HAVING (sum(s), sum(s * amount), sum(s * amount_received)) <> (0, 0, 0)
  ) c
  -- A lookup by key per change, never a join that reads payment_methods whole (LIMIT keeps the planner from turning
  -- the lateral subquery back into a join it could hash): the log is short, payment_methods is not.
  LEFT JOIN LATERAL (SELECT brand, country FROM payment_methods WHERE id = c.payment_method_id LIMIT 1) pm ON true
  CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
    ('decline_code', c.decline_reason)) d (dimension, value)
  WHERE d.value IS NOT NULL
  GROUP BY c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value;

-- Every tenant's hourly changes added up, as 035's triggers derived the platform's rows from the tenants'.
CREATE VIEW analytics_changes_platform WITH (security_invoker = true) AS
  SELECT '__platform__'::text AS tenant_id, livemode, hour, currency,
    sum(payments_count)::bigint AS payments_count, sum(payments_amount)::bigint AS payments_amount,
    sum(approved_count)::bigint AS approved_count, sum(declined_count)::bigint AS declined_count,
    sum(captured_amount)::bigint AS captured_amount
  FROM analytics_changes_hourly
  GROUP BY livemode, hour, currency;

-- The operator's pending platform rows: every tenant's changes, which the operator's scope cannot select.
CREATE FUNCTION auth_analytics_changes_platform() RETURNS SETOF analytics_changes_platform
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT * FROM analytics_changes_platform WHERE app_scope_allows(tenant_id, livemode)
$$;

-- Moves the log into the rollups. Every statement reads one snapshot (REPEATABLE READ, checked), so the rows the
-- DELETE removes are exactly those the three upserts added up: changes committed meanwhile stay for the next fold.
-- One fold at a time (the advisory lock); a second one that took its snapshot before the first committed fails at
-- its DELETE with a serialization error, and its upserts are undone (the block's savepoint): nothing is added
-- twice. Slots as the triggers used them (the folding session's pid): compaction folds them into slot 0 and the
-- daily twins as before (038).
CREATE FUNCTION worker_fold_analytics() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public SET jit = off AS $$
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
    INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count, payments_amount,
        approved_count, approved_amount, declined_count, declined_amount, succeeded_count, canceled_count,
        captured_amount, fees)
      SELECT tenant_id, livemode, hour, currency, pg_backend_pid(), payments_count, payments_amount, approved_count,
        approved_amount, declined_count, declined_amount, succeeded_count, canceled_count, captured_amount, fees
      FROM analytics_changes_hourly
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
        captured_amount = r.captured_amount + excluded.captured_amount, fees = r.fees + excluded.fees;
    INSERT INTO analytics_breakdown_hourly AS r (tenant_id, livemode, dimension, hour, currency, value, slot,
        payments_count, payments_amount, approved_count, declined_count, captured_amount)
      SELECT tenant_id, livemode, dimension, hour, currency, value, pg_backend_pid(), payments_count, payments_amount,
        approved_count, declined_count, captured_amount
      FROM analytics_changes_breakdown
      WHERE (payments_count, payments_amount, approved_count, declined_count, captured_amount) <> (0, 0, 0, 0, 0)
      ORDER BY tenant_id, livemode, dimension, hour, currency, value
      ON CONFLICT (tenant_id, livemode, dimension, hour, currency, value, slot) DO UPDATE SET
        payments_count = r.payments_count + excluded.payments_count,
        payments_amount = r.payments_amount + excluded.payments_amount,
        approved_count = r.approved_count + excluded.approved_count,
        declined_count = r.declined_count + excluded.declined_count,
        captured_amount = r.captured_amount + excluded.captured_amount;
    INSERT INTO analytics_platform_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count,
        payments_amount, approved_count, declined_count, captured_amount)
      SELECT tenant_id, livemode, hour, currency, pg_backend_pid(), payments_count, payments_amount, approved_count,
        declined_count, captured_amount
      FROM analytics_changes_platform
      WHERE (payments_count, payments_amount, approved_count, declined_count, captured_amount) <> (0, 0, 0, 0, 0)
      ORDER BY tenant_id, livemode, hour, currency
      ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
        payments_count = r.payments_count + excluded.payments_count,
        payments_amount = r.payments_amount + excluded.payments_amount,
        approved_count = r.approved_count + excluded.approved_count,
        declined_count = r.declined_count + excluded.declined_count,
        captured_amount = r.captured_amount + excluded.captured_amount;
    DELETE FROM analytics_payment_changes;
    GET DIAGNOSTICS folded = ROW_COUNT;
    RETURN folded;
  EXCEPTION WHEN serialization_failure THEN
    -- Another fold moved some of these rows after this snapshot was taken: this one's upserts are undone.
    RETURN 0;
  END;
END $$;

-- The backfill rebuilds the rollups from the base tables, which already hold what the log holds: it empties the
-- log under the same locks (036's body, renamed, does the rest).
ALTER FUNCTION analytics_backfill() RENAME TO analytics_backfill_rollups;
CREATE FUNCTION analytics_backfill() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE payments, refunds, disputes, payment_attempts, fraud_reviews IN SHARE MODE;
  TRUNCATE analytics_payment_changes;
  PERFORM analytics_backfill_rollups();
END $$;
REVOKE ALL ON FUNCTION analytics_backfill() FROM PUBLIC;
REVOKE ALL ON FUNCTION analytics_backfill_rollups() FROM PUBLIC;
