-- Issue 10, webhook delivery over RabbitMQ. PostgreSQL stays the source of truth for every delivery's state;
-- RabbitMQ only carries the work. A delivery handed to RabbitMQ is marked with a lease (dispatch_until) and a
-- sequence number (dispatch_seq) the message carries: when the lease runs out before the attempt is recorded
-- (the publish was never confirmed, the message or the worker was lost) the delivery is due again and goes out
-- in a new message, and a message whose number is no longer the delivery's is stale and dropped unsent.
ALTER TABLE webhook_deliveries ADD COLUMN dispatch_until timestamptz;
ALTER TABLE webhook_deliveries ADD COLUMN dispatch_seq integer NOT NULL DEFAULT 0;
-- In flight to an endpoint right now: what the per-endpoint limit counts across every worker.
CREATE INDEX webhook_deliveries_dispatched ON webhook_deliveries (endpoint_id)
  WHERE status = 'pending' AND dispatch_until IS NOT NULL;

-- Hands due deliveries to RabbitMQ: like worker_claim_webhook_deliveries, but the lease is its own column (the
-- delivery log keeps showing when the attempt is due) and an endpoint gets at most p_per_endpoint deliveries in
-- flight across all workers (WEBHOOK_AMQP_QUEUED_PER_ENDPOINT), so one hanging endpoint never fills the shared work
-- queue; its jobs a worker has no room for wait in a delay queue, never in its prefetch.
CREATE FUNCTION worker_dispatch_webhook_deliveries(
  p_now timestamptz, p_limit integer, p_per_endpoint integer, p_lease interval, p_skip text[])
RETURNS TABLE (id text, dispatch_seq integer)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH candidates AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at FROM webhook_deliveries d
    JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'enabled'
    WHERE d.status = 'pending' AND d.next_attempt_at <= p_now AND (d.dispatch_until IS NULL OR d.dispatch_until <= p_now)
      AND d.endpoint_id <> ALL (p_skip)
    ORDER BY d.next_attempt_at LIMIT p_limit FOR UPDATE OF d SKIP LOCKED
  ), busy AS (
    SELECT d.endpoint_id, count(*) AS n FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.dispatch_until IS NOT NULL AND d.dispatch_until > p_now
      AND d.next_attempt_at <= p_now AND d.endpoint_id IN (SELECT endpoint_id FROM candidates)
    GROUP BY d.endpoint_id
  ), chosen AS (
    SELECT c.id FROM (
      SELECT c.id, c.endpoint_id, row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at) AS n
      FROM candidates c) c
    LEFT JOIN busy b ON b.endpoint_id = c.endpoint_id
    WHERE c.n <= p_per_endpoint - coalesce(b.n, 0)
  )
  UPDATE webhook_deliveries d SET dispatch_until = p_now + p_lease, dispatch_seq = d.dispatch_seq + 1,
    updated_at = now()
  FROM chosen WHERE d.id = chosen.id
  RETURNING d.id, d.dispatch_seq
$$;

