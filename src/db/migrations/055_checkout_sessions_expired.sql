-- Issue 14: the worker's frequent checkout pass reads only what is due by the clock, open sessions past their expiry:
-- a range of checkout_sessions_open. A session whose payment succeeded completes as the payment's write commits (the
-- payments module tells the checkout module), so worker_checkout_sessions_to_settle, which looks at the payment of
-- every open session, is now the sweep for what that missed (a crash in between), run far less often.
CREATE FUNCTION worker_checkout_sessions_expired(p_now timestamptz, p_limit integer)
RETURNS TABLE (id text, tenant_id text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT s.id, s.tenant_id, s.livemode FROM checkout_sessions s
  WHERE s.status = 'open' AND s.expires_at <= p_now
  ORDER BY s.expires_at LIMIT p_limit
$$;
