-- Issue 13 allows the rollups at most 5% of the payment path's throughput; as 035 wrote them they took about 12%
-- (bench/rollup-cost.ts measures where). Three changes to the write path, the figures staying exact:
--
-- 1. The daily tables are no longer written by the triggers. A payments statement wrote six rollup tables, three of
--    them the daily twins of the other three: now only the hourly ones. worker_compact_analytics, which folds the
--    per-session slots of past hours into slot 0, adds the same sums to slot 0 of the daily twin in the same
--    statement. So a daily row (slot 0) is always the sum of its day's hourly rows of slot 0, and a day's total is
--    its daily row plus its hourly rows of other slots (not compacted yet: the last hour or two, and late changes to
--    payments of older hours). Readers add both (src/modules/analytics/service.ts); a partial index on the hourly
--    rows of other slots keeps that a few rows whatever the period.
-- 2. A statement that changed no row runs nothing: the batch statement of the payment path inserts and updates
--    payments and attempts in every batch, so half of its trigger calls came with empty transition tables.
-- 3. The card's brand and country are looked up once per card (an update's old and new row share theirs) and by
--    primary key whatever the planner thinks of payment_methods' size. A trigger's plan is made at its first call
--    in a session and kept: on a fresh database (as `npm run bench` makes) payment_methods is a page or two then,
--    the plan hashed a full scan of it, and kept scanning it as it grew by a row per payment.
--
-- The triggers themselves (035) stay: only their functions change. The migration holds the hourly tables in SHARE
-- mode while it rebuilds the daily ones (one grouped scan of each), so payments written meanwhile wait for it.
-- bench/rollup-cost.ts (`npm run bench:rollups`) measures what the triggers cost; figures in the README.

