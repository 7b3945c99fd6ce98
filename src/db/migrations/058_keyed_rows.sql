-- Issue 14: two costs of idempotency keys that did not have to be paid.
--
-- The unique indexes on (tenant_id, livemode, idempotency_key) of payments, refunds and payouts held an entry for every
-- row, keyed or not: NULL never conflicts, so the entries of rows without a key (a payment made without an
-- Idempotency-Key, or any row once the idempotency purge has released its key after 24 hours) served no lookup and no
-- conflict, and each such payment wrote one more index entry on the payment path. Partial indexes hold only keyed rows:
-- a released row leaves them, so they stay the size of a day's keyed writes instead of growing with the history.
-- Lookups by key (`idempotency_key = $1` implies the predicate) and the payment batch's ON CONFLICT, which names the
-- predicate, use them as before.
--
-- idempotency_keys rows grow about sixfold when their request completes (a claim of ~300 bytes, then a payment's
-- stored answer of ~1.4 KB): at fillfactor 50 a page took ~13 claims and had room for the completions of about half,
-- so 44% of completions were not HOT (a new version elsewhere, an entry in each of the table's two indexes, a dead one
-- left for vacuum). At 15 a page takes 4 claims and the completions of payment-sized answers fit beside them. The
-- bench's keyed create+confirm (pg_stat_user_tables of its database afterwards): 17,905 of 17,913 updates HOT at 15
-- (2,131 bytes of heap a row), 16,616 of 16,616 at 12 (2,812 bytes), 8,954 of 15,974 at 50 (2,180 bytes: the versions
-- moved elsewhere take the room the lower fill leaves empty).
CREATE UNIQUE INDEX payments_idempotency_key_keyed ON payments (tenant_id, livemode, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
DROP INDEX payments_idempotency_key;
ALTER INDEX payments_idempotency_key_keyed RENAME TO payments_idempotency_key;

CREATE UNIQUE INDEX refunds_idempotency_key_keyed ON refunds (tenant_id, livemode, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
DROP INDEX refunds_idempotency_key;
ALTER INDEX refunds_idempotency_key_keyed RENAME TO refunds_idempotency_key;

CREATE UNIQUE INDEX payouts_idempotency_key_keyed ON payouts (tenant_id, livemode, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
DROP INDEX payouts_idempotency_key;
ALTER INDEX payouts_idempotency_key_keyed RENAME TO payouts_idempotency_key;

ALTER TABLE idempotency_keys SET (fillfactor = 15);
