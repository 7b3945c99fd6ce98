-- A claim capped each endpoint at its whole concurrency, whatever the worker already had in flight for it: an
-- endpoint holding 3 of its 4 slots could be handed 4 more deliveries in one claim when several had become due
-- between two passes (a fifth request reached a hanging endpoint in test/webhook-delivery.test.ts, 2 runs in 10).
-- The worker now names the endpoints it has requests in flight for and how many slots each has free.
DROP FUNCTION worker_claim_webhook_deliveries(timestamptz, integer, integer, interval, text[]);
CREATE FUNCTION worker_claim_webhook_deliveries(
  p_now timestamptz, p_limit integer, p_per_endpoint integer, p_lease interval, p_skip text[],
  p_busy text[], p_free integer[])
RETURNS TABLE (id text, tenant_id text, livemode boolean, event_id text, endpoint_id text, attempts integer,
  url text, event_type text, event_object_id text, event_data json, event_request_id text,
  event_created_at timestamptz, event_sequence bigint, event_api_version text, tenant_api_version text,
  dispatch_seq integer)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH candidates AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
    JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'enabled'
    WHERE d.status = 'pending' AND d.next_attempt_at <= p_now AND d.endpoint_id <> ALL (p_skip)
    ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE OF d SKIP LOCKED
  ), chosen AS (
    SELECT c.id FROM (
      SELECT c.id, c.endpoint_id, row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at) AS n
      FROM candidates c) c
    LEFT JOIN unnest(p_busy, p_free) AS b(endpoint_id, free) ON b.endpoint_id = c.endpoint_id
    WHERE c.n <= coalesce(b.free, p_per_endpoint)
  ), claimed AS (
    UPDATE webhook_deliveries d SET next_attempt_at = p_now + p_lease, updated_at = now()
    FROM chosen WHERE d.id = chosen.id
    RETURNING d.id, d.tenant_id, d.livemode, d.event_id, d.endpoint_id, d.attempts, d.dispatch_seq
  )
  SELECT c.id, c.tenant_id, c.livemode, c.event_id, c.endpoint_id, c.attempts, w.url, e.type, e.object_id, e.data,
    e.request_id, e.created_at, e.sequence, e.api_version, t.api_version, c.dispatch_seq
  FROM claimed c JOIN webhook_endpoints w ON w.id = c.endpoint_id JOIN events e ON e.id = c.event_id
    JOIN tenants t ON t.id = c.tenant_id
$$;
-- The planner settings of migration 033, for the new signature.
ALTER FUNCTION worker_claim_webhook_deliveries(timestamptz, integer, integer, interval, text[], text[], integer[])
  SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off;
