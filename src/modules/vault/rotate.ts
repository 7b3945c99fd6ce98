import type { Sql } from '../../db/index.js';
import type { CardVault } from './vault.js';

export interface RotationResult {
  rotated: number;
  /** Cards under a KEK that is not loaded: they can be neither read nor rotated until it is. */
  unreadable: number;
}

/**
 * Moves every stored card and bank account number onto the active key-encryption key, a batch at a time. It runs as the
 * operator (the admin connection, across tenants), only touches records under an older key it
 * holds, and each batch commits on its own, so it can be stopped and run again at any point.
 * Once nothing is left under an old KEK, that KEK can be removed from VAULT_KEK.
 */
export async function rotateCardKeys(admin: Sql, vault: CardVault, batchSize = 500): Promise<RotationResult> {
  const result: RotationResult = { rotated: 0, unreadable: 0 };
  // Bank account numbers are sealed the same way as card numbers, under the same KEKs.
  for (const table of ['payment_methods', 'bank_accounts']) {
    const { rotated, unreadable } = await rotateTable(admin, vault, table, batchSize);
    result.rotated += rotated;
    result.unreadable += unreadable;
  }
  return result;
}

async function rotateTable(admin: Sql, vault: CardVault, table: string, batchSize: number): Promise<RotationResult> {
  const older = vault.kekIds().filter((id) => id !== vault.activeKekId);
  let rotated = 0;
  for (;;) {
    const batch = await admin<{ id: string; kek_id: string; wrapped_dek: Buffer }[]>`
      SELECT id, kek_id, wrapped_dek FROM ${admin(table)} WHERE kek_id = ANY(${older}) ORDER BY id LIMIT ${batchSize}`;
    if (!batch.length) break;
    const rewrapped = batch.map((row) => ({
      id: row.id,
      oldKek: row.kek_id,
      wrappedHex: vault
        .rewrap({ kekId: row.kek_id, wrappedDek: row.wrapped_dek, ciphertext: Buffer.alloc(0) }, row.id)
        .wrappedDek.toString('hex'),
    }));
    await admin`
      UPDATE ${admin(table)} p SET kek_id = ${vault.activeKekId}, wrapped_dek = decode(v.wrapped_hex, 'hex')
      FROM unnest(${rewrapped.map((r) => r.id)}::text[], ${rewrapped.map((r) => r.oldKek)}::text[], ${rewrapped.map((r) => r.wrappedHex)}::text[])
        AS v(id, old_kek, wrapped_hex)
      WHERE p.id = v.id AND p.kek_id = v.old_kek`;
    rotated += batch.length;
  }
  const [{ count }] = await admin<{ count: number }[]>`
    SELECT count(*)::int AS count FROM ${admin(table)} WHERE kek_id <> ALL(${vault.kekIds()})`;
  return { rotated, unreadable: count };
}
