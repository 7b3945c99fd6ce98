-- Issue 10, RabbitMQ transport: a delivery's long lease (WEBHOOK_AMQP_LEASE_SECONDS) is only granted once the broker
-- has confirmed the message that will bring the delivery back. Until then (dispatched but not yet published, or an
-- attempt recorded whose retry is not yet in a delay queue) it holds a short lease (WEBHOOK_AMQP_PUBLISH_LEASE_SECONDS),
-- so a worker killed in between leaves the delivery to the sweeper within that short bound of its due time, not
-- within the long lease. The extension is compare-and-set on dispatch_seq: a delivery recorded, redelivered or swept
-- meanwhile has moved on and keeps its own lease.
CREATE FUNCTION worker_extend_webhook_leases(p_ids text[], p_seqs integer[], p_until timestamptz[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  UPDATE webhook_deliveries d SET dispatch_until = m.until
  FROM unnest(p_ids, p_seqs, p_until) AS m (id, seq, until)
  WHERE d.id = m.id AND d.dispatch_seq = m.seq AND d.status = 'pending'
$$;
-- Planned from the ids it is handed, whatever the queue table's statistics say (see 033).
ALTER FUNCTION worker_extend_webhook_leases(text[], integer[], timestamptz[])
  SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
