-- Publishable keys (pk_test_…, pk_live_…): one active per tenant and mode, able only to tokenize a card and to act on
-- a payment whose client_secret it presents. They live with the other keys so that one lookup (auth_find_api_key,
-- by SHA-256) resolves every credential; unlike a secret key the full key is kept too, because it is public by design
-- and the tenant must be able to read it again to paste it into a shop page.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_kind_check CHECK (kind IN ('secret', 'restricted', 'publishable'));
ALTER TABLE api_keys ADD COLUMN publishable_key text;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_publishable_key_check
  CHECK ((kind = 'publishable') = (publishable_key IS NOT NULL));
-- A roll marks the old key (rolled_to) before it inserts the new one, so this holds at every statement.
CREATE UNIQUE INDEX api_keys_one_publishable ON api_keys (tenant_id, livemode)
  WHERE kind = 'publishable' AND rolled_to IS NULL AND revoked_at IS NULL;

-- Tenants created before this migration get theirs now (tenants created after get them with their secret keys).
INSERT INTO api_keys (id, tenant_id, livemode, kind, name, key_hash, redacted, scopes, publishable_key)
SELECT 'key_' || replace(gen_random_uuid()::text, '-', ''), k.tenant_id, k.livemode, 'publishable', 'Publishable key',
  sha256(convert_to(k.key, 'UTF8')), left(k.key, 8) || '…' || right(k.key, 4), '{}', k.key
FROM (
  SELECT t.id AS tenant_id, m.livemode,
    'pk_' || CASE WHEN m.livemode THEN 'live' ELSE 'test' END || '_'
      || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') AS key
  FROM tenants t CROSS JOIN (VALUES (false), (true)) AS m(livemode)
  WHERE NOT EXISTS (SELECT 1 FROM api_keys p WHERE p.tenant_id = t.id AND p.livemode = m.livemode
    AND p.kind = 'publishable' AND p.rolled_to IS NULL AND p.revoked_at IS NULL)
) k;
