-- The KEK's age in the PCI access review is its generation date, which its VAULT_KEK entry carries
-- (`<base64>@<date>`), not when a worker first saw it; and its last rotation is when `vault:rotate`
-- last re-wrapped the sealed records onto it. Both are kept here, durably: an entry's date is
-- recorded once seen, and stays if a later entry omits it.
ALTER TABLE vault_keks ADD COLUMN created_at timestamptz;
ALTER TABLE vault_keks ADD COLUMN rotated_at timestamptz;

DROP FUNCTION worker_observe_keks(text, text[], timestamptz);
CREATE FUNCTION worker_observe_keks(p_active text, p_all text[], p_created timestamptz[], p_now timestamptz)
RETURNS TABLE (id text, first_seen_at timestamptz, active_since timestamptz, created_at timestamptz, rotated_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO vault_keks (id, first_seen_at) SELECT k, p_now FROM unnest(p_all) k ON CONFLICT DO NOTHING;
  UPDATE vault_keks SET created_at = c.created
    FROM unnest(p_all, p_created) AS c(id, created)
    WHERE vault_keks.id = c.id AND c.created IS NOT NULL AND vault_keks.created_at IS DISTINCT FROM c.created;
  -- A KEK becoming the active one is a rotation; the others stop being active.
  UPDATE vault_keks SET active_since = p_now WHERE vault_keks.id = p_active AND vault_keks.active_since IS NULL;
  UPDATE vault_keks SET active_since = NULL WHERE vault_keks.id <> p_active AND vault_keks.active_since IS NOT NULL;
  RETURN QUERY SELECT k.id, k.first_seen_at, k.active_since, k.created_at, k.rotated_at
    FROM vault_keks k WHERE k.id = ANY(p_all) ORDER BY k.first_seen_at;
END $$;

-- Sessions kept in PostgreSQL (no REDIS_URL) end at 15 idle minutes or 12 hours in all, but a row is
-- deleted only when its cookie is presented again: the worker deletes those never presented again,
-- a batch at a time. Times come from the caller (the application's clock), as in auth_touch_session.
CREATE INDEX user_sessions_last_seen ON user_sessions (last_seen_at);
CREATE INDEX user_sessions_created ON user_sessions (created_at);

CREATE FUNCTION worker_purge_expired_sessions(p_now timestamptz, p_idle interval, p_absolute interval, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE purged integer;
BEGIN
  DELETE FROM user_sessions WHERE token_hash IN (
    SELECT token_hash FROM user_sessions
    WHERE last_seen_at <= p_now - p_idle OR created_at <= p_now - p_absolute
    LIMIT p_limit);
  GET DIAGNOSTICS purged = ROW_COUNT;
  RETURN purged;
END $$;
