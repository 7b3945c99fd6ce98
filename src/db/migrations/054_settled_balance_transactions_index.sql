-- Issue 14: a settlement's balance transactions (GET /v1/balance_transactions?settlement=), and a payout's through the
-- settlements it carried (?payout=), were a walk of the tenant's whole balance history in id order, filtered. A
-- transaction gets its settlement once, by the settlement pass's update (which already leaves the unsettled index, so
-- it was never HOT); only settled transactions enter this index, so the payment path's inserts do not maintain it.
CREATE INDEX ledger_transactions_settled ON ledger_transactions (tenant_id, livemode, settlement_id, id DESC)
  WHERE balance_type IS NOT NULL AND settlement_id IS NOT NULL;
CREATE INDEX settlements_payout ON settlements (tenant_id, livemode, payout_id) WHERE payout_id IS NOT NULL;
