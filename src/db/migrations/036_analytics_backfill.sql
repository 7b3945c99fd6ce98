-- Builds the rollups of 035 from the base tables, for the rows written before the triggers existed (and by the
-- analytics benchmark after a bulk load). The one statement per table uses the same definitions as the triggers
-- (analytics_payment_declined, analytics_decline_reason, analytics_latency_ms) and writes slot 0. The base tables
-- are locked against writes meanwhile, so no write is counted twice or missed.
CREATE FUNCTION analytics_backfill() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE payments, refunds, disputes, payment_attempts, fraud_reviews IN SHARE MODE;
  TRUNCATE analytics_hourly, analytics_breakdown_hourly, analytics_platform_hourly, analytics_processor_hourly,
    analytics_platform_reviews;

  CREATE TEMP TABLE analytics_backfill_payments ON COMMIT DROP AS
    SELECT p.tenant_id, p.livemode, date_trunc('hour', p.created_at, 'UTC') AS hour, p.currency, p.amount,
      p.amount_received, coalesce(p.fee, 0) AS fee, p.status, p.status IN ('requires_capture', 'succeeded') AS approved,
      analytics_payment_declined(p.status, p.last_payment_error) AS declined,
      CASE WHEN analytics_payment_declined(p.status, p.last_payment_error)
        THEN coalesce(analytics_decline_reason(p.last_payment_error), 'unknown') END AS decline_reason,
      coalesce(pm.brand, 'unknown') AS brand, coalesce(pm.country, 'unknown') AS country
    FROM payments p LEFT JOIN payment_methods pm ON pm.id = p.payment_method_id;

  INSERT INTO analytics_hourly (tenant_id, livemode, hour, currency, slot, payments_count, payments_amount,
    approved_count, approved_amount, declined_count, declined_amount, succeeded_count, canceled_count,
    captured_amount, fees)
  SELECT tenant_id, livemode, hour, currency, 0, count(*), sum(amount), count(*) FILTER (WHERE approved),
    coalesce(sum(amount) FILTER (WHERE approved), 0), count(*) FILTER (WHERE declined),
    coalesce(sum(amount) FILTER (WHERE declined), 0), count(*) FILTER (WHERE status = 'succeeded'),
    count(*) FILTER (WHERE status = 'canceled'), sum(amount_received), sum(fee)
  FROM analytics_backfill_payments GROUP BY 1, 2, 3, 4;

  INSERT INTO analytics_breakdown_hourly (tenant_id, livemode, dimension, hour, currency, value, slot,
    payments_count, payments_amount, approved_count, declined_count, captured_amount)
  SELECT b.tenant_id, b.livemode, d.dimension, b.hour, b.currency, d.value, 0, count(*), sum(b.amount),
    count(*) FILTER (WHERE b.approved), count(*) FILTER (WHERE b.declined), sum(b.amount_received)
  FROM analytics_backfill_payments b
  CROSS JOIN LATERAL (VALUES ('brand', b.brand), ('country', b.country), ('decline_code', b.decline_reason))
    d (dimension, value)
  WHERE d.value IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5, 6;

  INSERT INTO analytics_platform_hourly (tenant_id, livemode, hour, currency, slot, payments_count,
    payments_amount, approved_count, declined_count, captured_amount)
  SELECT '__platform__', livemode, hour, currency, 0, count(*), sum(amount), count(*) FILTER (WHERE approved),
    count(*) FILTER (WHERE declined), sum(amount_received)
  FROM analytics_backfill_payments GROUP BY 2, 3, 4;

  INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, refunds_count, refunds_amount)
  SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC'), currency, 0, count(*), sum(amount)
  FROM refunds WHERE status = 'succeeded' GROUP BY 1, 2, 3, 4
  ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
    refunds_count = r.refunds_count + excluded.refunds_count, refunds_amount = r.refunds_amount + excluded.refunds_amount;

  INSERT INTO analytics_hourly AS r (tenant_id, livemode, hour, currency, slot, disputes_count, disputes_amount,
    disputes_won_count, disputes_lost_count, disputes_lost_amount, fraud_disputes_count, fraud_disputes_amount)
  SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC'), currency, 0, count(*), sum(amount),
    count(*) FILTER (WHERE status = 'won'), count(*) FILTER (WHERE status = 'lost'),
    coalesce(sum(amount) FILTER (WHERE status = 'lost'), 0), count(*) FILTER (WHERE reason = 'fraudulent'),
    coalesce(sum(amount) FILTER (WHERE reason = 'fraudulent'), 0)
  FROM disputes GROUP BY 1, 2, 3, 4
  ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
    disputes_count = r.disputes_count + excluded.disputes_count,
    disputes_amount = r.disputes_amount + excluded.disputes_amount,
    disputes_won_count = r.disputes_won_count + excluded.disputes_won_count,
    disputes_lost_count = r.disputes_lost_count + excluded.disputes_lost_count,
    disputes_lost_amount = r.disputes_lost_amount + excluded.disputes_lost_amount,
    fraud_disputes_count = r.fraud_disputes_count + excluded.fraud_disputes_count,
    fraud_disputes_amount = r.fraud_disputes_amount + excluded.fraud_disputes_amount;

  INSERT INTO analytics_processor_hourly (tenant_id, livemode, hour, processor, slot, attempts, succeeded, declined,
    errors, pending, completed, latency_ms_sum)
  SELECT '__platform__', livemode, date_trunc('hour', created_at, 'UTC'), processor, 0, count(*),
    count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'declined'),
    count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE completed_at IS NULL),
    count(*) FILTER (WHERE completed_at IS NOT NULL),
    coalesce(sum(analytics_latency_ms(created_at, completed_at)) FILTER (WHERE completed_at IS NOT NULL), 0)
  FROM payment_attempts GROUP BY 2, 3, 4;

  INSERT INTO analytics_platform_reviews (tenant_id, livemode, slot, open_reviews)
  SELECT '__platform__', livemode, 0, count(*) FROM fraud_reviews WHERE status = 'open' GROUP BY 2;
