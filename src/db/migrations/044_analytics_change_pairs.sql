-- An update is logged as one row, not two. Measured after 043 (npm run bench, rollups switched on and off within one
-- load): the rollups still took 3-6% of create+confirm's throughput, nearly all of it per logged row (its insert, its
-- WAL, the fold's scan, aggregation and delete of it, the vacuum), and a create+confirm logged six: the payment as
-- created (+1), as it was (-1) and is (+1) when confirmed, and the same three for its processor attempt. The update
-- triggers now write the old row's counted columns beside the new one's (old_*), so a create+confirm logs four; the
-- readers' views and the fold unfold each row into its +1 and -1 as before. An update that changed no counted column
-- (a refund's amount_refunded, metadata, an erasure's description) logs nothing at all.

ALTER TABLE analytics_payment_changes ADD COLUMN old_currency text, ADD COLUMN old_amount bigint,
  ADD COLUMN old_amount_received bigint, ADD COLUMN old_fee bigint, ADD COLUMN old_status text,
  ADD COLUMN old_payment_method_id text, ADD COLUMN old_last_payment_error jsonb;
ALTER TABLE analytics_attempt_changes ADD COLUMN old_status text, ADD COLUMN old_latency_ms bigint;

-- Row by row: an update's new row (s = 1) with its old one beside it (old_status not null). An insert has no old
-- row; a delete is its old row with s = -1, as in 040 and 043. hour, tenant and mode never change.
CREATE OR REPLACE FUNCTION analytics_payments_update() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $fn$
BEGIN
  INSERT INTO analytics_payment_changes (tenant_id, livemode, s, hour, currency, amount, amount_received, fee, status,
      payment_method_id, last_payment_error, old_currency, old_amount, old_amount_received, old_fee, old_status,
      old_payment_method_id, old_last_payment_error)
    SELECT n.tenant_id, n.livemode, 1, date_trunc('hour', n.created_at, 'UTC'), n.currency, n.amount,
      n.amount_received, n.fee, n.status, n.payment_method_id, n.last_payment_error, o.currency, o.amount,
      o.amount_received, o.fee, o.status, o.payment_method_id, o.last_payment_error
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.currency, n.amount, n.amount_received, n.fee, n.status, n.payment_method_id, n.last_payment_error)
      IS DISTINCT FROM (o.currency, o.amount, o.amount_received, o.fee, o.status, o.payment_method_id,
        o.last_payment_error);
  RETURN NULL;
END $fn$;

-- An attempt's processor and creation time never change (its ON CONFLICT sets neither): one hour and processor.
CREATE OR REPLACE FUNCTION analytics_payment_attempts_update() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $fn$
BEGIN
  INSERT INTO analytics_attempt_changes (tenant_id, livemode, s, hour, processor, status, latency_ms, old_status,
      old_latency_ms)
    SELECT '__platform__', n.livemode, 1, date_trunc('hour', n.created_at, 'UTC'), n.processor, n.status,
      CASE WHEN n.completed_at IS NOT NULL THEN analytics_latency_ms(n.created_at, n.completed_at) END, o.status,
      CASE WHEN o.completed_at IS NOT NULL THEN analytics_latency_ms(o.created_at, o.completed_at) END
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.status, n.completed_at) IS DISTINCT FROM (o.status, o.completed_at);
  RETURN NULL;
END $fn$;

-- The readers' and the fold's view of the payments log, row by row as before: a row's new side with its s, its old
-- side (if any) with -1. Same columns as 040's.
CREATE OR REPLACE VIEW analytics_changes WITH (security_invoker = true) AS
  SELECT c.tenant_id, c.livemode, c.hour, x.currency, x.s::bigint AS s, x.amount, x.amount_received,
    coalesce(x.fee, 0) AS fee, x.status, x.payment_method_id,
    x.status IN ('requires_capture', 'succeeded') AS approved,
    analytics_payment_declined(x.status, x.last_payment_error) AS declined,
    CASE WHEN analytics_payment_declined(x.status, x.last_payment_error)
      THEN coalesce(analytics_decline_reason(x.last_payment_error), 'unknown') END AS decline_reason
  FROM analytics_payment_changes c
  CROSS JOIN LATERAL (VALUES
    (c.s, c.currency, c.amount, c.amount_received, c.fee, c.status, c.payment_method_id, c.last_payment_error),
    (-1, c.old_currency, c.old_amount, c.old_amount_received, c.old_fee, c.old_status, c.old_payment_method_id,
      c.old_last_payment_error)
  ) x (s, currency, amount, amount_received, fee, status, payment_method_id, last_payment_error)
  WHERE x.status IS NOT NULL;

CREATE OR REPLACE VIEW analytics_attempt_changes_hourly WITH (security_invoker = true) AS
  SELECT c.tenant_id, c.livemode, c.hour, c.processor, sum(x.s)::bigint AS attempts,
    coalesce(sum(x.s) FILTER (WHERE x.status = 'succeeded'), 0)::bigint AS succeeded,
    coalesce(sum(x.s) FILTER (WHERE x.status = 'declined'), 0)::bigint AS declined,
    coalesce(sum(x.s) FILTER (WHERE x.status = 'error'), 0)::bigint AS errors,
    coalesce(sum(x.s) FILTER (WHERE x.latency_ms IS NULL), 0)::bigint AS pending,
    coalesce(sum(x.s) FILTER (WHERE x.latency_ms IS NOT NULL), 0)::bigint AS completed,
    coalesce(sum(x.s * x.latency_ms), 0)::bigint AS latency_ms_sum,
    count(*) AS changes
  FROM analytics_attempt_changes c
  CROSS JOIN LATERAL (VALUES (c.s, c.status, c.latency_ms), (-1, c.old_status, c.old_latency_ms))
    x (s, status, latency_ms)
  WHERE x.status IS NOT NULL
  GROUP BY c.tenant_id, c.livemode, c.hour, c.processor;
