-- Idempotency hardening (issue 8).
--
-- Stored request fingerprints were unkeyed SHA-256 digests of bodies that held card numbers and
-- CVCs (recoverable by brute force from a dump), and stored responses held secret keys in plaintext.
-- Neither can be rewritten (the request bodies are gone), so every stored key is dropped. Keys stored
-- on payments from now on are qualified by the caller's principal, so a create sent before the
-- upgrade and retried after it is not recognised: drain client retries before upgrading.
DELETE FROM idempotency_keys;

-- A claim belongs to a live owner: the request (owner = its process instance and a sequence number)
-- whose process refreshes heartbeat_at about every second while it runs. A claim without an owner
-- (its request ended with a 5xx) or with a stale heartbeat (its process died) may be taken over.
ALTER TABLE idempotency_keys
  ADD COLUMN owner text,
  ADD COLUMN heartbeat_at timestamptz,
  -- Responses that carry secrets (new API keys) are stored only envelope-encrypted under the card
  -- vault's key hierarchy: a data key per record, wrapped by the KEK named here.
  ADD COLUMN response_kek_id text,
  ADD COLUMN response_wrapped_dek bytea,
  ADD COLUMN response_ciphertext bytea;

-- Refunds and payouts remember the key (qualified by the caller's principal) that created them, so
-- a retry whose first run died resumes that refund or payout instead of creating a second one.
ALTER TABLE refunds ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX refunds_idempotency_key ON refunds (tenant_id, livemode, idempotency_key);
ALTER TABLE payouts ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX payouts_idempotency_key ON payouts (tenant_id, livemode, idempotency_key);

-- Keys live 24 hours; after that the same key may start a new request, so the payment, refund or
-- payout created under it stops claiming it too.
CREATE OR REPLACE FUNCTION worker_purge_idempotency_keys(p_older_than interval)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH released_payments AS (
    UPDATE payments SET idempotency_key = NULL
    WHERE idempotency_key IS NOT NULL AND created_at < now() - p_older_than
  ), released_refunds AS (
    UPDATE refunds SET idempotency_key = NULL
    WHERE idempotency_key IS NOT NULL AND created_at < now() - p_older_than
  ), released_payouts AS (
    UPDATE payouts SET idempotency_key = NULL
    WHERE idempotency_key IS NOT NULL AND created_at < now() - p_older_than
  ), d AS (DELETE FROM idempotency_keys WHERE created_at < now() - p_older_than RETURNING 1)
  SELECT count(*) FROM d
$$;
