-- Issue 13: analytics read from hourly rollups kept by the writes themselves, never from scans of the payments
-- table. Every table below is a sum of contributions: a payment (refund, dispute, attempt, review) contributes
-- its current state to the row of its key, and a write moves that contribution, -1 times the old row and +1
-- times the new one, in the same statement and transaction as the write. So the rollups are exact whatever the
-- interleaving of writers, and a crash can lose neither side of it.
--
-- The contributions are written by statement-level AFTER triggers with transition tables: a micro-batch of
-- payments is one statement, so its whole batch is folded into one grouped upsert per rollup table.
--
-- `slot` is the writing session's backend pid: two sessions never share a rollup row, so concurrent batches of
-- the same tenant and hour never wait on each other's row locks (nor deadlock on them). Readers sum over slots;
-- analytics_compact() folds the slots of past hours into slot 0, the slot the backfill writes.
--
-- Hours are UTC (date_trunc at 'UTC', whatever the session's TimeZone).

-- Per tenant, mode, hour (of the payment's, refund's or dispute's creation) and currency.
CREATE TABLE analytics_hourly (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  hour timestamptz NOT NULL,
  currency text NOT NULL,
  slot integer NOT NULL,
  payments_count bigint NOT NULL DEFAULT 0,
  payments_amount bigint NOT NULL DEFAULT 0,
  -- Authorized and not given back: requires_capture or succeeded.
  approved_count bigint NOT NULL DEFAULT 0,
  approved_amount bigint NOT NULL DEFAULT 0,
  -- The last authorization failed and nothing succeeded since: requires_payment_method with an error.
  declined_count bigint NOT NULL DEFAULT 0,
  declined_amount bigint NOT NULL DEFAULT 0,
  succeeded_count bigint NOT NULL DEFAULT 0,
  canceled_count bigint NOT NULL DEFAULT 0,
  captured_amount bigint NOT NULL DEFAULT 0,
  fees bigint NOT NULL DEFAULT 0,
  refunds_count bigint NOT NULL DEFAULT 0,
  refunds_amount bigint NOT NULL DEFAULT 0,
  disputes_count bigint NOT NULL DEFAULT 0,
  disputes_amount bigint NOT NULL DEFAULT 0,
  disputes_won_count bigint NOT NULL DEFAULT 0,
  disputes_lost_count bigint NOT NULL DEFAULT 0,
  disputes_lost_amount bigint NOT NULL DEFAULT 0,
  fraud_disputes_count bigint NOT NULL DEFAULT 0,
  fraud_disputes_amount bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, hour, currency, slot)
);

-- The same by UTC day: a range of months reads a row per day, not 24, taking whole days from here and the hours at
-- either end from the hourly table. Every daily table is kept by the same triggers as its hourly twin.
CREATE TABLE analytics_daily (LIKE analytics_hourly INCLUDING DEFAULTS);
ALTER TABLE analytics_daily RENAME COLUMN hour TO day;
ALTER TABLE analytics_daily ADD PRIMARY KEY (tenant_id, livemode, day, currency, slot);

-- Payments by card brand, card country and decline reason (declined payments only).
CREATE TABLE analytics_breakdown_hourly (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  dimension text NOT NULL CHECK (dimension IN ('brand', 'country', 'decline_code')),
  hour timestamptz NOT NULL,
  currency text NOT NULL,
  value text NOT NULL,
  slot integer NOT NULL,
  payments_count bigint NOT NULL DEFAULT 0,
  payments_amount bigint NOT NULL DEFAULT 0,
  approved_count bigint NOT NULL DEFAULT 0,
  declined_count bigint NOT NULL DEFAULT 0,
  captured_amount bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, dimension, hour, currency, value, slot)
);

-- The same by UTC day, so that a breakdown over months reads a row per day and value, not 24: long ranges read
-- whole days here and the hours at either end from the hourly table.
CREATE TABLE analytics_breakdown_daily (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  dimension text NOT NULL CHECK (dimension IN ('brand', 'country', 'decline_code')),
  day timestamptz NOT NULL,
  currency text NOT NULL,
  value text NOT NULL,
  slot integer NOT NULL,
  payments_count bigint NOT NULL DEFAULT 0,
  payments_amount bigint NOT NULL DEFAULT 0,
  approved_count bigint NOT NULL DEFAULT 0,
  declined_count bigint NOT NULL DEFAULT 0,
  captured_amount bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, dimension, day, currency, value, slot)
);

