-- Per-object order of events. Every writer changes an object's row (compare-and-set, which takes
-- its row lock) or creates it before inserting its events, and nextval runs at the insert, under
-- that lock: of two events about one object, the later change always draws the larger number.
-- One sequence for all events, with no per-session cache (a cache would hand out numbers out of
-- order across sessions); a receiver compares numbers, it does not count them.
CREATE SEQUENCE event_sequence AS bigint;

-- txid: the writing transaction, so that a reader can tell exactly which events became visible
-- between two snapshots (commit order is not id order). The live stream's positions are snapshots.
ALTER TABLE events
  ADD COLUMN sequence bigint NOT NULL DEFAULT nextval('event_sequence'),
  ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_tenant_txid ON events (tenant_id, livemode, txid);

-- Wakes the API processes' event streams once per statement that wrote events, after commit, in
-- commit order. The payload names the (tenant, mode) pairs written, so a process wakes only for
-- the tenants it streams; '*' when there are too many to name in one notification.
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE scopes text;
BEGIN
  SELECT string_agg(DISTINCT tenant_id || CASE WHEN livemode THEN ':t' ELSE ':f' END, ',') INTO scopes FROM new_events;
  IF scopes IS NOT NULL THEN
    PERFORM pg_notify('payforward_events', CASE WHEN length(scopes) > 7000 THEN '*' ELSE scopes END);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
