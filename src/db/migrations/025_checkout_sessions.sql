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

-- The worker settles open sessions nobody looks at: those past their expiry, and those whose payment succeeded
-- while the buyer's page never reported back (a closed tab), so that each still gets its event.
CREATE INDEX checkout_sessions_open ON checkout_sessions (expires_at) WHERE status = 'open';
CREATE FUNCTION worker_checkout_sessions_to_settle(p_now timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT s.id, s.tenant_id, s.livemode FROM checkout_sessions s
  WHERE s.status = 'open' AND (s.expires_at <= p_now OR EXISTS (
    SELECT 1 FROM payments p WHERE p.id = s.payment_id AND p.status = 'succeeded'))
  ORDER BY s.expires_at LIMIT p_limit
$$;
