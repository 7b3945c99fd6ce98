-- Hosted checkout (issue 9): a session is a page on the platform where a buyer pays one payment, created with the
-- session and owned by the payments module; the session records where the buyer goes after, and whether and when it
-- completed or expired.
CREATE TABLE checkout_sessions (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
  payment_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  customer text,
  success_url text NOT NULL,
  cancel_url text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  expires_at timestamptz NOT NULL,
  completed_at timestamptz,
  expired_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_tenant ON checkout_sessions (tenant_id, livemode, id DESC);
CREATE INDEX checkout_sessions_payment ON checkout_sessions (tenant_id, livemode, payment_id);

ALTER TABLE checkout_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkout_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON checkout_sessions
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