-- Written by the compaction only from now on: reset to the sum of the compacted (slot 0) hourly rows, so that the
-- rule of 1. holds from the start. The hourly tables are locked against the triggers and the compaction meanwhile.
LOCK TABLE analytics_hourly, analytics_breakdown_hourly, analytics_platform_hourly IN SHARE MODE;
TRUNCATE analytics_daily, analytics_breakdown_daily, analytics_platform_daily;
CREATE OR REPLACE FUNCTION analytics_fold_into_days(p_hourly regclass, p_daily regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  counters text[] := analytics_counters(p_hourly);
  keys text[] := analytics_keys(p_hourly);
BEGIN
  EXECUTE format('INSERT INTO %s AS r (%s, slot, %s) SELECT %s, 0, %s FROM %s WHERE slot = 0 GROUP BY %s '
      'ON CONFLICT (%s, slot) DO UPDATE SET %s',
    p_daily,
    array_to_string(array_replace(keys, 'hour', 'day'), ', '),
    array_to_string(counters, ', '),
    array_to_string(array_replace(keys, 'hour', 'date_trunc(''day'', hour, ''UTC'')'), ', '),
    (SELECT string_agg(format('sum(%I)', c), ', ') FROM unnest(counters) c),
    p_hourly,
    array_to_string(array_replace(keys, 'hour', 'date_trunc(''day'', hour, ''UTC'')'), ', '),
    array_to_string(array_replace(keys, 'hour', 'day'), ', '),
    (SELECT string_agg(format('%1$I = r.%1$I + excluded.%1$I', c), ', ') FROM unnest(counters) c));
END $$;
REVOKE ALL ON FUNCTION analytics_fold_into_days(regclass, regclass) FROM PUBLIC;
SELECT analytics_fold_into_days('analytics_hourly', 'analytics_daily');
SELECT analytics_fold_into_days('analytics_breakdown_hourly', 'analytics_breakdown_daily');
SELECT analytics_fold_into_days('analytics_platform_hourly', 'analytics_platform_daily');

-- The rows a reader adds to the daily ones: few, but found without reading the compacted ones.
CREATE INDEX analytics_hourly_uncompacted ON analytics_hourly (tenant_id, livemode, hour) WHERE slot <> 0;
CREATE INDEX analytics_breakdown_hourly_uncompacted ON analytics_breakdown_hourly (tenant_id, livemode, dimension, hour)
  WHERE slot <> 0;
CREATE INDEX analytics_platform_hourly_uncompacted ON analytics_platform_hourly (tenant_id, livemode, hour)
  WHERE slot <> 0;

CREATE FUNCTION pg_temp.analytics_upsert(p_table text, p_keys text, p_counters text[], p_source text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format(
    'INSERT INTO %1$I AS r (%2$s, slot, %3$s) SELECT %2$s, pg_backend_pid(), %3$s FROM (%4$s) g '
      'WHERE (%3$s) <> (%5$s) ORDER BY %2$s ON CONFLICT (%2$s, slot) DO UPDATE SET %6$s',
    p_table, p_keys, array_to_string(p_counters, ', '), p_source,
    array_to_string(array_fill('0'::text, ARRAY[cardinality(p_counters)]), ', '),
    (SELECT string_agg(format('%1$I = r.%1$I + excluded.%1$I', c), ', ') FROM unnest(p_counters) c))
$$;

CREATE FUNCTION pg_temp.analytics_sums(p_counters text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(format('sum(%1$I) AS %1$I', c), ', ') FROM unnest(p_counters) c
$$;

-- The trigger functions of 035, regenerated without the daily tables, with the early return of 2. and the lookup of
-- 3. (by primary key since seq scans are off; JIT off with them, since a plan costed with a disabled scan would
-- otherwise be compiled at every call).
DO $migration$
DECLARE
  payment_counters constant text[] := ARRAY['payments_count', 'payments_amount', 'approved_count', 'approved_amount',
    'declined_count', 'declined_amount', 'succeeded_count', 'canceled_count', 'captured_amount', 'fees'];
  breakdown_counters constant text[] := ARRAY['payments_count', 'payments_amount', 'approved_count', 'declined_count',
    'captured_amount'];
  refund_counters constant text[] := ARRAY['refunds_count', 'refunds_amount'];
  dispute_counters constant text[] := ARRAY['disputes_count', 'disputes_amount', 'disputes_won_count',
    'disputes_lost_count', 'disputes_lost_amount', 'fraud_disputes_count', 'fraud_disputes_amount'];
  attempt_counters constant text[] := ARRAY['attempts', 'succeeded', 'declined', 'errors', 'pending', 'completed',
    'latency_ms_sum'];
  hour_keys constant text := 'tenant_id, livemode, hour, currency';
  payments_body text;
  refunds_body text;
  disputes_body text;
  attempts_body text;
  reviews_body text;
  tables text[];
  bodies text[];
  events constant text[] := ARRAY['INSERT', 'UPDATE', 'DELETE'];
  sources constant text[] := ARRAY[
    'SELECT 1::bigint AS s, n.* FROM new_rows n',
    'SELECT 1::bigint AS s, n.* FROM new_rows n UNION ALL SELECT -1::bigint, o.* FROM old_rows o',
    'SELECT -1::bigint AS s, o.* FROM old_rows o'];
  -- An update's old and new rows are as many: one of them tells whether the statement changed any row.
  any_row constant text[] := ARRAY['new_rows', 'new_rows', 'old_rows'];
  fn text;
BEGIN
  payments_body := format($body$
    WITH changes AS (%%1$s),
    c AS (
      SELECT s, tenant_id, livemode, currency, date_trunc('hour', created_at, 'UTC') AS hour, amount,
        amount_received, coalesce(fee, 0) AS fee, status, payment_method_id,
        status IN ('requires_capture', 'succeeded') AS approved,
        analytics_payment_declined(status, last_payment_error) AS declined,
        CASE WHEN analytics_payment_declined(status, last_payment_error)
          THEN coalesce(analytics_decline_reason(last_payment_error), 'unknown') END AS decline_reason
      FROM changes
    ), h AS (
      SELECT tenant_id, livemode, hour, currency, sum(s) AS payments_count, sum(s * amount) AS payments_amount,
        coalesce(sum(s) FILTER (WHERE approved), 0) AS approved_count,
        coalesce(sum(s * amount) FILTER (WHERE approved), 0) AS approved_amount,
        coalesce(sum(s) FILTER (WHERE declined), 0) AS declined_count,
        coalesce(sum(s * amount) FILTER (WHERE declined), 0) AS declined_amount,
        coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0) AS succeeded_count,
        coalesce(sum(s) FILTER (WHERE status = 'canceled'), 0) AS canceled_count,
        sum(s * amount_received) AS captured_amount, sum(s * fee) AS fees
      FROM c GROUP BY tenant_id, livemode, hour, currency
    ), pm AS (
      SELECT id, brand, country FROM payment_methods WHERE id IN (SELECT payment_method_id FROM c)
    ), bd AS (
      SELECT c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value, sum(c.s) AS payments_count,
        sum(c.s * c.amount) AS payments_amount, coalesce(sum(c.s) FILTER (WHERE c.approved), 0) AS approved_count,
        coalesce(sum(c.s) FILTER (WHERE c.declined), 0) AS declined_count,
        sum(c.s * c.amount_received) AS captured_amount
      FROM c LEFT JOIN pm ON pm.id = c.payment_method_id
      CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
        ('decline_code', c.decline_reason)) d (dimension, value)
      WHERE d.value IS NOT NULL
      GROUP BY c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value
    ), ph AS (
      SELECT '__platform__' AS tenant_id, livemode, hour, currency, %2$s FROM h GROUP BY livemode, hour, currency
    ), w1 AS (%3$s), w2 AS (%4$s)
    %5$s;
  $body$,
    NULL,
    pg_temp.analytics_sums(breakdown_counters),
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, payment_counters, 'SELECT * FROM h'),
    pg_temp.analytics_upsert('analytics_breakdown_hourly', 'tenant_id, livemode, dimension, hour, currency, value',
      breakdown_counters, 'SELECT * FROM bd'),
    pg_temp.analytics_upsert('analytics_platform_hourly', hour_keys, breakdown_counters, 'SELECT * FROM ph'));

  refunds_body := format($body$
    WITH changes AS (%%1$s)
    %1$s;
  $body$,
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, refund_counters,
      'SELECT tenant_id, livemode, date_trunc(''hour'', created_at, ''UTC'') AS hour, currency, '
      'coalesce(sum(s) FILTER (WHERE status = ''succeeded''), 0) AS refunds_count, '
      'coalesce(sum(s * amount) FILTER (WHERE status = ''succeeded''), 0) AS refunds_amount '
      'FROM changes GROUP BY 1, 2, 3, 4'));

  disputes_body := format($body$
    WITH changes AS (%%1$s)
    %1$s;
  $body$,
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, dispute_counters,
      'SELECT tenant_id, livemode, date_trunc(''hour'', created_at, ''UTC'') AS hour, currency, '
      'sum(s) AS disputes_count, sum(s * amount) AS disputes_amount, '
      'coalesce(sum(s) FILTER (WHERE status = ''won''), 0) AS disputes_won_count, '
      'coalesce(sum(s) FILTER (WHERE status = ''lost''), 0) AS disputes_lost_count, '
      'coalesce(sum(s * amount) FILTER (WHERE status = ''lost''), 0) AS disputes_lost_amount, '
      'coalesce(sum(s) FILTER (WHERE reason = ''fraudulent''), 0) AS fraud_disputes_count, '
      'coalesce(sum(s * amount) FILTER (WHERE reason = ''fraudulent''), 0) AS fraud_disputes_amount '
      'FROM changes GROUP BY 1, 2, 3, 4'));

  attempts_body := format($body$
    WITH changes AS (%%1$s)
    %1$s;
  $body$,
    pg_temp.analytics_upsert('analytics_processor_hourly', 'tenant_id, livemode, hour, processor', attempt_counters,
      'SELECT ''__platform__'' AS tenant_id, livemode, date_trunc(''hour'', created_at, ''UTC'') AS hour, processor, '
      'sum(s) AS attempts, coalesce(sum(s) FILTER (WHERE status = ''succeeded''), 0) AS succeeded, '
      'coalesce(sum(s) FILTER (WHERE status = ''declined''), 0) AS declined, '
      'coalesce(sum(s) FILTER (WHERE status = ''error''), 0) AS errors, '
      'coalesce(sum(s) FILTER (WHERE completed_at IS NULL), 0) AS pending, '
      'coalesce(sum(s) FILTER (WHERE completed_at IS NOT NULL), 0) AS completed, '
      'coalesce(sum(s * analytics_latency_ms(created_at, completed_at)) FILTER (WHERE completed_at IS NOT NULL), 0) '
      'AS latency_ms_sum FROM changes GROUP BY 2, 3, 4'));

  reviews_body := format($body$
    WITH changes AS (%%1$s)
    %1$s;
  $body$,
    pg_temp.analytics_upsert('analytics_platform_reviews', 'tenant_id, livemode', ARRAY['open_reviews'],
      'SELECT ''__platform__'' AS tenant_id, livemode, coalesce(sum(s) FILTER (WHERE status = ''open''), 0) '
      'AS open_reviews FROM changes GROUP BY livemode'));

  tables := ARRAY['payments', 'refunds', 'disputes', 'payment_attempts', 'fraud_reviews'];
  bodies := ARRAY[payments_body, refunds_body, disputes_body, attempts_body, reviews_body];
  FOR t IN 1 .. array_length(tables, 1) LOOP
    FOR e IN 1 .. 3 LOOP
      fn := format('analytics_%s_%s', tables[t], lower(events[e]));
      EXECUTE format('CREATE OR REPLACE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
          'SET search_path = public SET enable_seqscan = off SET jit = off AS $fn$ BEGIN '
          'IF NOT EXISTS (SELECT FROM %s) THEN RETURN NULL; END IF; %s RETURN NULL; END $fn$',
        fn, any_row[e], format(bodies[t], sources[e]));
    END LOOP;
  END LOOP;
