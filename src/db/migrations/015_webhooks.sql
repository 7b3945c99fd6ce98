-- Issue 10, webhook delivery.

-- Endpoints a tenant registered. The signing secrets live in their own table, sealed like a card
-- number (envelope encryption under the vault's KEK): several verify at once during a rotation.
CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id),
  livemode boolean NOT NULL,
  url text NOT NULL,
  description text,
  enabled_events text[] NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL CHECK (status IN ('enabled', 'disabled')),
  disabled_reason text,
  -- The first failed attempt since the last success: an endpoint failing for too long is disabled.
  failing_since timestamptz,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, livemode, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE webhook_endpoint_secrets (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
  kek_id text NOT NULL,
  wrapped_dek bytea NOT NULL,
  secret_ciphertext bytea NOT NULL,
  -- NULL while current; a rotated-out secret keeps signing until then.
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoint_secrets_endpoint ON webhook_endpoint_secrets (endpoint_id);

-- Whether an event type matches an endpoint's subscriptions: exact names, `prefix.*` and `*`.
CREATE OR REPLACE FUNCTION webhook_event_matches(p_patterns text[], p_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT EXISTS (
    SELECT 1 FROM unnest(p_patterns) AS p
    WHERE p = '*' OR p = p_type OR (right(p, 2) = '.*' AND starts_with(p_type, left(p, -1))))
$$;

-- A delivery's id embeds its event's, so deliveries sort by event time, and names its endpoint.
CREATE OR REPLACE FUNCTION webhook_delivery_id(p_event_id text, p_endpoint_id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 'whd_' || split_part(p_event_id, '_', 2) || split_part(p_endpoint_id, '_', 2)
$$;

-- One row per event and endpoint: the source of truth for the delivery log, retries and replay,
-- whichever queue carries the job. The same event never fans out twice to one endpoint.
CREATE TABLE webhook_deliveries (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  event_id text NOT NULL,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  -- When a pending delivery is due; a worker that claims it pushes this out by a lease, so a
  -- worker that dies mid-delivery leaves it due again (at least once, same webhook-id).
  next_attempt_at timestamptz NOT NULL,
  event_created_at timestamptz NOT NULL,
  last_status_code integer,
  last_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

CREATE TABLE webhook_delivery_attempts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  delivery_id text NOT NULL,
  event_id text NOT NULL,
  endpoint_id text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
  status_code integer,
  latency_ms integer NOT NULL,
  response_body text,
  error text,
  attempted_at timestamptz NOT NULL
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_endpoint_secrets', 'webhook_deliveries', 'webhook_delivery_attempts'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

-- The fan-out's own outbox marker, independent of the RabbitMQ relay's published_at. Events that
-- exist before this migration count as fanned out (the default is evaluated once, here); new ones
-- start NULL.
ALTER TABLE events ADD COLUMN webhooks_fanned_out_at timestamptz DEFAULT now();
ALTER TABLE events ALTER COLUMN webhooks_fanned_out_at DROP DEFAULT;
CREATE INDEX events_webhooks_pending ON events (id) WHERE webhooks_fanned_out_at IS NULL;

-- Turns committed events into deliveries, one per matching enabled endpoint, and marks them done,
-- all in one transaction: a crash before the commit leaves the events to the next pass. An endpoint
-- receives the events that happened after it was created (older ones only by an explicit replay),
-- however late the fan-out runs.
CREATE OR REPLACE FUNCTION worker_fan_out_webhook_events(p_limit integer)
RETURNS TABLE (delivery_id text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH batch AS (
    SELECT id, tenant_id, livemode, type, created_at FROM events
    WHERE webhooks_fanned_out_at IS NULL ORDER BY id LIMIT p_limit FOR UPDATE SKIP LOCKED
  ), marked AS (
    UPDATE events e SET webhooks_fanned_out_at = now() FROM batch b WHERE e.id = b.id
  )
  INSERT INTO webhook_deliveries (id, tenant_id, livemode, event_id, endpoint_id, status, next_attempt_at, event_created_at)
  SELECT webhook_delivery_id(b.id, w.id), b.tenant_id, b.livemode, b.id, w.id,
    'pending', now(), b.created_at
  FROM batch b JOIN webhook_endpoints w ON w.tenant_id = b.tenant_id AND w.livemode = b.livemode
    AND w.status = 'enabled' AND w.deleted_at IS NULL AND webhook_event_matches(w.enabled_events, b.type)
    AND w.created_at <= b.created_at
  ON CONFLICT (endpoint_id, event_id) DO NOTHING
  RETURNING id
$$;

-- The signing secrets of endpoints, sealed: still valid at p_now.
CREATE OR REPLACE FUNCTION worker_webhook_secrets(p_endpoint_ids text[], p_now timestamptz)
RETURNS TABLE (id text, endpoint_id text, kek_id text, wrapped_dek bytea, secret_ciphertext bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, endpoint_id, kek_id, wrapped_dek, secret_ciphertext FROM webhook_endpoint_secrets
  WHERE endpoint_id = ANY (p_endpoint_ids) AND (expires_at IS NULL OR expires_at > p_now)
  ORDER BY id DESC
$$;

-- Records a batch of attempts and their deliveries' next state in one statement. An endpoint's
-- failure streak starts at its first failed attempt and ends with any success.
CREATE OR REPLACE FUNCTION worker_record_webhook_attempts(
  p_attempt_ids text[], p_delivery_ids text[], p_outcomes text[], p_status_codes integer[], p_latencies integer[],
  p_bodies text[], p_errors text[], p_attempted_at timestamptz[], p_next_status text[], p_next_at timestamptz[])
RETURNS TABLE (endpoint_id text, tenant_id text, livemode boolean, failing_since timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH input AS (
    SELECT * FROM unnest(p_attempt_ids, p_delivery_ids, p_outcomes, p_status_codes, p_latencies, p_bodies, p_errors,
      p_attempted_at, p_next_status, p_next_at)
      AS i (attempt_id, delivery_id, outcome, status_code, latency_ms, body, error, attempted_at, next_status, next_at)
  ), deliveries AS (
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, status = i.next_status,
      next_attempt_at = coalesce(i.next_at, d.next_attempt_at), last_status_code = i.status_code,
      last_attempt_at = i.attempted_at, updated_at = now()
    FROM input i WHERE d.id = i.delivery_id
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

-- Pending deliveries, for the queue-depth gauge.
CREATE OR REPLACE FUNCTION worker_webhook_queue_depth()
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'
$$;
