-- A tenant's API requests, for debugging an integration: what was called, by which key, and how it
-- ended. Never a body, a header or a query string (they may carry card data or secrets).
CREATE TABLE request_logs (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  method text NOT NULL,
  path text NOT NULL,
  route text,
  status integer NOT NULL,
  api_key_id text,
  idempotency_key text,
  idempotent_replayed boolean NOT NULL DEFAULT false,
  error_type text,
  error_code text,
  latency_ms integer NOT NULL,
  source_ip text,
  created_at timestamptz NOT NULL
);
CREATE INDEX request_logs_tenant ON request_logs (tenant_id, livemode, id DESC);
-- The Developers page's usual question is "what failed": errors get their own index.
CREATE INDEX request_logs_errors ON request_logs (tenant_id, livemode, id DESC) WHERE status >= 400;
CREATE INDEX request_logs_created ON request_logs (created_at);

ALTER TABLE request_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON request_logs
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

-- Logs are kept for p_older_than (30 days by default), deleted a batch at a time so one pass never
-- holds a long transaction.
CREATE OR REPLACE FUNCTION worker_purge_request_logs(p_older_than interval, p_limit integer)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH doomed AS (
    SELECT id FROM request_logs WHERE created_at < now() - p_older_than ORDER BY created_at LIMIT p_limit
  ), d AS (DELETE FROM request_logs r USING doomed WHERE r.id = doomed.id RETURNING 1)
  SELECT count(*) FROM d
$$;