END $$;
REVOKE ALL ON FUNCTION analytics_backfill() FROM PUBLIC;

SELECT analytics_backfill();

-- Folds the per-session slots of the hours before p_before into slot 0, so that a range read sums one row per
-- key for all but the last hours. Each table's fold is one statement (the deleted rows' sums added to slot 0):
-- the totals never change. The triggers never write slot 0 (no backend has pid 0), so it waits on no payment.
CREATE FUNCTION worker_compact_analytics(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  folded bigint := 0;
  n bigint;
BEGIN
  WITH moved AS (
    DELETE FROM analytics_hourly WHERE slot <> 0 AND hour < p_before RETURNING *
  ), summed AS (
    SELECT tenant_id, livemode, hour, currency, 0, sum(payments_count), sum(payments_amount), sum(approved_count),
      sum(approved_amount), sum(declined_count), sum(declined_amount), sum(succeeded_count), sum(canceled_count),
      sum(captured_amount), sum(fees), sum(refunds_count), sum(refunds_amount), sum(disputes_count),
      sum(disputes_amount), sum(disputes_won_count), sum(disputes_lost_count), sum(disputes_lost_amount),
      sum(fraud_disputes_count), sum(fraud_disputes_amount)
    FROM moved GROUP BY 1, 2, 3, 4
  )
  INSERT INTO analytics_hourly AS r SELECT * FROM summed
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
    fees = r.fees + excluded.fees,
    refunds_count = r.refunds_count + excluded.refunds_count,
    refunds_amount = r.refunds_amount + excluded.refunds_amount,
    disputes_count = r.disputes_count + excluded.disputes_count,
    disputes_amount = r.disputes_amount + excluded.disputes_amount,
    disputes_won_count = r.disputes_won_count + excluded.disputes_won_count,
    disputes_lost_count = r.disputes_lost_count + excluded.disputes_lost_count,
    disputes_lost_amount = r.disputes_lost_amount + excluded.disputes_lost_amount,
    fraud_disputes_count = r.fraud_disputes_count + excluded.fraud_disputes_count,
    fraud_disputes_amount = r.fraud_disputes_amount + excluded.fraud_disputes_amount;
  GET DIAGNOSTICS n = ROW_COUNT;
  folded := folded + n;

  WITH moved AS (
    DELETE FROM analytics_breakdown_hourly WHERE slot <> 0 AND hour < p_before RETURNING *
  )
  INSERT INTO analytics_breakdown_hourly AS r
  SELECT tenant_id, livemode, dimension, hour, currency, value, 0, sum(payments_count), sum(payments_amount),
    sum(approved_count), sum(declined_count), sum(captured_amount)
  FROM moved GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (tenant_id, livemode, dimension, hour, currency, value, slot) DO UPDATE SET
    payments_count = r.payments_count + excluded.payments_count,
    payments_amount = r.payments_amount + excluded.payments_amount,
    approved_count = r.approved_count + excluded.approved_count,
    declined_count = r.declined_count + excluded.declined_count,
    captured_amount = r.captured_amount + excluded.captured_amount;
  GET DIAGNOSTICS n = ROW_COUNT;
  folded := folded + n;

  WITH moved AS (
    DELETE FROM analytics_platform_hourly WHERE slot <> 0 AND hour < p_before RETURNING *
  )
  INSERT INTO analytics_platform_hourly AS r
  SELECT tenant_id, livemode, hour, currency, 0, sum(payments_count), sum(payments_amount), sum(approved_count),
    sum(declined_count), sum(captured_amount)
  FROM moved GROUP BY 1, 2, 3, 4
  ON CONFLICT (tenant_id, livemode, hour, currency, slot) DO UPDATE SET
    payments_count = r.payments_count + excluded.payments_count,
    payments_amount = r.payments_amount + excluded.payments_amount,
    approved_count = r.approved_count + excluded.approved_count,
    declined_count = r.declined_count + excluded.declined_count,
    captured_amount = r.captured_amount + excluded.captured_amount;
  GET DIAGNOSTICS n = ROW_COUNT;
  folded := folded + n;

  WITH moved AS (
    DELETE FROM analytics_processor_hourly WHERE slot <> 0 AND hour < p_before RETURNING *
  )
  INSERT INTO analytics_processor_hourly AS r
  SELECT tenant_id, livemode, hour, processor, 0, sum(attempts), sum(succeeded), sum(declined), sum(errors),
    sum(pending), sum(completed), sum(latency_ms_sum)
  FROM moved GROUP BY 1, 2, 3, 4
  ON CONFLICT (tenant_id, livemode, hour, processor, slot) DO UPDATE SET
    attempts = r.attempts + excluded.attempts,
    succeeded = r.succeeded + excluded.succeeded,
    declined = r.declined + excluded.declined,
    errors = r.errors + excluded.errors,
    pending = r.pending + excluded.pending,
    completed = r.completed + excluded.completed,
    latency_ms_sum = r.latency_ms_sum + excluded.latency_ms_sum;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN folded + n;
END $$;
