-- Double-entry ledger. Every movement of money is a ledger_transaction whose ledger_entries sum to
-- zero per currency; entries are never changed or removed (corrections are new transactions), so
-- any balance can be recomputed from them. ledger_accounts.balance is a running total kept in the
-- same database transaction as the entries, for fast reads; `npm run ledger:verify` checks it.
CREATE TABLE ledger_accounts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  type text NOT NULL CHECK (type IN ('pending', 'available', 'reserve', 'fees', 'processor_clearing', 'payouts_in_transit', 'disputes')),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  balance bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, livemode, type, currency),
  -- Target of the entries' composite key below.
  UNIQUE (id, tenant_id, livemode, currency)
);

CREATE TABLE ledger_transactions (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  type text NOT NULL,
  source_id text,
  description text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, tenant_id, livemode)
);
CREATE INDEX ledger_transactions_source ON ledger_transactions (tenant_id, livemode, source_id);

-- The composite foreign keys make the database itself refuse an entry whose currency differs from
-- its account's, or whose tenant or mode differs from its account's or its transaction's.
CREATE TABLE ledger_entries (
  id text PRIMARY KEY,
  transaction_id text NOT NULL,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  account_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount <> 0),
  currency text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (transaction_id, tenant_id, livemode) REFERENCES ledger_transactions (id, tenant_id, livemode),
  FOREIGN KEY (account_id, tenant_id, livemode, currency) REFERENCES ledger_accounts (id, tenant_id, livemode, currency)
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

-- Runs at commit (deferred), once every entry of the transaction is in. SECURITY DEFINER so that
-- row-level security cannot hide entries from the check.
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  unbalanced record;
BEGIN
  SELECT currency, sum(amount) AS total INTO unbalanced
    FROM ledger_entries WHERE transaction_id = NEW.transaction_id
    GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % is unbalanced: % % left over', NEW.transaction_id, unbalanced.total, unbalanced.currency
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- A transaction without entries would be a record of nothing.
CREATE OR REPLACE FUNCTION ledger_check_has_entries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ledger_entries WHERE transaction_id = NEW.id) THEN
    RAISE EXCEPTION 'ledger transaction % has no entries', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_transactions_have_entries AFTER INSERT ON ledger_transactions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_has_entries();

-- The application role has no UPDATE or DELETE on these tables (see migrate.ts); this refuses them
-- for every role, the owner included, so history cannot be rewritten by a mistaken migration.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

ALTER TABLE ledger_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON ledger_accounts USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
ALTER TABLE ledger_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_transactions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON ledger_transactions USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
ALTER TABLE ledger_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON ledger_entries USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
