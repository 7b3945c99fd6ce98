-- Pricing plans are versioned and immutable: the operator's every change is a new row, so a fee
-- can always be traced to the exact plan version that produced it. The application role gets
-- SELECT and INSERT only (see migrate.ts), so no version can be edited or removed afterwards.
CREATE TABLE pricing_plans (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  plan jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, livemode, version)
);

ALTER TABLE pricing_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE pricing_plans FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON pricing_plans USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
