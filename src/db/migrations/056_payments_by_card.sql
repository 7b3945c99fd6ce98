-- A card's payments, found by the card: search by last4 (GET /v1/payments/search?query=last4:'4242') read every payment
-- method of the tenant to find the card's, then every payment of the tenant to find theirs; card-data retention, for
-- each card past its retention, walked the tenant's payments of the whole retention window looking for a recent one.
-- Both grew with the tenant's history. Each payment (with its inline card) adds an entry to each index: the payment
-- path's cost of it is measured in the README (Benchmarks, sixteenth session).
CREATE INDEX payments_payment_method ON payments (payment_method_id) WHERE payment_method_id IS NOT NULL;
CREATE INDEX payment_methods_last4 ON payment_methods (tenant_id, livemode, last4);
