-- Money movement: what the ledger's transactions mean to a tenant (balance transactions), when
-- pending funds become available (settlement), how they leave (payouts) and what disputes withhold.

-- When captured funds become available: at once (with the plan's instant-settlement fee) or at
-- the start (00:00 UTC) of the Nth business day (Monday to Friday) after the capture.
ALTER TABLE tenants ADD COLUMN settlement_schedule jsonb NOT NULL DEFAULT '{"type": "daily", "delay_days": 2}';

-- Priced at capture with the plan version in force when the payment was created.
ALTER TABLE payments
  ADD COLUMN pricing_version integer NOT NULL DEFAULT 0,
  ADD COLUMN fee bigint,
  ADD COLUMN balance_transaction text;

ALTER TABLE refunds ADD COLUMN balance_transaction text;

-- A balance transaction is a ledger transaction that changes a tenant's pending or available
-- funds (charge, refund, dispute, payout…): `balance_type` names which, and amount − fee = net is
-- what it added there. Internal movements (settlement, payout paid, dispute lost) have none.
ALTER TABLE ledger_transactions
  ADD COLUMN currency text,
  ADD COLUMN amount bigint,
  ADD COLUMN fee bigint NOT NULL DEFAULT 0,
  ADD COLUMN fee_details jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN balance_type text CHECK (balance_type IN ('pending', 'available')),
  ADD COLUMN available_on timestamptz,
  -- Set once, by the settlement that moved this transaction's net from pending to available.
  ADD COLUMN settlement_id text,
  ADD CONSTRAINT ledger_transactions_balance_fields CHECK (balance_type IS NULL OR (currency IS NOT NULL AND amount IS NOT NULL AND available_on IS NOT NULL));
CREATE INDEX ledger_transactions_balance ON ledger_transactions (tenant_id, livemode, id DESC) WHERE balance_type IS NOT NULL;
-- What the settlement job looks for; a settled transaction leaves the index.
CREATE INDEX ledger_transactions_unsettled ON ledger_transactions (available_on, tenant_id, livemode, currency)
  WHERE balance_type = 'pending' AND settlement_id IS NULL;

-- Money is never rewritten: the one change a transaction may receive is being marked settled,
-- once. Everything else is still refused, for every role.
CREATE OR REPLACE FUNCTION ledger_transactions_settle_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.settlement_id IS NULL AND NEW.settlement_id IS NOT NULL
     AND (to_jsonb(OLD) - 'settlement_id') = (to_jsonb(NEW) - 'settlement_id') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER ledger_transactions_append_only ON ledger_transactions;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION ledger_transactions_settle_only();

-- Every capture posts a transaction of three entries inside the payment batch, so the ledger's
-- integrity checks are set-based, once per statement, instead of per row: per-row foreign-key
-- checks and deferred constraint triggers ran about ten queries per payment and halved the
-- payment write path's throughput. What they guaranteed still holds, checked by statement-level
-- triggers over the rows each statement inserted:
-- - the entries a statement adds to a transaction sum to zero per currency, so every transaction
--   does;
-- - an entry's account and transaction exist with the entry's tenant and mode (and the account
--   with its currency): accounts and transactions are never deleted (refused below), so
--   what was checked on insert stays true.
-- That a transaction has entries stays a deferred check at commit (one per transaction).
-- Like the other high-volume tables (001_core.sql), ledger transactions carry tenant_id without a
-- foreign key to tenants: each insert would take a share lock on the tenant's one row.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_tenant_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_id_tenant_id_livemode_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_id_tenant_id_livemode_currency_fkey;
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_id_tenant_id_livemode_key;
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_id_tenant_id_livemode_currency_key;
DROP TRIGGER ledger_entries_balanced ON ledger_entries;
DROP FUNCTION ledger_check_balanced();
-- Read only by ledger:verify, which scans every entry anyway.
DROP INDEX ledger_entries_account;
-- Entries are found by their transaction: one index, keyed (transaction, entry), serves as both
-- primary key and lookup, where two were maintained for every entry.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey;
DROP INDEX ledger_entries_transaction;
ALTER TABLE ledger_entries ADD PRIMARY KEY (transaction_id, id);

-- The joins must be index probes from the statement's few rows: on a table growing faster than
-- autoanalyze runs, the planner's stale estimates chose sequential scans and hash joins, which
-- cost more with every row the ledger gained. Hence the planner settings of the function.
CREATE OR REPLACE FUNCTION ledger_check_new_entries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
  SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT transaction_id, currency, sum(amount) AS total INTO bad
    FROM new_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % is unbalanced: % % left over', bad.transaction_id, bad.total, bad.currency
      USING ERRCODE = 'check_violation';
  END IF;
  -- Joined on the primary key alone: with (tenant, mode) in the join the planner may probe by
  -- tenant instead, through every transaction of the tenant for each entry.
  SELECT e.id INTO bad FROM new_entries e
    LEFT JOIN ledger_transactions t ON t.id = e.transaction_id
    WHERE t.id IS NULL OR t.tenant_id <> e.tenant_id OR t.livemode <> e.livemode LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger entry % has no transaction of its tenant and mode', bad.id USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT e.id INTO bad FROM new_entries e
    LEFT JOIN ledger_accounts a ON a.id = e.account_id
    WHERE a.id IS NULL OR a.tenant_id <> e.tenant_id OR a.livemode <> e.livemode OR a.currency <> e.currency LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger entry % has no account of its tenant, mode and currency', bad.id USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_entries_checked AFTER INSERT ON ledger_entries
  REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_entries();

CREATE TRIGGER ledger_accounts_kept BEFORE DELETE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- One row per settlement run, tenant, mode and currency: what it made available and why.
CREATE TABLE settlements (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  currency text NOT NULL,
  settlement_date date NOT NULL,
  count integer NOT NULL,
  gross bigint NOT NULL,
  fees bigint NOT NULL,
  refunds bigint NOT NULL,
  disputes bigint NOT NULL,
  net bigint NOT NULL,
  -- The pending → available posting; none when the settled transactions net to zero.
  ledger_transaction_id text,
  -- The automatic payout that carried this settlement's funds to the bank.
  payout_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlements_tenant ON settlements (tenant_id, livemode, id DESC);

-- What GET /v1/balance_transactions lists. security_invoker: the tables' row-level security applies
-- to whoever reads the view.
CREATE VIEW balance_transactions WITH (security_invoker = true) AS
  SELECT t.*, s.payout_id FROM ledger_transactions t LEFT JOIN settlements s ON s.id = t.settlement_id
  WHERE t.balance_type IS NOT NULL;

CREATE TABLE payouts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  method text NOT NULL CHECK (method IN ('standard', 'instant')),
  status text NOT NULL CHECK (status IN ('pending', 'in_transit', 'paid', 'failed')),
  destination text NOT NULL,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  automatic boolean NOT NULL DEFAULT false,
  arrival_date timestamptz NOT NULL,
  failure_code text,
  failure_message text,
  balance_transaction text NOT NULL,
  failure_balance_transaction text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payouts_tenant ON payouts (tenant_id, livemode, id DESC);
CREATE INDEX payouts_moving ON payouts (arrival_date) WHERE status IN ('pending', 'in_transit');

CREATE TABLE disputes (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  payment_id text NOT NULL UNIQUE REFERENCES payments(id),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  reason text NOT NULL,
  status text NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
  evidence jsonb NOT NULL DEFAULT '{}',
  evidence_submitted_at timestamptz,
  due_by timestamptz NOT NULL,
  fee bigint NOT NULL,
  processor text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  balance_transactions text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_tenant ON disputes (tenant_id, livemode, id DESC);
CREATE INDEX disputes_under_review ON disputes (updated_at) WHERE status = 'under_review';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['settlements', 'payouts', 'disputes'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode))', t);
  END LOOP;
END $$;

-- Work the jobs find across tenants, then carry out inside each tenant's scope.
CREATE OR REPLACE FUNCTION worker_due_settlements(p_as_of timestamptz)
RETURNS TABLE (tenant_id text, livemode boolean, currency text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT tenant_id, livemode, currency FROM ledger_transactions
  WHERE balance_type = 'pending' AND settlement_id IS NULL AND available_on <= p_as_of
$$;

-- Payouts the bank rail has a next step for: every pending one, and those in transit that are due.
CREATE OR REPLACE FUNCTION worker_moving_payouts(p_now timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM payouts
  WHERE status = 'pending' OR (status = 'in_transit' AND arrival_date <= p_now)
  ORDER BY arrival_date LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION worker_disputes_under_review(p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM disputes WHERE status = 'under_review' ORDER BY updated_at LIMIT p_limit
$$;

-- Captures the processor said it will dispute (see Connector.willDispute), written with the
-- capture itself, for the dispute intake to poll. A list of its own rather than an index on
-- payments: any index on a column a payment update changes would stop those updates from being
-- HOT (in-page, without touching the other indexes), which every payment relies on.
CREATE TABLE dispute_watch (
  payment_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  processor text NOT NULL,
  processor_reference text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE dispute_watch ENABLE ROW LEVEL SECURITY;
ALTER TABLE dispute_watch FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON dispute_watch USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

CREATE OR REPLACE FUNCTION worker_undisputed_captures(p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean, processor text, processor_reference text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT w.payment_id, w.tenant_id, w.livemode, w.processor, w.processor_reference FROM dispute_watch w
  ORDER BY w.created_at LIMIT p_limit
$$;

-- Disputes left unanswered past due_by, which are lost (as at Stripe).
CREATE INDEX disputes_awaiting_response ON disputes (due_by) WHERE status = 'needs_response';
CREATE OR REPLACE FUNCTION worker_overdue_disputes(p_as_of timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, livemode FROM disputes WHERE status = 'needs_response' AND due_by <= p_as_of ORDER BY due_by LIMIT p_limit
$$;

-- Payouts draw only on available funds and settlement never moves more there than it holds, so a
-- negative available balance can only come from a bug: the database refuses it.
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_available_not_negative CHECK (type <> 'available' OR balance >= 0);
