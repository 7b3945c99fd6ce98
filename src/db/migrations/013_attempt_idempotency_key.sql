-- The Idempotency-Key (principal-qualified, as stored in idempotency_keys) of the request that began
-- a processor call. A retry of a request answered 503 (outcome unknown) may arrive after the recovery
-- worker resolved the call: the retry finds its own attempt by this key and answers with that call's
-- outcome, instead of refusing the payment's new state or acting a second time. Attempts are read by
-- payment (payment_attempts_payment), so the key needs no index of its own.
ALTER TABLE payment_attempts ADD COLUMN idempotency_key text;
