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
  FOREACH t IN ARRAY ARRAY['analytics_hourly', 'analytics_breakdown_hourly', 'analytics_platform_hourly',
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

-- The trigger functions, generated per table and event: the same grouped upserts over `changes`, which is the
-- statement's new rows (+1), old rows (-1) or both. A PL/pgSQL statement is planned once per session and kept,
-- so each batch pays for executing them only. Groups whose deltas cancel out (an update that changed nothing
-- counted, such as metadata or amount_refunded) write nothing.
DO $migration$
DECLARE
  payments_body constant text := $body$
    WITH changes AS (%1$s),
    c AS (
      SELECT s, tenant_id, livemode, currency, date_trunc('hour', created_at, 'UTC') AS hour, amount,
        amount_received, coalesce(fee, 0) AS fee, status IN ('requires_capture', 'succeeded') AS approved,
        analytics_payment_declined(status, last_payment_error) AS declined, status, payment_method_id,
        CASE WHEN analytics_payment_declined(status, last_payment_error)
          THEN coalesce(analytics_decline_reason(last_payment_error), 'unknown') END AS decline_reason
      FROM changes
    ), hourly AS (
      INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count, payments_amount,
        approved_count, approved_amount, declined_count, declined_amount, succeeded_count, canceled_count,
        captured_amount, fees)
      SELECT * FROM (
        SELECT tenant_id, livemode, hour, currency, pg_backend_pid(), sum(s), sum(s * amount),
          coalesce(sum(s) FILTER (WHERE approved), 0), coalesce(sum(s * amount) FILTER (WHERE approved), 0),
          coalesce(sum(s) FILTER (WHERE declined), 0), coalesce(sum(s * amount) FILTER (WHERE declined), 0),
          coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0), coalesce(sum(s) FILTER (WHERE status = 'canceled'), 0),
          sum(s * amount_received), sum(s * fee)
        FROM c GROUP BY tenant_id, livemode, hour, currency ORDER BY tenant_id, livemode, hour, currency
      ) g (tenant_id, livemode, hour, currency, slot, a, b, d, e, f, h, i, j, k, l)
      WHERE (a, b, d, e, f, h, i, j, k, l) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
      ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
        payments_count = r.payments_count + excluded.payments_count,
        payments_amount = r.payments_amount + excluded.payments_amount,
        approved_count = r.approved_count + excluded.approved_count,
        approved_amount = r.approved_amount + excluded.approved_amount,
        declined_count = r.declined_count + excluded.declined_count,
        declined_amount = r.declined_amount + excluded.declined_amount,
        succeeded_count = r.succeeded_count + excluded.succeeded_count,
        canceled_count = r.canceled_count + excluded.canceled_count,
        captured_amount = r.captured_amount + excluded.captured_amount,
        fees = r.fees + excluded.fees
    ), breakdown AS (
      INSERT INTO analytics_breakdown_hourly AS r (tenant_id, livemode, dimension, hour, currency, value, slot,
        payments_count, payments_amount, approved_count, declined_count, captured_amount)
      SELECT * FROM (
        SELECT c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value, pg_backend_pid(), sum(c.s),
          sum(c.s * c.amount), coalesce(sum(c.s) FILTER (WHERE c.approved), 0),
          coalesce(sum(c.s) FILTER (WHERE c.declined), 0), sum(c.s * c.amount_received)
        FROM c LEFT JOIN payment_methods pm ON pm.id = c.payment_method_id
        CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
          ('decline_code', c.decline_reason)) d (dimension, value)
        WHERE d.value IS NOT NULL
        GROUP BY c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value
        ORDER BY c.tenant_id, c.livemode, d.dimension, c.hour, c.currency, d.value
      ) g (tenant_id, livemode, dimension, hour, currency, value, slot, a, b, d, e, f)
      WHERE (a, b, d, e, f) <> (0, 0, 0, 0, 0)
      ON CONFLICT (tenant_id, livemode, dimension, hour, currency, value, slot) DO UPDATE SET
        payments_count = r.payments_count + excluded.payments_count,
        payments_amount = r.payments_amount + excluded.payments_amount,
        approved_count = r.approved_count + excluded.approved_count,
        declined_count = r.declined_count + excluded.declined_count,
        captured_amount = r.captured_amount + excluded.captured_amount
    )
    INSERT INTO analytics_platform_hourly AS r (tenant_id, livemode, hour, currency, slot, payments_count,
      payments_amount, approved_count, declined_count, captured_amount)
    SELECT * FROM (
      SELECT '__platform__', livemode, hour, currency, pg_backend_pid(), sum(s), sum(s * amount),
        coalesce(sum(s) FILTER (WHERE approved), 0), coalesce(sum(s) FILTER (WHERE declined), 0),
        sum(s * amount_received)
      FROM c GROUP BY livemode, hour, currency ORDER BY livemode, hour, currency
    ) g (tenant_id, livemode, hour, currency, slot, a, b, d, e, f)
    WHERE (a, b, d, e, f) <> (0, 0, 0, 0, 0)
    ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
      payments_count = r.payments_count + excluded.payments_count,
      payments_amount = r.payments_amount + excluded.payments_amount,
      approved_count = r.approved_count + excluded.approved_count,
      declined_count = r.declined_count + excluded.declined_count,
      captured_amount = r.captured_amount + excluded.captured_amount;
  $body$;
  refunds_body constant text := $body$
    INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, refunds_count, refunds_amount)
    SELECT * FROM (
      SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency, pg_backend_pid(),
        coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0),
        coalesce(sum(s * amount) FILTER (WHERE status = 'succeeded'), 0)
      FROM (%1$s) changes GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ) g (tenant_id, livemode, hour, currency, slot, a, b)
    WHERE (a, b) <> (0, 0)
    ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
      refunds_count = r.refunds_count + excluded.refunds_count,
      refunds_amount = r.refunds_amount + excluded.refunds_amount;
  $body$;
  disputes_body constant text := $body$
    INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, disputes_count, disputes_amount,
      disputes_won_count, disputes_lost_count, disputes_lost_amount, fraud_disputes_count, fraud_disputes_amount)
    SELECT * FROM (
      SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency, pg_backend_pid(),
        sum(s), sum(s * amount), coalesce(sum(s) FILTER (WHERE status = 'won'), 0),
        coalesce(sum(s) FILTER (WHERE status = 'lost'), 0), coalesce(sum(s * amount) FILTER (WHERE status = 'lost'), 0),
        coalesce(sum(s) FILTER (WHERE reason = 'fraudulent'), 0),
        coalesce(sum(s * amount) FILTER (WHERE reason = 'fraudulent'), 0)
      FROM (%1$s) changes GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ) g (tenant_id, livemode, hour, currency, slot, a, b, d, e, f, h, i)
    WHERE (a, b, d, e, f, h, i) <> (0, 0, 0, 0, 0, 0, 0)
    ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
      disputes_count = r.disputes_count + excluded.disputes_count,
      disputes_amount = r.disputes_amount + excluded.disputes_amount,
      disputes_won_count = r.disputes_won_count + excluded.disputes_won_count,
      disputes_lost_count = r.disputes_lost_count + excluded.disputes_lost_count,
      disputes_lost_amount = r.disputes_lost_amount + excluded.disputes_lost_amount,
      fraud_disputes_count = r.fraud_disputes_count + excluded.fraud_disputes_count,
      fraud_disputes_amount = r.fraud_disputes_amount + excluded.fraud_disputes_amount;
  $body$;
  attempts_body constant text := $body$
    INSERT INTO analytics_processor_hourly AS r (tenant_id, livemode, hour, processor, slot, attempts, succeeded,
      declined, errors, pending, completed, latency_ms_sum)
    SELECT * FROM (
      SELECT '__platform__', livemode, date_trunc('hour', created_at, 'UTC') AS hour, processor, pg_backend_pid(),
        sum(s), coalesce(sum(s) FILTER (WHERE status = 'succeeded'), 0),
        coalesce(sum(s) FILTER (WHERE status = 'declined'), 0), coalesce(sum(s) FILTER (WHERE status = 'error'), 0),
        coalesce(sum(s) FILTER (WHERE completed_at IS NULL), 0),
        coalesce(sum(s) FILTER (WHERE completed_at IS NOT NULL), 0),
        coalesce(sum(s * analytics_latency_ms(created_at, completed_at)) FILTER (WHERE completed_at IS NOT NULL), 0)
      FROM (%1$s) changes GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ) g (tenant_id, livemode, hour, processor, slot, a, b, d, e, f, h, i)
    WHERE (a, b, d, e, f, h, i) <> (0, 0, 0, 0, 0, 0, 0)
    ON CONFLICT (tenant_id, livemode, hour, processor, slot) DO UPDATE SET
      attempts = r.attempts + excluded.attempts,
      succeeded = r.succeeded + excluded.succeeded,
      declined = r.declined + excluded.declined,
      errors = r.errors + excluded.errors,
      pending = r.pending + excluded.pending,
      completed = r.completed + excluded.completed,
      latency_ms_sum = r.latency_ms_sum + excluded.latency_ms_sum;
  $body$;
  reviews_body constant text := $body$
    INSERT INTO analytics_platform_reviews AS r (tenant_id, livemode, slot, open_reviews)
    SELECT * FROM (
      SELECT '__platform__', livemode, pg_backend_pid(), coalesce(sum(s) FILTER (WHERE status = 'open'), 0)
      FROM (%1$s) changes GROUP BY livemode ORDER BY livemode
    ) g (tenant_id, livemode, slot, a)
    WHERE a <> 0
    ON CONFLICT (tenant_id, livemode, slot) DO UPDATE SET open_reviews = r.open_reviews + excluded.open_reviews;
  $body$;
  tables constant text[] := ARRAY['payments', 'refunds', 'disputes', 'payment_attempts', 'fraud_reviews'];
  bodies constant text[] := ARRAY[payments_body, refunds_body, disputes_body, attempts_body, reviews_body];
  events constant text[] := ARRAY['INSERT', 'UPDATE', 'DELETE'];
  sources constant text[] := ARRAY[
    'SELECT 1::bigint AS s, n.* FROM new_rows n',
    'SELECT 1::bigint AS s, n.* FROM new_rows n UNION ALL SELECT -1::bigint, o.* FROM old_rows o',
    'SELECT -1::bigint AS s, o.* FROM old_rows o'];
  referencing constant text[] := ARRAY['NEW TABLE AS new_rows', 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
    'OLD TABLE AS old_rows'];
  fn text;
BEGIN
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
