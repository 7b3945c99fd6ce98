-- The counters of a rollup table (its bigint columns) and its key (the others but slot), from the catalog: the
-- backfill and the compaction below treat every rollup table alike.
CREATE FUNCTION analytics_counters(p_table regclass) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped AND atttypid = 'bigint'::regtype
$$;
CREATE FUNCTION analytics_keys(p_table regclass) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped AND atttypid <> 'bigint'::regtype AND attname <> 'slot'
$$;

-- Adds an hourly table's rows, summed by UTC day, into its daily twin's slot 0.
CREATE FUNCTION analytics_fold_into_days(p_hourly regclass, p_daily regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  counters text[] := analytics_counters(p_hourly);
  keys text[] := analytics_keys(p_hourly);
BEGIN
  EXECUTE format('INSERT INTO %s AS r (%s, slot, %s) SELECT %s, 0, %s FROM %s GROUP BY %s '
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

-- Builds the rollups of 035 from the base tables, for the rows written before the triggers existed (and by the
-- analytics benchmark after a bulk load). The one statement per table uses the same definitions as the triggers
-- (analytics_payment_declined, analytics_decline_reason, analytics_latency_ms) and writes slot 0. The base tables
-- are locked against writes meanwhile, so no write is counted twice or missed.
CREATE FUNCTION analytics_backfill() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE payments, refunds, disputes, payment_attempts, fraud_reviews IN SHARE MODE;
  TRUNCATE analytics_hourly, analytics_daily, analytics_breakdown_hourly, analytics_breakdown_daily,
    analytics_platform_hourly, analytics_platform_daily, analytics_processor_hourly, analytics_platform_reviews;

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

  -- Each daily table is its hourly twin summed by UTC day.
  PERFORM analytics_fold_into_days('analytics_hourly', 'analytics_daily');
  PERFORM analytics_fold_into_days('analytics_breakdown_hourly', 'analytics_breakdown_daily');
  PERFORM analytics_fold_into_days('analytics_platform_hourly', 'analytics_platform_daily');
END $$;
REVOKE ALL ON FUNCTION analytics_backfill() FROM PUBLIC;
REVOKE ALL ON FUNCTION analytics_fold_into_days(regclass, regclass) FROM PUBLIC;

SELECT analytics_backfill();

-- Folds the per-session slots of the hours (days) before p_before into slot 0, so that a range read sums one row
-- per key for all but the latest. Each table's fold is one statement (the deleted rows' sums added to slot 0), so
-- no total ever changes. The triggers never write slot 0 (no backend has pid 0): it waits on no payment.
CREATE FUNCTION worker_compact_analytics(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  tables constant text[] := ARRAY['analytics_hourly', 'analytics_daily', 'analytics_breakdown_hourly',
    'analytics_breakdown_daily', 'analytics_platform_hourly', 'analytics_platform_daily', 'analytics_processor_hourly',
    'analytics_platform_reviews'];
  t text;
  counters text[];
  keys text[];
  bound text;
  folded bigint := 0;
  n bigint;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    counters := analytics_counters(t::regclass);
    keys := analytics_keys(t::regclass);
    bound := CASE WHEN 'hour' = ANY (keys) THEN 'hour < $1'
      WHEN 'day' = ANY (keys) THEN 'day < date_trunc(''day'', $1, ''UTC'')' ELSE 'true' END;
    EXECUTE format('WITH moved AS (DELETE FROM %1$I WHERE slot <> 0 AND %2$s RETURNING *) '
        'INSERT INTO %1$I AS r (%3$s, slot, %4$s) SELECT %3$s, 0, %5$s FROM moved GROUP BY %3$s '
        'ON CONFLICT (%3$s, slot) DO UPDATE SET %6$s',
      t, bound, array_to_string(keys, ', '), array_to_string(counters, ', '),
      (SELECT string_agg(format('sum(%I)', c), ', ') FROM unnest(counters) c),
      (SELECT string_agg(format('%1$I = r.%1$I + excluded.%1$I', c), ', ') FROM unnest(counters) c))
      USING p_before;
    GET DIAGNOSTICS n = ROW_COUNT;
    folded := folded + n;
  END LOOP;
  RETURN folded;
END $$;