-- The operator's view across tenants: rows of the platform's own scope ('__platform__'), which no tenant's key
-- or session can select, written only by the (SECURITY DEFINER) triggers.
CREATE TABLE analytics_platform_hourly (
  tenant_id text NOT NULL CHECK (tenant_id = '__platform__'),
  livemode boolean NOT NULL,
  hour timestamptz NOT NULL,
  currency text NOT NULL,
  slot integer NOT NULL,
  payments_count bigint NOT NULL DEFAULT 0,
  payments_amount bigint NOT NULL DEFAULT 0,
  approved_count bigint NOT NULL DEFAULT 0,
  declined_count bigint NOT NULL DEFAULT 0,
  captured_amount bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, hour, currency, slot)
);

CREATE TABLE analytics_platform_daily (LIKE analytics_platform_hourly INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE analytics_platform_daily RENAME COLUMN hour TO day;
ALTER TABLE analytics_platform_daily ADD PRIMARY KEY (tenant_id, livemode, day, currency, slot);

-- Processor health from payment attempts, by the hour the attempt began: outcomes and the latency of those
-- that completed.
CREATE TABLE analytics_processor_hourly (
  tenant_id text NOT NULL CHECK (tenant_id = '__platform__'),
  livemode boolean NOT NULL,
  hour timestamptz NOT NULL,
  processor text NOT NULL,
  slot integer NOT NULL,
  attempts bigint NOT NULL DEFAULT 0,
  succeeded bigint NOT NULL DEFAULT 0,
  declined bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  pending bigint NOT NULL DEFAULT 0,
  completed bigint NOT NULL DEFAULT 0,
  latency_ms_sum bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, hour, processor, slot)
);

