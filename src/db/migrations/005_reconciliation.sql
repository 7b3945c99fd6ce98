-- Reconciliation: each processor's daily settlement report, matched line by line to our ledger.

-- The processor's own file for one UTC day, as received, covering every tenant. A file fetched
-- before its day was over is provisional and replaced by the next fetch; a final one never changes.
-- Row-level security with no policy: the application role sees none of it (it holds every
-- tenant's lines), and the worker functions below are the only way in.
CREATE TABLE processor_reports (
  id text PRIMARY KEY,
  processor text NOT NULL,
  report_date date NOT NULL,
  csv text NOT NULL,
  final boolean NOT NULL,
  reconciled_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (processor, report_date)
);
ALTER TABLE processor_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE processor_reports FORCE ROW LEVEL SECURITY;

-- One per tenant, mode, processor, day and currency. Amounts are signed as in the ledger (a
-- capture adds, a refund takes away); `processor_*` totals the processor's lines, `ledger_*` our
-- transactions, and each status totals its items (amount_mismatch_amount: processor − ledger).
CREATE TABLE reconciliation_reports (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  processor text NOT NULL,
  report_date date NOT NULL,
  currency text NOT NULL,
  processor_count integer NOT NULL,
  processor_amount bigint NOT NULL,
  ledger_count integer NOT NULL,
  ledger_amount bigint NOT NULL,
  matched_count integer NOT NULL,
  matched_amount bigint NOT NULL,
  missing_in_ledger_count integer NOT NULL,
  missing_in_ledger_amount bigint NOT NULL,
  missing_in_report_count integer NOT NULL,
  missing_in_report_amount bigint NOT NULL,
  amount_mismatch_count integer NOT NULL,
  amount_mismatch_amount bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, livemode, processor, report_date, currency)
);
CREATE INDEX reconciliation_reports_tenant ON reconciliation_reports (tenant_id, livemode, id DESC);

-- `reference` is the key both sides share: for a capture the payment's authorization reference
-- (payments.processor_reference), for a refund our refund id (the processor's idempotency key).
CREATE TABLE reconciliation_items (
  id text PRIMARY KEY,
  report_id text NOT NULL REFERENCES reconciliation_reports(id),
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  status text NOT NULL CHECK (status IN ('matched', 'missing_in_ledger', 'missing_in_report', 'amount_mismatch')),
  type text NOT NULL CHECK (type IN ('capture', 'refund')),
  reference text NOT NULL,
  -- The payment or refund and its ledger transaction; null when our ledger has no such line.
  source_id text,
  balance_transaction text,
  currency text NOT NULL,
  processor_amount bigint,
  ledger_amount bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_items_report ON reconciliation_items (report_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['reconciliation_reports', 'reconciliation_items'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

-- What a processor settled in [p_from, p_to), for the simulated processors' reports: they keep no
-- records of their own, so these are read from our records of the calls made to them (never the
-- ledger, which is what they are compared with). An authorization with automatic capture is a
-- capture too. Ids are time-ordered, so the id bounds (calls started in a window around the
-- period) let the primary keys find it.
CREATE OR REPLACE FUNCTION worker_processor_settled(p_processor text, p_from timestamptz, p_to timestamptz,
  p_attempt_ids_from text, p_attempt_ids_to text, p_refund_ids_from text, p_refund_ids_to text)
RETURNS TABLE (tenant_id text, livemode boolean, type text, reference text, currency text, amount bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT * FROM (
    SELECT a.tenant_id, a.livemode, 'capture', p.processor_reference, p.currency, a.amount
    FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
    WHERE a.id >= p_attempt_ids_from AND a.id < p_attempt_ids_to AND a.processor = p_processor AND a.status = 'succeeded'
      AND a.completed_at >= p_from AND a.completed_at < p_to
      AND (a.operation = 'capture' OR (a.operation = 'authorize' AND p.capture_method = 'automatic'))
    UNION ALL
    SELECT r.tenant_id, r.livemode, 'refund', r.id, r.currency, -r.amount
    FROM refunds r
    WHERE r.id >= p_refund_ids_from AND r.id < p_refund_ids_to AND r.processor = p_processor AND r.status = 'succeeded'
      AND r.updated_at >= p_from AND r.updated_at < p_to
  ) settled ORDER BY 1, 2, 3, 4
$$;

-- The tenants and modes whose ledger has captures or refunds through this processor in the period,
-- so that one the processor's report leaves out entirely is still reconciled.
CREATE OR REPLACE FUNCTION worker_ledger_processor_scopes(p_processor text, p_from timestamptz, p_to timestamptz, p_ids_from text, p_ids_to text)
RETURNS TABLE (tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT t.tenant_id, t.livemode FROM ledger_transactions t
  LEFT JOIN payments p ON t.type = 'charge' AND p.id = t.source_id
  LEFT JOIN refunds r ON t.type = 'refund' AND r.id = t.source_id
  WHERE t.id >= p_ids_from AND t.id < p_ids_to AND t.created_at >= p_from AND t.created_at < p_to
    AND t.type IN ('charge', 'refund') AND coalesce(p.processor, r.processor) = p_processor
$$;

CREATE OR REPLACE FUNCTION worker_processor_report(p_processor text, p_report_date date)
RETURNS TABLE (id text, csv text, final boolean, reconciled_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, csv, final, reconciled_at FROM processor_reports WHERE processor = p_processor AND report_date = p_report_date
$$;

-- Stores a fetched file unless a final one is already there; returns the file kept.
CREATE OR REPLACE FUNCTION worker_store_processor_report(p_id text, p_processor text, p_report_date date, p_csv text, p_final boolean)
RETURNS TABLE (id text, csv text, final boolean, reconciled_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  INSERT INTO processor_reports AS r (id, processor, report_date, csv, final) VALUES (p_id, p_processor, p_report_date, p_csv, p_final)
  ON CONFLICT (processor, report_date) DO UPDATE SET csv = EXCLUDED.csv, final = EXCLUDED.final, reconciled_at = NULL, created_at = now()
  WHERE NOT r.final;
  RETURN QUERY SELECT r.id, r.csv, r.final, r.reconciled_at FROM processor_reports r WHERE r.processor = p_processor AND r.report_date = p_report_date;
END $$;

CREATE OR REPLACE FUNCTION worker_mark_processor_report_reconciled(p_id text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE processor_reports SET reconciled_at = now() WHERE id = p_id
$$;
