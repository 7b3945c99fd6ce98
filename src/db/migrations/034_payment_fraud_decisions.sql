-- Issue 11: a payment's last fraud decision (the outcome the API shows, the inputs backtests replay) moves off the
-- payments row into a table of its own, written in the same batch statement as the payment's authorization.
-- On the payments row the two documents (about 830 bytes) made the row four times larger at the update that
-- records the authorization than at its insert a few milliseconds earlier: the new version no longer fit on its page,
-- so 73% of those updates were not HOT and wrote all six payments indexes again (27% HOT, against 57% without fraud
-- checks). `npm run bench`, create+confirm at 100 connections, fraud on / off: 0.85-0.88 with the documents on the row,
-- 0.99 with nothing stored. json, not jsonb: the documents are written once per decision and read back whole.
CREATE TABLE payment_fraud_decisions (
  payment_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  outcome json NOT NULL,
  inputs json NOT NULL,
  decided_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE payment_fraud_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_fraud_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON payment_fraud_decisions
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

INSERT INTO payment_fraud_decisions (payment_id, tenant_id, livemode, outcome, inputs, decided_at)
SELECT id, tenant_id, livemode, fraud_outcome::json, coalesce(fraud_inputs, '{}')::json, updated_at
FROM payments WHERE fraud_outcome IS NOT NULL;

ALTER TABLE payments DROP COLUMN fraud_outcome, DROP COLUMN fraud_inputs;
