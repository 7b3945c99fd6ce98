-- Issue 14: an account's running balance striped over 16 slot rows, summed on read, instead of one balance column.
-- Every posting of a tenant (each payment batch, capture, refund) added to its one pending row, and held that row's
-- lock until its commit, so they all queued behind each other in the mixed bench (a refund's statement waited 200 ms
-- for the batches). A posting now adds to one slot per account, the slot of its database transaction
-- (ledger_slot()), so concurrent postings of one tenant touch different rows and commit together; a transaction that
-- posts twice uses the same slot both times, so the global lock order (account id, then slot) still holds.
--
-- The available balance must be exact where it is spent: whoever spends from it (payouts, a negative settlement)
-- locks every slot of the tenant's accounts of the currency, in (account, slot) order (LedgerService.lockAvailable),
-- and moves the available account's total into its own slot before posting. Each available slot is kept at or above
-- zero by the check below: credits land in any slot, debits only in the slot a spender filled, so no slot, and hence
-- no sum of slots, can go negative, and a debit that skipped the locks is refused rather than let through.
CREATE TABLE ledger_balance_slots (
  account_id text NOT NULL REFERENCES ledger_accounts (id),
  slot smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  -- The account's type, copied: the check on available slots needs it on the row.
  type text NOT NULL,
  balance bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (account_id, slot),
  CONSTRAINT ledger_available_not_negative CHECK (type <> 'available' OR balance >= 0)
);
ALTER TABLE ledger_balance_slots ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_balance_slots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON ledger_balance_slots USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));
CREATE TRIGGER ledger_balance_slots_kept BEFORE DELETE ON ledger_balance_slots
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_balance_slots_no_truncate BEFORE TRUNCATE ON ledger_balance_slots
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The slot of the current database transaction. Consecutive transaction ids take consecutive slots, so up to 16
-- transactions that began writing about the same time (the ones that could wait on each other) never share one.
CREATE FUNCTION ledger_slot() RETURNS smallint LANGUAGE sql STABLE AS $$
  SELECT (pg_current_xact_id()::text::bigint % 16)::smallint
$$;

-- Every account has all its slots from its creation, in the same transaction: a posting only ever updates a row that
-- exists, so it takes row locks (in the global order) and never waits on another transaction's insert.
CREATE FUNCTION ledger_account_slots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_balance_slots (account_id, slot, tenant_id, livemode, type)
    SELECT a.id, s, a.tenant_id, a.livemode, a.type FROM new_accounts a, generate_series(0, 15) s;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_accounts_slots AFTER INSERT ON ledger_accounts
  REFERENCING NEW TABLE AS new_accounts FOR EACH STATEMENT EXECUTE FUNCTION ledger_account_slots();

INSERT INTO ledger_balance_slots (account_id, slot, tenant_id, livemode, type, balance)
  SELECT a.id, s, a.tenant_id, a.livemode, a.type, CASE WHEN s = 0 THEN a.balance ELSE 0 END
  FROM ledger_accounts a, generate_series(0, 15) s;
-- Dropped, not left behind: a reader of the old column fails loudly instead of reading a balance no longer kept.
-- Its check (ledger_available_not_negative) goes with it; the slots carry it now.
ALTER TABLE ledger_accounts DROP COLUMN balance;

-- An account's balance: the sum of its slots. security_invoker, so row-level security applies to whoever reads.
CREATE VIEW ledger_account_balances WITH (security_invoker = true) AS
  SELECT a.id, a.tenant_id, a.livemode, a.type, a.currency, b.balance
  FROM ledger_accounts a
  CROSS JOIN LATERAL (SELECT sum(s.balance)::bigint AS balance FROM ledger_balance_slots s WHERE s.account_id = a.id) b;
