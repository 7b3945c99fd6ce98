-- Issue 10: the delivery workers' statements plan from the rows they are handed, never from table statistics.
-- A queue table's statistics are stale by nature: right after a burst (or on a new install, before autovacuum's
-- first analyze) the planner believed webhook_endpoints held one enabled row and webhook_deliveries a few hundred,
-- so the dispatch walked every due delivery once per endpoint and the lookup of a batch of RabbitMQ messages scanned
-- each endpoint's whole backlog: a 20,000-delivery backlog drained at 1,500/s instead of 3,000-4,300/s (measured
-- with `npm run bench:webhooks -- --transport amqp`, BENCH_DURATION=5, against the same run with ANALYZE every
-- second). Each statement is written in the order it should run (the rows handed in, or the due index, first) and
-- these settings keep that order and its index probes whatever the statistics say.
ALTER FUNCTION worker_fan_out_webhook_events(integer)
  SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION worker_dispatch_webhook_deliveries(timestamptz, integer, integer, interval, text[])
  SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION worker_dispatched_webhook_deliveries(text[], integer[])
  SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION worker_release_webhook_deliveries(text[], integer[])
  SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION worker_claim_webhook_deliveries(timestamptz, integer, integer, interval, text[])
  SET join_collapse_limit = 1 SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off;
ALTER FUNCTION worker_record_webhook_attempts(text[], text[], text[], integer[], integer[], text[], text[],
  timestamptz[], text[], timestamptz[], integer[], timestamptz[])
  SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off;
