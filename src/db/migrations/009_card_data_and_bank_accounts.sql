-- Issue 8, card data and payouts.

-- A BIN is shown only for card numbers of 15 digits or more (see displayableBin). The number's
-- length is not stored, but AES-GCM keeps it: the sealed PAN is a 12-byte IV, a 16-byte tag and
-- one byte per digit.
ALTER TABLE payment_methods ALTER COLUMN bin DROP NOT NULL;
UPDATE payment_methods SET bin = NULL WHERE octet_length(pan_ciphertext) - 28 < 15;

-- Payouts go only to bank accounts the tenant registered and verified. The account number is
-- sealed like a card number (envelope encryption under the vault's KEK); only its last 4 digits
-- and a keyed fingerprint are readable. Deleting an account keeps its row (deleted_at), since
-- payouts already on the rail still need where to go.
CREATE TABLE bank_accounts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  country text NOT NULL,
  currency text NOT NULL,
  account_holder_name text,
  routing_number text NOT NULL,
  last4 text NOT NULL,
  fingerprint text NOT NULL,
  kek_id text NOT NULL,
  wrapped_dek bytea NOT NULL,
  account_ciphertext bytea NOT NULL,
  status text NOT NULL CHECK (status IN ('new', 'verified', 'verification_failed')),
  microdeposit_amounts jsonb NOT NULL,
  verification_attempts integer NOT NULL DEFAULT 0,
  default_for_currency boolean NOT NULL DEFAULT false,
  metadata jsonb NOT NULL DEFAULT '{}',
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_accounts_tenant ON bank_accounts (tenant_id, livemode, id DESC);
-- One default account per currency, so an automatic payout never has two candidates.
CREATE UNIQUE INDEX bank_accounts_default ON bank_accounts (tenant_id, livemode, currency)
  WHERE default_for_currency AND deleted_at IS NULL;

ALTER TABLE bank_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE bank_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON bank_accounts
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

-- A payout's destination is now a bank account id (ba_…). Earlier payouts named a raw account
-- number: keep only its last 4 digits, so no account number stays readable in the database.
UPDATE payouts SET destination = '••••' || right(destination, 4) WHERE destination !~ '^ba_';
