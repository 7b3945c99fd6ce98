-- Issue 14: the fraud gauges (a worker loop, every 30 seconds) no longer read thirty days of payments. The volume
-- summed amount_received over every payment created in the window, and no index serves `created_at` on payments, so
-- each pass read the whole payments table: the largest recurring read on the platform, growing with every payment.
-- The same figure is kept by the analytics rollups (035, 040): the platform's hourly captured amounts, plus the
-- changes not folded into them yet, by the hour of each payment's creation. The fraud amount starts from the fraud
-- reports and fraudulent disputes (a payment of the window was reported or disputed within it), each payment then
-- found by its key. One statement: one snapshot of the rollups and the change log the fold empties.
CREATE OR REPLACE FUNCTION worker_fraud_metrics()
RETURNS TABLE (open_reviews bigint, fraud_amount numeric, volume numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  WITH since AS (SELECT now() - interval '30 days' AS at),
  fraudulent AS (
    SELECT payment_id FROM fraud_reports WHERE created_at > (SELECT at FROM since)
    UNION
    SELECT payment_id FROM disputes WHERE reason = 'fraudulent' AND created_at > (SELECT at FROM since)
  )
  SELECT
    (SELECT count(*) FROM fraud_reviews WHERE status = 'open'),
    (SELECT coalesce(sum(p.amount_received), 0) FROM fraudulent f JOIN payments p ON p.id = f.payment_id
      WHERE p.created_at > (SELECT at FROM since) AND p.amount_received > 0),
    (SELECT coalesce(sum(captured_amount), 0) FROM (
      SELECT captured_amount FROM analytics_platform_hourly
      WHERE tenant_id = '__platform__' AND livemode IN (false, true)
        AND hour >= date_trunc('hour', (SELECT at FROM since), 'UTC')
      UNION ALL
      SELECT captured_amount FROM analytics_changes_platform
      WHERE hour >= date_trunc('hour', (SELECT at FROM since), 'UTC')) volumes)
$$;
