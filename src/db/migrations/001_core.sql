-- Row-level security scope: every tenant table is visible only for the (tenant, mode) pairs
-- listed in the transaction-local setting app.scope ("ten_x:t,ten_y:f"). A request sets one
-- pair; a micro-batch sets the pairs of the requests it carries. Unset or empty → no rows.
CREATE OR REPLACE FUNCTION app_scope_allows(p_tenant text, p_livemode boolean) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT (p_tenant || CASE WHEN p_livemode THEN ':t' ELSE ':f' END)
         = ANY (string_to_array(nullif(current_setting('app.scope', true), ''), ','))
$$;

CREATE OR REPLACE FUNCTION app_tenant_allows(p_tenant text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT p_tenant = ANY (
    SELECT split_part(s, ':', 1) FROM unnest(string_to_array(nullif(current_setting('app.scope', true), ''), ',')) s)
$$;

CREATE TABLE tenants (
  id text PRIMARY KEY,
  name text NOT NULL,
  processors text[] NOT NULL DEFAULT ARRAY['sim_alpha', 'sim_beta'],
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  kind text NOT NULL CHECK (kind IN ('secret', 'restricted')),
  name text,
  key_hash bytea NOT NULL UNIQUE,
  redacted text NOT NULL,
  scopes text[] NOT NULL,
  expires_at timestamptz,
  revoked_at timestamptz,
  rolled_to text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, livemode, id DESC);

-- High-volume tables carry tenant_id without a foreign key to tenants: every insert would take a
-- share lock on its tenant's one row, and thousands a second on one row pile up as multixacts.
-- Row-level security already ties every row to the scope that wrote it. For the same reason the
-- payment write path keeps its references (payment → payment method, attempt → payment) without
-- foreign-key triggers, which cost 40% of a batch: the batch statement writes an attempt only
-- for a payment it wrote, and a payment only with a payment method it wrote or found.
CREATE TABLE payment_methods (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  type text NOT NULL,
  brand text NOT NULL,
  bin text NOT NULL,
  last4 text NOT NULL,
  exp_month smallint NOT NULL,
  exp_year smallint NOT NULL,
  funding text NOT NULL,
  country text,
  fingerprint text NOT NULL,
  cvc_check text NOT NULL,
  customer text,
  kek_id text NOT NULL,
  wrapped_dek bytea NOT NULL,
  pan_ciphertext bytea NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_tenant ON payment_methods (tenant_id, livemode, id DESC);

CREATE TABLE payments (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('requires_payment_method', 'requires_confirmation', 'requires_action',
    'processing', 'requires_capture', 'succeeded', 'canceled')),
  capture_method text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
  amount_capturable bigint NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
  amount_received bigint NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
  amount_refunded bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount_received),
  payment_method_id text,
  customer text,
  description text,
  statement_descriptor text,
  metadata jsonb NOT NULL DEFAULT '{}',
  last_payment_error jsonb,
  next_action jsonb,
  processor text,
  processor_reference text,
  authorization_expires_at timestamptz,
  cancellation_reason text,
  canceled_at timestamptz,
  idempotency_key text,
  version integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);
CREATE INDEX payments_tenant ON payments (tenant_id, livemode, id DESC);
-- The key of the request that created the payment: a retry that runs again after a crash finds
-- this payment instead of creating a second one.
CREATE UNIQUE INDEX payments_idempotency_key ON payments (tenant_id, livemode, idempotency_key);
CREATE INDEX payments_keyed ON payments (created_at) WHERE idempotency_key IS NOT NULL;
-- No index names a column a state change writes (status, amounts, updated_at), and pages keep
-- free space (fillfactor): each payment's transition is a HOT update that touches no index.
-- Only uncaptured authorizations carry an expiry, so this index holds just those.
CREATE INDEX payments_expiring ON payments (authorization_expires_at) WHERE authorization_expires_at IS NOT NULL;

-- One row per call to a processor, so a payment shows every attempt including failovers,
-- and a crash between the call and its result can be resolved from the pending row.
CREATE TABLE payment_attempts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  payment_id text NOT NULL,
  operation text NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'verify')),
  processor text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'declined', 'error', 'requires_action')),
  amount bigint NOT NULL,
  processor_reference text,
  error_code text,
  decline_code text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
) WITH (fillfactor = 80);
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id, id);
CREATE INDEX payment_attempts_pending ON payment_attempts (created_at) WHERE completed_at IS NULL;

