-- Issue 12: compliance reports and their schedules, suspicious-activity cases, card-data retention.

-- A report is queued by the API (pending) and produced by a worker (succeeded | failed). While a
-- worker runs it, started_at is set; a run whose worker died is taken over once it is stale.
CREATE TABLE reports (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  type text NOT NULL,
  parameters jsonb NOT NULL,
  format text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  schedule_id text,
  failure_message text,
  row_count bigint,
  size bigint,
  attempts integer NOT NULL DEFAULT 0,
  started_at timestamptz,
  completed_at timestamptz,
  download_count integer NOT NULL DEFAULT 0,
  last_downloaded_at timestamptz,
  last_downloaded_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reports_tenant ON reports (tenant_id, livemode, id DESC);
CREATE INDEX reports_pending ON reports (created_at) WHERE status = 'pending';

-- The produced file, in chunks of at most a few hundred kilobytes: every API process and worker
-- reads and writes the same files, and a large report is written and served without ever being
-- held whole in memory.
CREATE TABLE report_chunks (
  report_id text NOT NULL REFERENCES reports(id),
  seq integer NOT NULL,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (report_id, seq)
);

CREATE TABLE report_schedules (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  type text NOT NULL,
  parameters jsonb NOT NULL,
  format text NOT NULL,
  interval text NOT NULL CHECK (interval IN ('daily', 'weekly', 'monthly')),
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz,
  last_report_id text,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_schedules_tenant ON report_schedules (tenant_id, livemode, id DESC);
CREATE INDEX report_schedules_due ON report_schedules (next_run_at) WHERE deleted_at IS NULL;

-- Suspicious-activity cases. source_key makes opening idempotent: the same alert (a structuring
-- window, a fraud block of a payment) opens one case however often it is seen.
CREATE TABLE cases (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  kind text NOT NULL CHECK (kind IN ('structuring', 'fraud_block', 'list_hit', 'large_transaction', 'manual')),
  status text NOT NULL CHECK (status IN ('open', 'investigating', 'filed', 'dismissed')),
  subject jsonb NOT NULL,
  payment_ids text[] NOT NULL DEFAULT '{}',
  currency text,
  amount bigint,
  period_start timestamptz,
  period_end timestamptz,
  narrative text,
  assignee text,
  source_key text,
  filed_at timestamptz,
  dismissed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, livemode, source_key)
);
CREATE INDEX cases_tenant ON cases (tenant_id, livemode, id DESC);

CREATE TABLE case_notes (
  id text PRIMARY KEY,
  case_id text NOT NULL REFERENCES cases(id),
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  body text NOT NULL,
  author text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['reports', 'report_chunks', 'report_schedules', 'cases', 'case_notes'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION worker_pending_reports(p_stale_before timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM reports
  WHERE status = 'pending' AND (started_at IS NULL OR started_at < p_stale_before)
  ORDER BY created_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION worker_due_report_schedules(p_now timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM report_schedules
  WHERE deleted_at IS NULL AND next_run_at <= p_now ORDER BY next_run_at LIMIT p_limit
$$;

-- When each key-encryption key was first seen by a worker, and since when the active one is
-- active: the PCI access review reports KEK age and last rotation from it. Platform-wide, no
-- tenant's data: row-level security with no policy, reached only through the worker functions.
CREATE TABLE vault_keks (
  id text PRIMARY KEY,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  active_since timestamptz
);
ALTER TABLE vault_keks ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault_keks FORCE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION worker_observe_keks(p_active text, p_all text[], p_now timestamptz)
RETURNS TABLE (id text, first_seen_at timestamptz, active_since timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  INSERT INTO vault_keks (id, first_seen_at) SELECT k, p_now FROM unnest(p_all) k ON CONFLICT DO NOTHING;
  -- A KEK becoming the active one is a rotation; the others stop being active.
  UPDATE vault_keks SET active_since = p_now WHERE vault_keks.id = p_active AND vault_keks.active_since IS NULL;
  UPDATE vault_keks SET active_since = NULL WHERE vault_keks.id <> p_active AND vault_keks.active_since IS NOT NULL;
  RETURN QUERY SELECT k.id, k.first_seen_at, k.active_since FROM vault_keks k WHERE k.id = ANY(p_all) ORDER BY k.first_seen_at;
END $$;

-- Card-data retention: the encrypted card number of a payment method unused for the retention
-- period is erased; token, brand, last4, expiry and fingerprint stay, so past payments still show
-- which card paid. The sealed number and its wrapped key become NULL together.
ALTER TABLE payment_methods ALTER COLUMN kek_id DROP NOT NULL;
ALTER TABLE payment_methods ALTER COLUMN wrapped_dek DROP NOT NULL;
ALTER TABLE payment_methods ALTER COLUMN pan_ciphertext DROP NOT NULL;
ALTER TABLE payment_methods ADD COLUMN card_data_erased_at timestamptz;
ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_card_data_whole
  CHECK ((card_data_erased_at IS NULL) = (pan_ciphertext IS NOT NULL AND wrapped_dek IS NOT NULL AND kek_id IS NOT NULL));
CREATE INDEX payment_methods_card_data_held ON payment_methods (created_at) WHERE card_data_erased_at IS NULL;

-- Payment methods still holding card data, created before p_before, that no payment created since
-- p_before used. Payment ids are time-ordered, so the id bound keeps the check to recent payments.
CREATE OR REPLACE FUNCTION worker_unused_card_data(p_before timestamptz, p_payment_ids_from text, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT pm.id, pm.tenant_id, pm.livemode FROM payment_methods pm
  WHERE pm.card_data_erased_at IS NULL AND pm.created_at < p_before
    AND NOT EXISTS (
      SELECT 1 FROM payments p
      WHERE p.tenant_id = pm.tenant_id AND p.livemode = pm.livemode AND p.id >= p_payment_ids_from
        AND p.payment_method_id = pm.id AND p.created_at >= p_before)
  ORDER BY pm.created_at LIMIT p_limit
$$;

-- The PCI access review reports each key's last use. The lookup runs when a process's key cache
-- misses (every few seconds per key at most), and writes at most once a minute per key.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
CREATE OR REPLACE FUNCTION auth_find_api_key(p_hash bytea)
RETURNS TABLE (id text, tenant_id text, livemode boolean, kind text, scopes text[], expires_at timestamptz, revoked_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  UPDATE api_keys k SET last_used_at = now()
  WHERE k.key_hash = p_hash AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
  RETURN QUERY SELECT k.id, k.tenant_id, k.livemode, k.kind, k.scopes, k.expires_at, k.revoked_at FROM api_keys k WHERE k.key_hash = p_hash;
END $$;
