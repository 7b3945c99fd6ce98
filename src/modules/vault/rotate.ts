import { inScope, type Sql } from '../../db/index.js';
import { sealedResponseId } from '../../http/idempotency.js';
import type { CardVault } from './vault.js';
import { PLATFORM_AUDIT_SCOPE, recordAudit, systemContext, type AuditContext } from '../audit/record.js';

export interface RotationResult {
  rotated: number;
  /** Sealed records under a KEK that is not loaded: they can be neither read nor rotated until it is. */
  unreadable: number;
  /** Stored idempotent responses holding secrets (new API keys), re-wrapped like the cards. */
  responses: number;
}

/**
 * Moves every record sealed by the vault (card and bank account numbers, webhook signing secrets, users' TOTP
 * secrets) onto the active key-encryption key, a batch at a time. It runs as the
 * operator (the admin connection, across tenants), only touches records under an older key it
 * holds, and each batch commits on its own, so it can be stopped and run again at any point.
 * Stored idempotent responses sealed under the vault (those carrying new API keys) move with
 * them, so once nothing is left under an old KEK, that KEK can be removed from VAULT_KEK. Each run is audited in the
 * platform's chain (`vault.keys_rotated`) once it is done: the batches commit on their own, so there is no one
 * transaction to share.
 */
export async function rotateCardKeys(
  admin: Sql,
  vault: CardVault,
  batchSize = 500,
  context: AuditContext = systemContext('rotate-keys'),
): Promise<RotationResult> {
  const older = vault.kekIds().filter((id) => id !== vault.activeKekId);
  const result: RotationResult = { rotated: 0, unreadable: 0, responses: 0 };
  for (const sealed of SEALED_COLUMNS) {
    const { rotated, unreadable } = await rotateTable(admin, vault, sealed, older, batchSize);
    result.rotated += rotated;
    result.unreadable += unreadable;
  }
  result.responses = await rotateStoredResponses(admin, vault, older, batchSize);
  // The last rotation, as the access review reports it: the active KEK is the one everything was just moved onto.
  await admin`
    INSERT INTO vault_keks (id, first_seen_at, active_since, created_at, rotated_at)
    VALUES (${vault.activeKekId}, now(), now(), ${vault.kekCreatedAt(vault.activeKekId)}, now())
    ON CONFLICT (id) DO UPDATE SET rotated_at = now(),
      active_since = coalesce(vault_keks.active_since, now()),
      created_at = coalesce(EXCLUDED.created_at, vault_keks.created_at)`;
  await inScope(admin, PLATFORM_AUDIT_SCOPE, (tx) =>
    recordAudit(tx, {
      scope: PLATFORM_AUDIT_SCOPE,
      context,
      action: 'vault.keys_rotated',
      target: { type: 'vault', id: 'card_vault' },
      after: { active_kek: vault.activeKekId, ...result },
    }),
  );
  return result;
}

/** Where a record sealed by the vault keeps the id of its KEK and its wrapped data key. */
interface SealedColumns {
  table: string;
  kek: string;
  wrappedDek: string;
  /** The record id the vault bound into the wrapped key when it sealed the record. */
  recordId: (id: string) => string;
}

// Every record sealed under the KEKs: once none is left under an old KEK, that KEK can be removed.
// Bank account numbers, webhook signing secrets and users' TOTP secrets are sealed like card numbers.
const SEALED_COLUMNS: SealedColumns[] = [
  { table: 'payment_methods', kek: 'kek_id', wrappedDek: 'wrapped_dek', recordId: (id) => id },
  { table: 'bank_accounts', kek: 'kek_id', wrappedDek: 'wrapped_dek', recordId: (id) => id },
  { table: 'webhook_endpoint_secrets', kek: 'kek_id', wrappedDek: 'wrapped_dek', recordId: (id) => id },
  { table: 'users', kek: 'totp_kek_id', wrappedDek: 'totp_wrapped_dek', recordId: (id) => `totp:${id}` },
];

async function rotateTable(admin: Sql, vault: CardVault, sealed: SealedColumns, older: string[], batchSize: number) {
  const table = admin(sealed.table);
  const kek = admin(sealed.kek);
  const wrappedDek = admin(sealed.wrappedDek);
  let rotated = 0;
  for (;;) {
    const batch = await admin<{ id: string; kek_id: string; wrapped_dek: Buffer }[]>`
      SELECT id, ${kek} AS kek_id, ${wrappedDek} AS wrapped_dek FROM ${table}
      WHERE ${kek} = ANY(${older}) ORDER BY id LIMIT ${batchSize}`;
    if (!batch.length) break;
    const rewrapped = batch.map((row) => ({
      id: row.id,
      oldKek: row.kek_id,
      wrappedHex: vault
        .rewrap(
          { kekId: row.kek_id, wrappedDek: row.wrapped_dek, ciphertext: Buffer.alloc(0) },
          sealed.recordId(row.id),
        )
        .wrappedDek.toString('hex'),
    }));
    await admin`
      UPDATE ${table} p SET ${kek} = ${vault.activeKekId}, ${wrappedDek} = decode(v.wrapped_hex, 'hex')
      FROM unnest(${rewrapped.map((r) => r.id)}::text[], ${rewrapped.map((r) => r.oldKek)}::text[], ${rewrapped.map((r) => r.wrappedHex)}::text[])
        AS v(id, old_kek, wrapped_hex)
      WHERE p.id = v.id AND p.${kek} = v.old_kek`;
    rotated += batch.length;
  }
  const [{ count }] = await admin<{ count: number }[]>`
    SELECT count(*)::int AS count FROM ${table} WHERE ${kek} <> ALL(${vault.kekIds()})`;
  return { rotated, unreadable: count };
}

async function rotateStoredResponses(admin: Sql, vault: CardVault, older: string[], batchSize: number) {
  let rotated = 0;
  for (;;) {
    const batch = await admin<
      { tenant_id: string; livemode: boolean; key: string; response_kek_id: string; response_wrapped_dek: Buffer }[]
    >`
      SELECT tenant_id, livemode, key, response_kek_id, response_wrapped_dek FROM idempotency_keys
      WHERE response_kek_id = ANY(${older}) LIMIT ${batchSize}`;
    if (!batch.length) return rotated;
    const rewrapped = batch.map((row) => {
      const sealed = { kekId: row.response_kek_id, wrappedDek: row.response_wrapped_dek, ciphertext: Buffer.alloc(0) };
      const id = sealedResponseId({ tenantId: row.tenant_id, livemode: row.livemode }, row.key);
      return { ...row, wrappedHex: vault.rewrap(sealed, id).wrappedDek.toString('hex') };
    });
    await admin`
      UPDATE idempotency_keys k SET response_kek_id = ${vault.activeKekId}, response_wrapped_dek = decode(v.wrapped_hex, 'hex')
      FROM unnest(${rewrapped.map((r) => r.tenant_id)}::text[], ${rewrapped.map((r) => String(r.livemode))}::text[],
        ${rewrapped.map((r) => r.key)}::text[], ${rewrapped.map((r) => r.response_kek_id)}::text[],
        ${rewrapped.map((r) => r.wrappedHex)}::text[]) AS v(tenant_id, livemode, key, old_kek, wrapped_hex)
      WHERE k.tenant_id = v.tenant_id AND k.livemode = v.livemode::boolean AND k.key = v.key AND k.response_kek_id = v.old_kek`;
    rotated += batch.length;
  }
}