CREATE TABLE refunds (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  payment_id text NOT NULL REFERENCES payments(id),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  reason text,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  failure_reason text,
  processor text,
  processor_reference text,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_tenant ON refunds (tenant_id, livemode, id DESC);
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';

-- The transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE events (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  type text NOT NULL,
  object_id text NOT NULL,
  -- json, not jsonb: events are written once and read back whole, and storing the text as it is
  -- costs far less than converting it on the hot path.
  data json NOT NULL,
  request_id text,
  published_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant ON events (tenant_id, livemode, id DESC);
CREATE INDEX events_unpublished ON events (id) WHERE published_at IS NULL;

-- tenant_id is '__platform__' for the operator's own requests, hence no foreign key.
CREATE TABLE idempotency_keys (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  key text NOT NULL,
  request_method text NOT NULL,
  request_path text NOT NULL,
  request_hash text NOT NULL,
  response_status integer,
  response_body json,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  -- livemode last: batched lookups join on a cast boolean, which row-level security keeps out of
  -- index conditions (the cast is not leakproof), so the index must seek on tenant and key alone.
  PRIMARY KEY (tenant_id, key, livemode)
) WITH (fillfactor = 50);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['api_keys', 'payment_methods', 'payments', 'payment_attempts', 'refunds', 'events', 'idempotency_keys'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenants USING (app_tenant_allows(id)) WITH CHECK (app_tenant_allows(id));

-- Key lookup happens before the tenant is known, so it runs with the owner's rights,
-- returns only the matching key and cannot list anything.
CREATE OR REPLACE FUNCTION auth_find_api_key(p_hash bytea)
RETURNS TABLE (id text, tenant_id text, livemode boolean, kind text, scopes text[], expires_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode, kind, scopes, expires_at, revoked_at FROM api_keys WHERE key_hash = p_hash
$$;

CREATE OR REPLACE FUNCTION auth_find_api_key_by_id(p_id text)
RETURNS TABLE (id text, tenant_id text, livemode boolean, kind text, scopes text[], expires_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode, kind, scopes, expires_at, revoked_at FROM api_keys WHERE id = p_id
$$;

-- Workers find due work across tenants through these narrow functions, then act inside
-- a transaction scoped to each tenant.
CREATE OR REPLACE FUNCTION worker_expired_authorizations(p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM payments
  WHERE authorization_expires_at IS NOT NULL AND authorization_expires_at < now() AND status = 'requires_capture'
  ORDER BY authorization_expires_at LIMIT p_limit
$$;

-- A payment is stuck when a processor call was recorded as pending and never completed.
CREATE OR REPLACE FUNCTION worker_stuck_payments(p_older_than interval, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT p.id, p.tenant_id, p.livemode FROM payments p
  WHERE p.status = 'processing' AND p.id IN (
    SELECT a.payment_id FROM payment_attempts a
    WHERE a.completed_at IS NULL AND a.created_at < now() - p_older_than
    ORDER BY a.created_at LIMIT p_limit)
$$;

CREATE OR REPLACE FUNCTION worker_unpublished_events(p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean, type text, object_id text, data json, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode, type, object_id, data, created_at FROM events
  WHERE published_at IS NULL ORDER BY id LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION worker_mark_events_published(p_ids text[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE events SET published_at = now() WHERE id = ANY (p_ids) AND published_at IS NULL
$$;

-- Keys live 24 hours; after that the same key may start a new request, so the payment
-- created under it stops claiming it too.
CREATE OR REPLACE FUNCTION worker_purge_idempotency_keys(p_older_than interval)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH released AS (
    UPDATE payments SET idempotency_key = NULL
    WHERE idempotency_key IS NOT NULL AND created_at < now() - p_older_than
  ), d AS (DELETE FROM idempotency_keys WHERE created_at < now() - p_older_than RETURNING 1)
  SELECT count(*) FROM d
$$;

CREATE OR REPLACE FUNCTION worker_stuck_refunds(p_older_than interval, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM refunds
  WHERE status = 'pending' AND updated_at < now() - p_older_than
  ORDER BY updated_at LIMIT p_limit
$$;
