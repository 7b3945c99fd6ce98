-- Issue 9: customers with saved cards; payments and payment methods name a customer by its cus_… id.

-- A deleted customer keeps its row (deleted_at): its payments still name it, and its saved cards stay
-- attached to it so that nobody else can be charged with them.
CREATE TABLE customers (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  livemode boolean NOT NULL,
  email text,
  name text,
  phone text,
  metadata jsonb NOT NULL DEFAULT '{}',
  default_payment_method text,
  deleted_at timestamptz,
  erased_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_tenant ON customers (tenant_id, livemode, id DESC);
CREATE INDEX customers_email ON customers (tenant_id, livemode, lower(email), id DESC) WHERE email IS NOT NULL;

ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON customers
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

-- A customer's cards and payments are looked up by customer; only rows that have one are indexed.
CREATE INDEX payment_methods_customer ON payment_methods (tenant_id, livemode, customer, id DESC)
  WHERE customer IS NOT NULL;
CREATE INDEX payments_customer ON payments (tenant_id, livemode, customer, id DESC) WHERE customer IS NOT NULL;

-- Search by metadata (GET /v1/payments/search, /v1/customers/search) must never scan a tenant's
-- history. A GIN index on metadata cannot serve it: under row-level security PostgreSQL uses an
-- index only for leakproof operators, and jsonb containment is not one, so the planner filtered
-- every row of the tenant instead. Each metadata pair is therefore kept in this table, whose btree
-- serves `key = … AND value = …` (text equality is leakproof), maintained by triggers. The triggers
-- only act on a change of metadata: a payment written without any costs a WHEN test, no row.
CREATE TABLE metadata_index (
  tenant_id text NOT NULL,
  livemode boolean NOT NULL,
  object_id text NOT NULL,
  key text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (tenant_id, livemode, key, value, object_id)
);
CREATE INDEX metadata_index_object ON metadata_index (object_id);
ALTER TABLE metadata_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE metadata_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON metadata_index
  USING (app_scope_allows(tenant_id, livemode)) WITH CHECK (app_scope_allows(tenant_id, livemode));

CREATE FUNCTION metadata_index_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM metadata_index WHERE object_id = OLD.id AND tenant_id = OLD.tenant_id AND livemode = OLD.livemode;
  END IF;
  INSERT INTO metadata_index (tenant_id, livemode, object_id, key, value)
  SELECT NEW.tenant_id, NEW.livemode, NEW.id, e.key, e.value FROM jsonb_each_text(NEW.metadata) e;
  RETURN NULL;
END $$;

CREATE TRIGGER metadata_index_insert AFTER INSERT ON payments
  FOR EACH ROW WHEN (NEW.metadata <> '{}'::jsonb) EXECUTE FUNCTION metadata_index_sync();
CREATE TRIGGER metadata_index_update AFTER UPDATE OF metadata ON payments
  FOR EACH ROW WHEN (OLD.metadata IS DISTINCT FROM NEW.metadata) EXECUTE FUNCTION metadata_index_sync();
CREATE TRIGGER metadata_index_insert AFTER INSERT ON customers
  FOR EACH ROW WHEN (NEW.metadata <> '{}'::jsonb) EXECUTE FUNCTION metadata_index_sync();
CREATE TRIGGER metadata_index_update AFTER UPDATE OF metadata ON customers
  FOR EACH ROW WHEN (OLD.metadata IS DISTINCT FROM NEW.metadata) EXECUTE FUNCTION metadata_index_sync();

INSERT INTO metadata_index (tenant_id, livemode, object_id, key, value)
SELECT p.tenant_id, p.livemode, p.id, e.key, e.value FROM payments p, jsonb_each_text(p.metadata) e
WHERE p.metadata <> '{}'::jsonb;

CREATE INDEX customers_name ON customers (tenant_id, livemode, lower(name), id DESC) WHERE name IS NOT NULL;
CREATE INDEX customers_phone ON customers (tenant_id, livemode, phone, id DESC) WHERE phone IS NOT NULL;

-- Until now `customer` was free text. Each distinct value of a tenant and mode becomes a customer
-- object (its old text kept in metadata.legacy_customer, so a shop can still find it), and the
-- payments and cards that named it now carry its id. Ids follow lib/ids.ts: 10 base32 characters
-- of the creation time in milliseconds, then 14 random ones.
CREATE FUNCTION pg_temp.customer_id(p_created timestamptz) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet constant text := '0123456789abcdefghjkmnpqrstvwxyz';
  ms bigint := floor(extract(epoch FROM p_created) * 1000);
  head text := '';
  tail text := '';
BEGIN
  FOR i IN 1..10 LOOP
    head := substr(alphabet, (ms % 32)::int + 1, 1) || head;
    ms := ms / 32;
  END LOOP;
  FOR i IN 1..14 LOOP
    tail := tail || substr(alphabet, floor(random() * 32)::int + 1, 1);
  END LOOP;
  RETURN 'cus_' || head || tail;
END $$;

CREATE TEMP TABLE legacy_customers ON COMMIT DROP AS
SELECT pg_temp.customer_id(first_seen) AS id, tenant_id, livemode, customer AS legacy, first_seen
FROM (
  SELECT tenant_id, livemode, customer, min(created_at) AS first_seen
  FROM (
    SELECT tenant_id, livemode, customer, created_at FROM payments WHERE customer IS NOT NULL
    UNION ALL
    SELECT tenant_id, livemode, customer, created_at FROM payment_methods WHERE customer IS NOT NULL
  ) named
  GROUP BY tenant_id, livemode, customer
) distinct_values;

INSERT INTO customers (id, tenant_id, livemode, metadata, created_at, updated_at)
SELECT id, tenant_id, livemode, jsonb_build_object('legacy_customer', left(legacy, 500)), first_seen, first_seen
FROM legacy_customers;

UPDATE payments p SET customer = l.id FROM legacy_customers l
WHERE p.customer = l.legacy AND p.tenant_id = l.tenant_id AND p.livemode = l.livemode;
UPDATE payment_methods m SET customer = l.id FROM legacy_customers l
WHERE m.customer = l.legacy AND m.tenant_id = l.tenant_id AND m.livemode = l.livemode;
