-- Issue 14: the RabbitMQ relay takes its events from a queue of its own instead of marking every event published,
-- as the webhook fan-out does since 047. Marking set events.published_at, the column of the partial index that found
-- the unpublished events, so each mark was an update that could not be HOT: the event's whole row (its payload, one
-- to three kilobytes) written and logged a second time, with an entry in each of its indexes. And without a relay
-- (no AMQP_URL) that index held every event ever written, one more entry for each event the payment path inserts.
--
-- Now a statement-level trigger on events queues each new event's id (the payload stays where it is) in the same
-- transaction, and the relay deletes what the broker confirmed: a small insert and a delete, and the event row is
-- written once. A crash between the broker's confirm and the delete leaves the event queued, to be published again
-- (at least once, as before; the message id is the event id).
--
-- Events are queued only once a relay is registered (event_relays): by a process that migrates with AMQP_URL set,
-- and by the relay's first pass. So a platform without RabbitMQ keeps no queue at all, and one that adds it later
-- relays its events from then on, not its whole history. Registration stays: a relay stopped for a while finds
-- everything committed meanwhile. To stop relaying for good, run the workers without AMQP_URL, then
-- DELETE FROM event_relays; TRUNCATE event_relay_queue.

CREATE TABLE event_relays (
  name text PRIMARY KEY,
  registered_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event_relay_queue (
  event_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL
);
-- Every pass deletes what it published: vacuumed as soon as autovacuum visits, unthrottled.
ALTER TABLE event_relay_queue SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0);
ALTER TABLE event_relay_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_relay_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON event_relay_queue USING (app_scope_allows(tenant_id, livemode))
  WITH CHECK (app_scope_allows(tenant_id, livemode));

-- A relay has published before: it goes on, from the events it had not published yet.
INSERT INTO event_relays (name) SELECT 'amqp' WHERE EXISTS (SELECT 1 FROM events WHERE published_at IS NOT NULL);
INSERT INTO event_relay_queue (event_id, tenant_id, livemode)
SELECT id, tenant_id, livemode FROM events WHERE published_at IS NULL AND EXISTS (SELECT 1 FROM event_relays);

CREATE FUNCTION events_queue_relay() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM event_relays) THEN
    INSERT INTO event_relay_queue (event_id, tenant_id, livemode) SELECT id, tenant_id, livemode FROM new_events;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER events_queue_relay AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION events_queue_relay();

DROP FUNCTION worker_unpublished_events(integer);
DROP FUNCTION worker_mark_events_published(text[]);

CREATE FUNCTION worker_register_event_relay(p_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO event_relays (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
END
$$;

-- The oldest queued events with what a message carries, as 046's worker_unpublished_events returned them.
CREATE FUNCTION worker_queued_relay_events(p_limit integer)
RETURNS TABLE(id text, tenant_id text, livemode boolean, type text, object_id text, data json, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = public, pg_temp SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT e.id, e.tenant_id, e.livemode, e.type, e.object_id, e.data, e.created_at
  FROM (SELECT event_id FROM event_relay_queue ORDER BY event_id LIMIT p_limit) q
  JOIN events e ON e.id = q.event_id
  ORDER BY e.id;
END
$$;

CREATE FUNCTION worker_dequeue_relay_events(p_ids text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp AS $$
BEGIN
  DELETE FROM event_relay_queue WHERE event_id = ANY (p_ids);
END
$$;

-- Its partial index goes with it.
ALTER TABLE events DROP COLUMN published_at;
