-- Issue 14: the idempotency purge (worker_purge_idempotency_keys, every five minutes) finds the keys to release on
-- refunds and payouts by an index, as it has on payments (payments_keyed, 006). There it asks for rows with a key
-- created before the cutoff; the only index with the key, (tenant_id, livemode, idempotency_key), holds the key third,
-- so each pass read every refund and payout on the platform (a sequential scan, or the whole of that index) to find
-- the few that had aged past the cutoff since the last pass. A released row leaves these partial indexes, so a pass
-- reads only what it releases.
CREATE INDEX refunds_keyed ON refunds (created_at) WHERE idempotency_key IS NOT NULL;
CREATE INDEX payouts_keyed ON payouts (created_at) WHERE idempotency_key IS NOT NULL;