END $migration$;

DROP FUNCTION pg_temp.analytics_upsert(text, text, text[], text);
DROP FUNCTION pg_temp.analytics_sums(text[]);

-- 035's compaction, which now also adds what it folds of a table with a daily twin to that twin's slot 0 (1. above),
-- in the same statement: no reader sees a sum in both places or in neither. Daily rows of other slots are what 035's
-- triggers wrote in the moments around this migration: their hourly rows count, so they are dropped.
CREATE OR REPLACE FUNCTION worker_compact_analytics(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  tables constant text[] := ARRAY['analytics_hourly', 'analytics_breakdown_hourly', 'analytics_platform_hourly',
    'analytics_processor_hourly', 'analytics_platform_reviews'];
  twins constant text[] := ARRAY['analytics_daily', 'analytics_breakdown_daily', 'analytics_platform_daily', NULL,
    NULL];
  t text;
  counters text[];
  keys text[];
  sums text;
  updates text;
  bound text;
  to_days text;
  folded bigint := 0;
  n bigint;
BEGIN
  FOR i IN 1 .. array_length(tables, 1) LOOP
    t := tables[i];
    counters := analytics_counters(t::regclass);
    keys := analytics_keys(t::regclass);
    sums := (SELECT string_agg(format('sum(%I)', c), ', ') FROM unnest(counters) c);
    updates := (SELECT string_agg(format('%1$I = r.%1$I + excluded.%1$I', c), ', ') FROM unnest(counters) c);
    bound := CASE WHEN 'hour' = ANY (keys) THEN 'hour < $1' ELSE 'true' END;
    to_days := CASE WHEN twins[i] IS NULL THEN '' ELSE format(
      ', days AS (INSERT INTO %1$I AS r (%2$s, slot, %3$s) SELECT %4$s, 0, %5$s FROM moved GROUP BY %4$s '
        'ON CONFLICT (%2$s, slot) DO UPDATE SET %6$s)',
      twins[i], array_to_string(array_replace(keys, 'hour', 'day'), ', '), array_to_string(counters, ', '),
      array_to_string(array_replace(keys, 'hour', 'date_trunc(''day'', hour, ''UTC'')'), ', '), sums, updates) END;
    EXECUTE format('WITH moved AS (DELETE FROM %1$I WHERE slot <> 0 AND %2$s RETURNING *)%3$s '
        'INSERT INTO %1$I AS r (%4$s, slot, %5$s) SELECT %4$s, 0, %6$s FROM moved GROUP BY %4$s '
        'ON CONFLICT (%4$s, slot) DO UPDATE SET %7$s',
      t, bound, to_days, array_to_string(keys, ', '), array_to_string(counters, ', '), sums, updates)
      USING p_before;
    GET DIAGNOSTICS n = ROW_COUNT;
    folded := folded + n;
    IF twins[i] IS NOT NULL THEN
      EXECUTE format('DELETE FROM %I WHERE slot <> 0', twins[i]);
    END IF;
  END LOOP;
  RETURN folded;
END $$;