-- What a worker needs to send the deliveries its messages name, for those messages still current (same
-- dispatch_seq, still pending, endpoint enabled): one query for a batch of messages, not one per message.
CREATE FUNCTION worker_dispatched_webhook_deliveries(p_ids text[], p_seqs integer[])
RETURNS TABLE (id text, tenant_id text, livemode boolean, event_id text, endpoint_id text, attempts integer,
  dispatch_seq integer, next_attempt_at timestamptz, url text, event_type text, event_object_id text,
  event_data json, event_request_id text, event_created_at timestamptz, event_sequence bigint,
  event_api_version text, tenant_api_version text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT d.id, d.tenant_id, d.livemode, d.event_id, d.endpoint_id, d.attempts, d.dispatch_seq, d.next_attempt_at,
    w.url, e.type, e.object_id, e.data, e.request_id, e.created_at, e.sequence, e.api_version, t.api_version
  FROM unnest(p_ids, p_seqs) AS m (id, seq)
  JOIN webhook_deliveries d ON d.id = m.id AND d.dispatch_seq = m.seq AND d.status = 'pending'
  JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'enabled' AND w.deleted_at IS NULL
  JOIN events e ON e.id = d.event_id
  JOIN tenants t ON t.id = d.tenant_id
$$;

-- Gives deliveries back to the next dispatch at once when their publish was not confirmed.
CREATE FUNCTION worker_release_webhook_deliveries(p_ids text[], p_seqs integer[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE webhook_deliveries d SET dispatch_until = NULL
  FROM unnest(p_ids, p_seqs) AS m (id, seq) WHERE d.id = m.id AND d.dispatch_seq = m.seq
$$;

-- worker_record_webhook_attempts with the dispatch bookkeeping: an attempt carrying its delivery's dispatch_seq is
-- recorded only while that number is current (a stale duplicate is not counted twice, an attempt overtaken by a
-- redelivery does not overwrite the new series) and moves it on; a retry that waits in a RabbitMQ delay queue keeps
-- its lease until it should be back (p_dispatch_until, NULL on the PostgreSQL queue). A NULL dispatch_seq records
-- unconditionally, as in 015.
DROP FUNCTION worker_record_webhook_attempts(text[], text[], text[], integer[], integer[], text[], text[],
  timestamptz[], text[], timestamptz[]);
CREATE FUNCTION worker_record_webhook_attempts(
  p_attempt_ids text[], p_delivery_ids text[], p_outcomes text[], p_status_codes integer[], p_latencies integer[],
  p_bodies text[], p_errors text[], p_attempted_at timestamptz[], p_next_status text[], p_next_at timestamptz[],
  p_dispatch_seqs integer[], p_dispatch_until timestamptz[])
RETURNS TABLE (endpoint_id text, tenant_id text, livemode boolean, failing_since timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH input AS (
    SELECT * FROM unnest(p_attempt_ids, p_delivery_ids, p_outcomes, p_status_codes, p_latencies, p_bodies, p_errors,
      p_attempted_at, p_next_status, p_next_at, p_dispatch_seqs, p_dispatch_until)
      AS i (attempt_id, delivery_id, outcome, status_code, latency_ms, body, error, attempted_at, next_status, next_at,
        dispatch_seq, dispatch_until)
  ), deliveries AS (
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, status = i.next_status,
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), last_status_code = i.status_code,
      last_attempt_at = i.attempted_at, updated_at = now(),
      dispatch_until = CASE WHEN i.dispatch_seq IS NULL THEN d.dispatch_until ELSE i.dispatch_until END,
      dispatch_seq = CASE WHEN i.dispatch_seq IS NULL THEN d.dispatch_seq ELSE d.dispatch_seq + 1 END
    FROM input i WHERE d.id = i.delivery_id AND (i.dispatch_seq IS NULL OR d.dispatch_seq = i.dispatch_seq)
    RETURNING d.id, d.tenant_id, d.livemode, d.event_id, d.endpoint_id
  ), attempts AS (
    INSERT INTO webhook_delivery_attempts (id, tenant_id, livemode, delivery_id, event_id, endpoint_id, outcome,
      status_code, latency_ms, response_body, error, attempted_at)
    SELECT i.attempt_id, d.tenant_id, d.livemode, d.id, d.event_id, d.endpoint_id, i.outcome, i.status_code,
      i.latency_ms, i.body, i.error, i.attempted_at
    FROM input i JOIN deliveries d ON d.id = i.delivery_id
  ), streaks AS (
    SELECT d.endpoint_id, bool_or(i.outcome = 'succeeded') AS any_success, min(i.attempted_at) AS first_failure
    FROM input i JOIN deliveries d ON d.id = i.delivery_id GROUP BY d.endpoint_id
  )
  UPDATE webhook_endpoints w SET failing_since = CASE WHEN s.any_success THEN NULL
      ELSE coalesce(w.failing_since, s.first_failure) END
  FROM streaks s WHERE w.id = s.endpoint_id
  RETURNING w.id, w.tenant_id, w.livemode, w.failing_since
$$;

-- The PostgreSQL queue's claim (023) also answers each delivery's dispatch_seq, which its attempt is recorded
-- under: an attempt still in flight when the delivery is redelivered or replayed (which move the number on) no
-- longer overwrites the new series' state, on either transport.
DROP FUNCTION worker_claim_webhook_deliveries(timestamptz, integer, integer, interval, text[]);
CREATE FUNCTION worker_claim_webhook_deliveries(
  p_now timestamptz, p_limit integer, p_per_endpoint integer, p_lease interval, p_skip text[])
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
      SELECT c.id, c.next_attempt_at, row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at) AS n
      FROM candidates c) c
    WHERE c.n <= p_per_endpoint
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
