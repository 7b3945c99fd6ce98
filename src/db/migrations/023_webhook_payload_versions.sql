-- Claims due deliveries (pushing them out by a lease) with what a worker needs to send them: the event as the API
-- shows it (with its per-object sequence, 016) in the API version its tenant is pinned to (022). Endpoints the
-- worker cannot take more of right now (all slots busy, circuit open) are skipped, so their backlog never stands in
-- front of another endpoint's. (It lives here, after the columns it reads exist.)
CREATE FUNCTION worker_claim_webhook_deliveries(
  p_now timestamptz, p_limit integer, p_per_endpoint integer, p_lease interval, p_skip text[])
RETURNS TABLE (id text, tenant_id text, livemode boolean, event_id text, endpoint_id text, attempts integer,
  url text, event_type text, event_object_id text, event_data json, event_request_id text,
  event_created_at timestamptz, event_sequence bigint, event_api_version text, tenant_api_version text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH candidates AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
    JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'enabled'
    WHERE d.status = 'pending' AND d.next_attempt_at <= p_now AND d.endpoint_id <> ALL (p_skip)
    ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE OF d SKIP LOCKED
  ), chosen AS (
    SELECT c.id FROM (
      SELECT c.id, c.next_attempt_at, row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at) AS n
      FROM candidates c) c
    WHERE c.n <= p_per_endpoint
  ), claimed AS (
    UPDATE webhook_deliveries d SET next_attempt_at = p_now + p_lease, updated_at = now()
    FROM chosen WHERE d.id = chosen.id
    RETURNING d.id, d.tenant_id, d.livemode, d.event_id, d.endpoint_id, d.attempts
  )
  SELECT c.id, c.tenant_id, c.livemode, c.event_id, c.endpoint_id, c.attempts, w.url, e.type, e.object_id, e.data,
    e.request_id, e.created_at, e.sequence, e.api_version, t.api_version
  FROM claimed c JOIN webhook_endpoints w ON w.id = c.endpoint_id JOIN events e ON e.id = c.event_id
    JOIN tenants t ON t.id = c.tenant_id
$$;
