-- Issue 11, fraud decisions: per-tenant rules (CEL) and lists, the decision stored on each payment,
-- the review queue and fraud labels (reports; fraudulent disputes are read from disputes).

-- The decision (`outcome` in the API) and what it was computed from, so a backtest can replay it;
-- fraud_details are what the client sent for the decision (email, IP, billing country).
ALTER TABLE payments ADD COLUMN fraud_details jsonb, ADD COLUMN fraud_outcome jsonb, ADD COLUMN fraud_inputs jsonb;

CREATE TABLE fraud_rules (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  name text NOT NULL,
  expression text NOT NULL,
  action text NOT NULL CHECK (action IN ('allow', 'review', 'block', 'request_3ds')),
  priority integer NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  shadow boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fraud_rules_tenant ON fraud_rules (tenant_id, livemode, id DESC);

CREATE TABLE fraud_lists (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  name text NOT NULL,
  item_type text NOT NULL
    CHECK (item_type IN ('card_fingerprint', 'card_bin', 'email', 'ip_address', 'country', 'customer')),
  kind text NOT NULL CHECK (kind IN ('block', 'allow')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, livemode, name)
);
CREATE INDEX fraud_lists_tenant ON fraud_lists (tenant_id, livemode, id DESC);

CREATE TABLE fraud_list_items (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  list_id text NOT NULL REFERENCES fraud_lists(id) ON DELETE CASCADE,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (list_id, value)
);
CREATE INDEX fraud_list_items_list ON fraud_list_items (list_id, id DESC);

-- Whether a tenant's mode got the default rule pack: given once, so deleting a default rule sticks.
CREATE TABLE fraud_settings (
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  defaults_installed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, livemode)
);

CREATE TABLE fraud_reviews (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  payment_id text NOT NULL REFERENCES payments(id),
  status text NOT NULL CHECK (status IN ('open', 'approved', 'rejected')),
  opened_reason text NOT NULL,
  closed_reason text,
  closed_by text,
  closed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (payment_id)
);
CREATE INDEX fraud_reviews_tenant ON fraud_reviews (tenant_id, livemode, id DESC);
CREATE INDEX fraud_reviews_open ON fraud_reviews (tenant_id, livemode) WHERE status = 'open';

-- Payments reported as fraud through the API (fraudulent disputes are labels too, read from disputes).
CREATE TABLE fraud_reports (
  payment_id text PRIMARY KEY REFERENCES payments(id),
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  reported_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['fraud_rules', 'fraud_lists', 'fraud_list_items', 'fraud_settings', 'fraud_reviews',
    'fraud_reports'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

-- Every API process caches a tenant's compiled rules and lists; a change announces itself on commit
-- (NOTIFY is transactional) so that each process drops that tenant's entry.
CREATE OR REPLACE FUNCTION fraud_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fraud_config_changed', COALESCE(NEW.tenant_id, OLD.tenant_id) || ':' ||
    CASE WHEN COALESCE(NEW.livemode, OLD.livemode) THEN 't' ELSE 'f' END);
  RETURN NULL;
END $$;
CREATE TRIGGER fraud_rules_changed AFTER INSERT OR UPDATE OR DELETE ON fraud_rules
  FOR EACH ROW EXECUTE FUNCTION fraud_config_changed();
CREATE TRIGGER fraud_lists_changed AFTER INSERT OR UPDATE OR DELETE ON fraud_lists
  FOR EACH ROW EXECUTE FUNCTION fraud_config_changed();
CREATE TRIGGER fraud_list_items_changed AFTER INSERT OR UPDATE OR DELETE ON fraud_list_items
  FOR EACH ROW EXECUTE FUNCTION fraud_config_changed();

-- The platform-wide fraud gauges (review backlog, fraud rate in basis points of captured volume over
-- 30 days), read by the worker for /metrics: a cross-tenant read, hence a worker_* function.
CREATE OR REPLACE FUNCTION worker_fraud_metrics()
RETURNS TABLE (open_reviews bigint, fraud_amount numeric, volume numeric)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  WITH recent AS (
    SELECT id, amount_received FROM payments
    WHERE created_at > now() - interval '30 days' AND amount_received > 0
  )
  SELECT
    (SELECT count(*) FROM fraud_reviews WHERE status = 'open'),
    (SELECT coalesce(sum(r.amount_received), 0) FROM recent r
      WHERE EXISTS (SELECT 1 FROM fraud_reports f WHERE f.payment_id = r.id)
        OR EXISTS (SELECT 1 FROM disputes d WHERE d.payment_id = r.id AND d.reason = 'fraudulent')),
    (SELECT coalesce(sum(amount_received), 0) FROM recent)
$$;
