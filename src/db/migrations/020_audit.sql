-- The audit trail (PCI DSS 10.2, 10.3, 10.5): one hash chain per tenant and one for the platform
-- (tenant_id '__platform__'). Each entry's hash covers the previous entry's hash, its own sequence
-- number and its content, exactly as stored in `content`; the columns beside it are copies for
-- filtering, which audit:verify checks against the content. Entries of both modes share their
-- tenant's chain, and each carries its mode for row-level security like every tenant table.
CREATE TABLE audit_entries (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  seq bigint NOT NULL,
  action text NOT NULL,
  actor_type text NOT NULL,
  actor_id text NOT NULL,
  target_type text NOT NULL,
  target_id text NOT NULL,
  request_id text,
  content text NOT NULL,
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL,
  created_at timestamptz NOT NULL,
  UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_entries_tenant ON audit_entries (tenant_id, livemode, id DESC);
CREATE INDEX audit_entries_target ON audit_entries (tenant_id, target_id);
CREATE INDEX audit_entries_actor ON audit_entries (tenant_id, actor_id);

ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_entries USING (app_scope_allows(tenant_id, livemode))
  WITH CHECK (app_scope_allows(tenant_id, livemode));

-- Each chain's head: the row whose lock serialises appends to that chain (and only that chain).
-- Nobody but the append trigger below touches it; it spans both modes, like the tenants table.
CREATE TABLE audit_chains (
  tenant_id text PRIMARY KEY,
  seq bigint NOT NULL,
  head_hash bytea NOT NULL,
  prev_hash bytea NOT NULL,
  updated_at timestamptz NOT NULL
);
ALTER TABLE audit_chains ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_chains USING (app_tenant_allows(tenant_id)) WITH CHECK (app_tenant_allows(tenant_id));

-- Signed checkpoints of each chain's head (Ed25519 over chain, seq, hash and time): an end cut off
-- the chain, or a chain rewritten whole, no longer matches a signature made before. Numbered per
-- chain so that a deleted checkpoint leaves a gap. Platform data, read only through the functions below.
CREATE TABLE audit_checkpoints (
  tenant_id text NOT NULL,
  number bigint NOT NULL,
  seq bigint NOT NULL,
  hash bytea NOT NULL,
  signed_at timestamptz NOT NULL,
  public_key text NOT NULL,
  signature bytea NOT NULL,
  PRIMARY KEY (tenant_id, number)
);
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;

-- The database, not the application, numbers and links each entry: the writer supplies the content,
-- and the head row's lock (taken by the upsert) orders concurrent appends to one chain.
CREATE OR REPLACE FUNCTION audit_entries_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE genesis CONSTANT bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
BEGIN
  INSERT INTO audit_chains AS c (tenant_id, seq, head_hash, prev_hash, updated_at)
  VALUES (NEW.tenant_id, 1, sha256(genesis || int8send(1) || convert_to(NEW.content, 'UTF8')), genesis, now())
  ON CONFLICT (tenant_id) DO UPDATE SET
    seq = c.seq + 1,
    prev_hash = c.head_hash,
    head_hash = sha256(c.head_hash || int8send(c.seq + 1) || convert_to(NEW.content, 'UTF8')),
    updated_at = now()
  RETURNING seq, prev_hash, head_hash INTO NEW.seq, NEW.prev_hash, NEW.hash;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_entries_append BEFORE INSERT ON audit_entries
  FOR EACH ROW EXECUTE FUNCTION audit_entries_append();

-- Append-only for every role, the owner's included, with the ledger's refusal (003_ledger.sql). Privileges are revoked
-- too (see migrate.ts); a superuser can still disable these triggers, and then the hash chain and checkpoints expose it.
CREATE TRIGGER audit_entries_immutable BEFORE UPDATE OR DELETE ON audit_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_checkpoints_immutable BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_chains_no_delete BEFORE DELETE ON audit_chains
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER audit_chains_no_truncate BEFORE TRUNCATE ON audit_chains
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The checkpoint worker: chains whose head has moved since their last checkpoint.
CREATE OR REPLACE FUNCTION worker_audit_heads_to_sign(p_limit integer)
RETURNS TABLE (tenant_id text, seq bigint, head_hash bytea, last_number bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT c.tenant_id, c.seq, c.head_hash, coalesce(k.number, 0) FROM audit_chains c
  LEFT JOIN LATERAL (
    SELECT number, seq FROM audit_checkpoints WHERE tenant_id = c.tenant_id ORDER BY number DESC LIMIT 1
  ) k ON true
  WHERE k.seq IS DISTINCT FROM c.seq
  ORDER BY c.updated_at LIMIT p_limit
$$;

-- Writes checkpoint number p_number; another worker that wrote it first wins, and this one is a no-op.
CREATE OR REPLACE FUNCTION worker_audit_checkpoint(p_tenant text, p_number bigint, p_seq bigint, p_hash bytea,
  p_signed_at timestamptz, p_public_key text, p_signature bytea)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  WITH written AS (
    INSERT INTO audit_checkpoints (tenant_id, number, seq, hash, signed_at, public_key, signature)
    SELECT p_tenant, p_number, p_seq, p_hash, p_signed_at, p_public_key, p_signature
    WHERE EXISTS (SELECT 1 FROM audit_entries WHERE tenant_id = p_tenant AND seq = p_seq AND hash = p_hash)
    ON CONFLICT DO NOTHING RETURNING 1
  ) SELECT EXISTS (SELECT 1 FROM written)
$$;
