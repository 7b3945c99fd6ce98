-- The balance at a past instant (GET /v1/balance?at=). The running balances on ledger_accounts say only what is now;
-- rebuilding yesterday's from them means subtracting every ledger movement since, which on a busy account is a day of
-- entries per request. Instead a worker pass (never the payment path) stores, for every tenant and mode, the
-- balance-bearing accounts at each hour boundary, and a read adds or subtracts only the movements between the nearest
-- stored hour and the instant (src/modules/ledger/history.ts).
--
-- A row is the sum of the account's entries whose ledger transaction was stamped (created_at) before `at`. The pass
-- takes an hour only once it is 15 minutes old, so that every posting stamped before it has committed by then: the
-- services stamp a posting moments before the database transaction that writes it, which lasts a statement or a few.
CREATE TABLE balance_snapshots (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  at timestamptz NOT NULL CHECK (date_trunc('hour', at) = at),
  currency text NOT NULL,
  type text NOT NULL CHECK (type IN ('available', 'pending', 'reserve', 'disputes')),
  balance bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, livemode, at, currency, type)
);
ALTER TABLE balance_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE balance_snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON balance_snapshots USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

-- The movements between two instants are found by transaction id, which is time-ordered (src/lib/ids.ts): balance
-- transactions through ledger_transactions_balance (004), the rest (settlements, lost disputes, paid payouts) through
-- this one. Captures are balance transactions and never enter it, so the payment path does not maintain it.
CREATE INDEX ledger_transactions_internal ON ledger_transactions (tenant_id, livemode, id) WHERE balance_type IS NULL;

-- Every tenant and mode with ledger accounts but no snapshot at p_at yet.
CREATE OR REPLACE FUNCTION worker_balance_snapshot_scopes(p_at timestamptz)
RETURNS TABLE (tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT a.tenant_id, a.livemode FROM ledger_accounts a
  WHERE NOT EXISTS (SELECT 1 FROM balance_snapshots s WHERE s.tenant_id = a.tenant_id AND s.livemode = a.livemode AND s.at = p_at)
$$;
