-- Issue 14: row-level security reads the transaction's scope once per statement instead of once per row.
-- app_scope_allows (001) is inlined into each policy, so every row a statement reads, inserts or updates split
-- app.scope into an array again before comparing: 0.4 µs a row with one scope, and 4 µs with the fifty scopes of a
-- write batch that carries many tenants' payments (each of its inserts checks every row), so the cost grew with the
-- number of tenants in a batch. Written as `… = ANY ((SELECT app_scope_keys())::text[])`, the array is an InitPlan:
-- split once when a statement first checks a row, then compared per row (200,000 rows under fifty scopes: 800 → 130
-- ms to select, 670 → 280 ms to insert; under one scope 99 → 21 ms). Who may see what is unchanged: the same pairs
-- of the same setting, an unset or empty scope still matching nothing. app.scope is set by a statement of its own
-- before the statements it scopes (db/index.ts), so no statement changes it while it runs.
--
-- A new tenant table's policy takes the same form (a test fails on a policy that calls app_scope_allows).

CREATE FUNCTION app_scope_keys() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT string_to_array(nullif(current_setting('app.scope', true), ''), ',')
$$;

-- The tenants of the scope, for the tables that belong to a tenant in both modes (users, their memberships).
CREATE FUNCTION app_scope_tenant_ids() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT array_agg(split_part(s, ':', 1)) FROM unnest(app_scope_keys()) s
$$;

-- A row's entry in app.scope; inlined into the policies.
CREATE FUNCTION app_scope_key(p_tenant text, p_livemode boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT p_tenant || CASE WHEN p_livemode THEN ':t' ELSE ':f' END
$$;

DO $$
DECLARE
  policy record;
  rewritten text;
BEGIN
  FOR policy IN SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE schemaname = 'public' LOOP
    rewritten := CASE policy.qual
      WHEN 'app_scope_allows(tenant_id, livemode)' THEN
        'app_scope_key(tenant_id, livemode) = ANY ((SELECT app_scope_keys())::text[])'
      WHEN 'app_tenant_allows(tenant_id)' THEN 'tenant_id = ANY ((SELECT app_scope_tenant_ids())::text[])'
      WHEN 'app_tenant_allows(id)' THEN 'id = ANY ((SELECT app_scope_tenant_ids())::text[])'
    END;
    IF rewritten IS NULL OR policy.with_check IS DISTINCT FROM policy.qual THEN
      RAISE EXCEPTION 'policy % on % is not one this migration knows: USING (%) WITH CHECK (%)',
        policy.policyname, policy.tablename, policy.qual, policy.with_check;
    END IF;
    EXECUTE format('ALTER POLICY %I ON %I USING (%s) WITH CHECK (%s)',
      policy.policyname, policy.tablename, rewritten, rewritten);
  END LOOP;
END $$;
