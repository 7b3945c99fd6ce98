-- Team users (a tenant's) and operator staff (tenant_id '__platform__', hence no foreign key).
-- A person works in both modes of their tenant, choosing one per session, so these tables belong
-- to the tenant as a whole, like `tenants` itself: the policy checks the tenant, not the mode.
CREATE TABLE users (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  email text NOT NULL CHECK (email = lower(email)),
  role text NOT NULL,
  status text NOT NULL CHECK (status IN ('invited', 'active', 'deactivated')),
  password_hash text,
  -- The TOTP secret must be read back to check a code, so it is encrypted (vault KEK), not hashed.
  totp_kek_id text,
  totp_wrapped_dek bytea,
  totp_secret_sealed bytea,
  totp_enrolled_at timestamptz,
  -- The last TOTP time step accepted: a code is good once, not for its whole 30-second window.
  totp_last_step bigint NOT NULL DEFAULT 0,
  -- Hex SHA-256 of each unused code (random, so a fast hash is enough, as for API keys).
  recovery_code_hashes text[] NOT NULL DEFAULT '{}',
  failed_logins integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  invitation_hash bytea UNIQUE,
  invitation_expires_at timestamptz,
  invited_by text,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- One login per address across the platform: the email alone names the account at sign-in.
CREATE UNIQUE INDEX users_email ON users (email) WHERE status <> 'deactivated';
CREATE INDEX users_tenant ON users (tenant_id, id DESC);

CREATE TABLE user_passkeys (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  user_id text NOT NULL REFERENCES users(id),
  credential_id text NOT NULL UNIQUE,
  public_key bytea NOT NULL,
  counter bigint NOT NULL DEFAULT 0,
  transports text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);
CREATE INDEX user_passkeys_user ON user_passkeys (user_id);

-- Server-side sessions when REDIS_URL is not set. Only the SHA-256 of the cookie is stored.
-- `stage` 'mfa' is a login whose password was right and whose second factor is awaited.
-- Times come from the application's clock (tests move it), never from DEFAULT now().
CREATE TABLE user_sessions (
  token_hash bytea PRIMARY KEY,
  id text NOT NULL UNIQUE,
  tenant_id text NOT NULL,
  user_id text NOT NULL,
  stage text NOT NULL CHECK (stage IN ('mfa', 'active')),
  record jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'user_passkeys', 'user_sessions'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_scope ON %I USING (app_tenant_allows(tenant_id)) WITH CHECK (app_tenant_allows(tenant_id))', t);
  END LOOP;
END $$;

-- Sign-in and invitation links name no tenant: these find the one matching row, and list nothing.
-- The hash comes back in the same call for a known and an unknown email alike: one round trip
-- either way, so the answer's timing does not tell them apart.
CREATE OR REPLACE FUNCTION auth_find_login(p_email text)
RETURNS TABLE (id text, tenant_id text, password_hash text, locked_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id, password_hash, locked_until FROM users WHERE email = lower(p_email) AND status = 'active'
$$;

CREATE OR REPLACE FUNCTION auth_find_invitation(p_hash bytea)
RETURNS TABLE (id text, tenant_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT id, tenant_id FROM users WHERE invitation_hash = p_hash AND status = 'invited'
$$;

-- A session is found by its cookie's hash, expired (idle or absolute) or touched, in one call.
CREATE OR REPLACE FUNCTION auth_touch_session(p_hash bytea, p_now timestamptz, p_idle interval, p_absolute interval)
RETURNS TABLE (id text, tenant_id text, user_id text, stage text, record jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
BEGIN
  DELETE FROM user_sessions s WHERE s.token_hash = p_hash
    AND (s.last_seen_at + p_idle <= p_now OR s.created_at + p_absolute <= p_now);
  RETURN QUERY UPDATE user_sessions s SET last_seen_at = greatest(s.last_seen_at, p_now)
    WHERE s.token_hash = p_hash
    RETURNING s.id, s.tenant_id, s.user_id, s.stage, s.record, s.created_at;
END $$;
