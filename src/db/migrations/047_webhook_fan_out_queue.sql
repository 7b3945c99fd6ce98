-- Issue 14: the webhook fan-out takes its events from a queue of its own instead of marking every event done.
-- Marking set events.webhooks_fanned_out_at, a column of the partial index that found the pending events, so each
-- mark was an update that could not be HOT: the event's whole row (its payload, about a kilobyte) written a second
-- time, with an entry in each of its five indexes. With no endpoint to deliver to, a pass over 1,000 new events
-- took 30-38 ms, about 35 µs an event: at the mixed benchmark's 1,000 events a second, 3.5% of a core.
--
-- Now a statement-level trigger on events queues each new event's few routing columns (the payload stays where it
-- is) in the same transaction, and the fan-out deletes what it takes: an insert into a small table with one index
-- and a delete, and the event row is written once. The queue is the old marker's meaning kept exactly: an event
-- is in it from its commit until a fan-out commits its deliveries, and a crash in between leaves it there for the
-- next pass. Which endpoints get an event is unchanged (those enabled, subscribed and created no later than it).
-- `webhook_endpoint.test` events are not queued: each goes to the endpoint it tests alone, with the delivery
-- written beside it (WebhookService.sendTest), as replays leave them out too.

CREATE TABLE webhook_fan_out_queue (
  event_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  type text NOT NULL,
  created_at timestamptz NOT NULL
);
-- Every fan-out deletes what it took: vacuumed as soon as autovacuum visits, unthrottled.
ALTER TABLE webhook_fan_out_queue SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0);
ALTER TABLE webhook_fan_out_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_fan_out_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON webhook_fan_out_queue USING (app_scope_allows(tenant_id, livemode))
  WITH CHECK (app_scope_allows(tenant_id, livemode));

-- The events no fan-out has taken yet.
INSERT INTO webhook_fan_out_queue (event_id, tenant_id, livemode, type, created_at)
SELECT id, tenant_id, livemode, type, created_at FROM events WHERE webhooks_fanned_out_at IS NULL;

CREATE FUNCTION events_queue_fan_out() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  INSERT INTO webhook_fan_out_queue (event_id, tenant_id, livemode, type, created_at)
  SELECT id, tenant_id, livemode, type, created_at FROM new_events WHERE type <> 'webhook_endpoint.test';
  RETURN NULL;
END $$;
CREATE TRIGGER events_queue_fan_out AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION events_queue_fan_out();

-- As in 046 (PL/pgSQL, the planner settings of 033), taking the batch from the queue.
CREATE OR REPLACE FUNCTION worker_fan_out_webhook_events(p_limit integer)
RETURNS TABLE(delivery_id text)
LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH batch AS (
    DELETE FROM webhook_fan_out_queue q
    WHERE q.event_id IN (
      SELECT event_id FROM webhook_fan_out_queue ORDER BY event_id LIMIT p_limit FOR UPDATE SKIP LOCKED)
    RETURNING q.event_id AS id, q.tenant_id, q.livemode, q.type, q.created_at
  )
  INSERT INTO webhook_deliveries (id, tenant_id, livemode, event_id, endpoint_id, status, next_attempt_at, event_created_at)
  SELECT webhook_delivery_id(b.id, w.id), b.tenant_id, b.livemode, b.id, w.id,
    'pending', now(), b.created_at
  FROM batch b JOIN webhook_endpoints w ON w.tenant_id = b.tenant_id AND w.livemode = b.livemode
    AND w.status = 'enabled' AND w.deleted_at IS NULL AND webhook_event_matches(w.enabled_events, b.type)
    AND w.created_at <= b.created_at
  ON CONFLICT (endpoint_id, event_id) DO NOTHING
  RETURNING id;
END
$$;

-- Its partial index goes with it.
ALTER TABLE events DROP COLUMN webhooks_fanned_out_at;