-- Open fraud reviews across tenants (the operator's review backlog).
CREATE TABLE analytics_platform_reviews (
  tenant_id text NOT NULL CHECK (tenant_id = '__platform__'),
  livemode boolean NOT NULL,
  slot integer NOT NULL,
  open_reviews bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, livemode, slot)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['analytics_hourly', 'analytics_daily', 'analytics_breakdown_hourly',
    'analytics_breakdown_daily', 'analytics_platform_hourly', 'analytics_platform_daily',
    'analytics_processor_hourly', 'analytics_platform_reviews'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

-- What a payment row contributes. One definition, used by the triggers and the backfill alike.
CREATE FUNCTION analytics_payment_declined(p_status text, p_error jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_status = 'requires_payment_method' AND p_error IS NOT NULL
$$;

CREATE FUNCTION analytics_decline_reason(p_error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(p_error->>'decline_code', p_error->>'code')
$$;

CREATE FUNCTION analytics_latency_ms(p_started timestamptz, p_completed timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT round(extract(epoch FROM p_completed - p_started) * 1000)::bigint
$$;

-- The trigger functions are generated per table and event, from grouped sources over `changes`: the statement's
-- new rows (+1), old rows (-1) or both. analytics_upsert writes one source into one rollup table: the sum of each
-- group added to the writing session's row, groups whose deltas cancel out (an update that changed nothing counted,
-- such as metadata or amount_refunded) skipped, rows taken in key order (no two sessions share a row anyway).
-- A PL/pgSQL statement is planned once per session and kept, so each batch pays for executing them only.
CREATE FUNCTION pg_temp.analytics_upsert(p_table text, p_keys text, p_counters text[], p_source text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format(
    'INSERT INTO %1$I AS r (%2$s, slot, %3$s) SELECT %2$s, pg_backend_pid(), %3$s FROM (%4$s) g '
      'WHERE (%3$s) <> (%5$s) ORDER BY %2$s ON CONFLICT (%2$s, slot) DO UPDATE SET %6$s',
    p_table, p_keys, array_to_string(p_counters, ', '), p_source,
    array_to_string(array_fill('0'::text, ARRAY[cardinality(p_counters)]), ', '),
    (SELECT string_agg(format('%1$I = r.%1$I + excluded.%1$I', c), ', ') FROM unnest(p_counters) c))
$$;

-- `sum(c) AS c` for each counter: a grouped source regrouped (by day, or across tenants).
CREATE FUNCTION pg_temp.analytics_sums(p_counters text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(format('sum(%1$I) AS %1$I', c), ', ') FROM unnest(p_counters) c
$$;

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
  day_keys constant text := 'tenant_id, livemode, day, currency';
  by_day constant text := 'tenant_id, livemode, date_trunc(''day'', hour, ''UTC'') AS day, currency';
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
  referencing constant text[] := ARRAY['NEW TABLE AS new_rows', 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
    'OLD TABLE AS old_rows'];
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
    ), bd AS (
      SELECT c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value, sum(c.s) AS payments_count,
        sum(c.s * c.amount) AS payments_amount, coalesce(sum(c.s) FILTER (WHERE c.approved), 0) AS approved_count,
        coalesce(sum(c.s) FILTER (WHERE c.declined), 0) AS declined_count,
        sum(c.s * c.amount_received) AS captured_amount
      FROM c LEFT JOIN payment_methods pm ON pm.id = c.payment_method_id
      CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
        ('decline_code', c.decline_reason)) d (dimension, value)
      WHERE d.value IS NOT NULL
      GROUP BY c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value
    ), ph AS (
      SELECT '__platform__' AS tenant_id, livemode, hour, currency, %2$s FROM h GROUP BY livemode, hour, currency
    ), w1 AS (%3$s), w2 AS (%4$s), w3 AS (%5$s), w4 AS (%6$s), w5 AS (%7$s)
    %8$s;
  $body$,
    NULL,
    pg_temp.analytics_sums(breakdown_counters),
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, payment_counters, 'SELECT * FROM h'),
    pg_temp.analytics_upsert('analytics_daily', day_keys, payment_counters,
      format('SELECT %s, %s FROM h GROUP BY 1, 2, 3, 4', by_day, pg_temp.analytics_sums(payment_counters))),
    pg_temp.analytics_upsert('analytics_breakdown_hourly', 'tenant_id, livemode, dimension, hour, currency, value',
      breakdown_counters, 'SELECT * FROM bd'),
    pg_temp.analytics_upsert('analytics_breakdown_daily', 'tenant_id, livemode, dimension, day, currency, value',
      breakdown_counters,
      format('SELECT tenant_id, livemode, dimension, date_trunc(''day'', hour, ''UTC'') AS day, currency, value, %s '
        'FROM bd GROUP BY 1, 2, 3, 4, 5, 6', pg_temp.analytics_sums(breakdown_counters))),
    pg_temp.analytics_upsert('analytics_platform_hourly', hour_keys, breakdown_counters, 'SELECT * FROM ph'),
    pg_temp.analytics_upsert('analytics_platform_daily', day_keys, breakdown_counters,
      format('SELECT %s, %s FROM ph GROUP BY 1, 2, 3, 4', by_day, pg_temp.analytics_sums(breakdown_counters))));

  refunds_body := format($body$
    WITH changes AS (%%1$s),
    h AS (
      SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency,
        coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0) AS refunds_count,
        coalesce(sum(s * amount) FILTER (WHERE status = 'succeeded'), 0) AS refunds_amount
      FROM changes GROUP BY 1, 2, 3, 4
    ), w1 AS (%1$s)
    %2$s;
  $body$,
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, refund_counters, 'SELECT * FROM h'),
    pg_temp.analytics_upsert('analytics_daily', day_keys, refund_counters,
      format('SELECT %s, %s FROM h GROUP BY 1, 2, 3, 4', by_day, pg_temp.analytics_sums(refund_counters))));

  disputes_body := format($body$
    WITH changes AS (%%1$s),
    h AS (
      SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency,
        sum(s) AS disputes_count, sum(s * amount) AS disputes_amount,
        coalesce(sum(s) FILTER (WHERE status = 'won'), 0) AS disputes_won_count,
        coalesce(sum(s) FILTER (WHERE status = 'lost'), 0) AS disputes_lost_count,
        coalesce(sum(s * amount) FILTER (WHERE status = 'lost'), 0) AS disputes_lost_amount,
        coalesce(sum(s) FILTER (WHERE reason = 'fraudulent'), 0) AS fraud_disputes_count,
        coalesce(sum(s * amount) FILTER (WHERE reason = 'fraudulent'), 0) AS fraud_disputes_amount
      FROM changes GROUP BY 1, 2, 3, 4
    ), w1 AS (%1$s)
    %2$s;
  $body$,
    pg_temp.analytics_upsert('analytics_hourly', hour_keys, dispute_counters, 'SELECT * FROM h'),
    pg_temp.analytics_upsert('analytics_daily', day_keys, dispute_counters,
      format('SELECT %s, %s FROM h GROUP BY 1, 2, 3, 4', by_day, pg_temp.analytics_sums(dispute_counters))));

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
      -- SECURITY DEFINER: the platform's rows lie outside any tenant's scope, and a rollup must not depend on
      -- the scope the writer happened to set.
      EXECUTE format('CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $fn$ BEGIN %s RETURN NULL; END $fn$',
        fn, format(bodies[t], sources[e]));
      EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %I()',
        fn, events[e], tables[t], referencing[e], fn);
    END LOOP;
  END LOOP;
END $migration$;

DROP FUNCTION pg_temp.analytics_upsert(text, text, text[], text);
DROP FUNCTION pg_temp.analytics_sums(text[]);
