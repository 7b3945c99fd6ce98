-- GET /v1/events/stream's bound on open streams per tenant, across every API process, when there is
-- no Redis: one row per open stream, renewed by the process serving it, so that the streams of a
-- process that died stop counting once their lease has run out.
CREATE TABLE event_stream_leases (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX event_stream_leases_tenant ON event_stream_leases (tenant_id, expires_at);

ALTER TABLE event_stream_leases ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_stream_leases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON event_stream_leases
  USING (app_tenant_allows(tenant_id)) WITH CHECK (app_tenant_allows(tenant_id));
