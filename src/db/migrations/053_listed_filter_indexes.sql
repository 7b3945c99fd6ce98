-- Issue 14: lists filtered by a column of their own walk an index in list order. An actor's or an object's audit
-- entries were found through (tenant_id, actor_id) or (tenant_id, target_id) and sorted: every entry of an API key
-- that has made a million changes read and sorted for a page of ten. With the mode and the id after the filtered
-- column, a page is the first rows of one index range, newest first (and the export's oldest first, the same range
-- walked backwards). Checkout sessions by status had only the tenant's id index, so a page of the few open sessions
-- read past every completed one.
CREATE INDEX audit_entries_actor_listed ON audit_entries (tenant_id, livemode, actor_id, id DESC);
CREATE INDEX audit_entries_target_listed ON audit_entries (tenant_id, livemode, target_id, id DESC);
DROP INDEX audit_entries_actor;
DROP INDEX audit_entries_target;
CREATE INDEX checkout_sessions_status ON checkout_sessions (tenant_id, livemode, status, id DESC);
