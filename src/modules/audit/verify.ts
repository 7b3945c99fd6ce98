import { createHash } from 'node:crypto';
import type { Sql } from '../../db/index.js';
import { checkpointSignatureValid } from './checkpoints.js';
import type { AuditContent, AuditEntryRow } from './record.js';

export interface AuditProblem {
  chain: string;
  seq: number | null;
  entry: string | null;
  problem: string;
}

export interface AuditVerification {
  chains: number;
  entries: number;
  checkpoints: number;
  /** At most one entry problem (the first broken link) and one checkpoint problem per chain. */
  problems: AuditProblem[];
}

/** An entry as read back: the row recordAudit wrote, numbered and linked by the database. */
type EntryRow = Omit<AuditEntryRow, 'created_at'> & { created_at: Date };

interface CheckpointRow {
  tenant_id: string;
  number: number;
  seq: number;
  hash: Buffer;
  signed_at: Date;
  public_key: string;
  signature: Buffer;
}

const GENESIS = Buffer.alloc(32);

/** The hash 020_audit.sql's append trigger computes: SHA-256(previous hash ‖ seq as int8 ‖ content in UTF-8). */
export function entryHash(prev: Buffer, seq: number, content: string): Buffer {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigInt64BE(BigInt(seq));
  return createHash('sha256').update(prev).update(seqBytes).update(content, 'utf8').digest();
}

// The filter columns are copies of the hashed content: an edit to one of them alone is tampering too.
function columnsDiffer(row: EntryRow): string | undefined {
  let content: AuditContent;
  try {
    content = JSON.parse(row.content) as AuditContent;
  } catch {
    return 'content';
  }
  const pairs: [string, unknown, unknown][] = [
    ['id', row.id, content.id],
    ['tenant_id', row.tenant_id, content.tenant_id],
    ['livemode', row.livemode, content.livemode],
    ['action', row.action, content.action],
    ['actor_type', row.actor_type, content.actor?.type],
    ['actor_id', row.actor_id, content.actor?.id],
    ['target_type', row.target_type, content.target?.type],
    ['target_id', row.target_id, content.target?.id],
    ['request_id', row.request_id, content.request_id],
    ['created_at', row.created_at.toISOString(), content.created_at],
  ];
  return pairs.find(([, column, hashed]) => column !== hashed)?.[0];
}

/**
 * Checks every chain from its first entry: sequence numbers without gap, each entry linked to the one before and
 * matching its own hash, its columns equal to its hashed content, the chain's head row at its last entry; then every
 * checkpoint: numbered without gap, signed by a trusted key, naming an entry that exists with that hash. Entries older
 * than `maxUnsignedMs` must be covered by a checkpoint: otherwise checkpoints were removed (or never written).
 * Runs on the admin connection, across tenants.
 */
export async function verifyAuditTrail(
  admin: Sql,
  { publicKeys, now = new Date(), maxUnsignedMs }: { publicKeys: string[]; now?: Date; maxUnsignedMs: number },
): Promise<AuditVerification> {
  const chains = await admin<{ tenant_id: string; seq: number | null; head_hash: Buffer | null }[]>`
    SELECT t.tenant_id, c.seq, c.head_hash FROM (
      SELECT tenant_id FROM audit_chains UNION SELECT DISTINCT tenant_id FROM audit_entries
      UNION SELECT DISTINCT tenant_id FROM audit_checkpoints) t
    LEFT JOIN audit_chains c ON c.tenant_id = t.tenant_id ORDER BY t.tenant_id`;
  const result: AuditVerification = { chains: chains.length, entries: 0, checkpoints: 0, problems: [] };
  for (const chain of chains) {
    const problem = (seq: number | null, entry: string | null, text: string) =>
      result.problems.push({ chain: chain.tenant_id, seq, entry, problem: text });
    const checkpoints = await admin<CheckpointRow[]>`
      SELECT * FROM audit_checkpoints WHERE tenant_id = ${chain.tenant_id} ORDER BY number`;
    result.checkpoints += checkpoints.length;
    const signedSeqs = new Map(checkpoints.map((c) => [c.seq, c]));
    const hashesAtCheckpoints = new Map<number, Buffer>();

    let expected = 1;
    let prev: Buffer = GENESIS;
    let broken = false;
    let oldestUnsigned: EntryRow | undefined;
    const lastSigned = checkpoints.at(-1)?.seq ?? 0;
    await admin<EntryRow[]>`
      SELECT id, tenant_id, livemode, seq, action, actor_type, actor_id, target_type, target_id, request_id, content,
        prev_hash, hash, created_at
      FROM audit_entries WHERE tenant_id = ${chain.tenant_id} ORDER BY seq`.cursor(500, (rows) => {
      for (const row of rows) {
        result.entries++;
        if (signedSeqs.has(row.seq)) hashesAtCheckpoints.set(row.seq, row.hash);
        if (row.seq > lastSigned && !oldestUnsigned) oldestUnsigned = row;
        if (broken) continue;
        const differs = columnsDiffer(row);
        const failure =
          row.seq !== expected
            ? `expected entry ${expected} next, found entry ${row.seq}: entries are missing or out of order`
            : !row.prev_hash.equals(prev)
              ? 'does not link to the entry before it (its previous hash differs)'
              : !entryHash(prev, row.seq, row.content).equals(row.hash)
                ? 'its content does not match its hash: the entry was altered'
                : differs
                  ? `its ${differs} column differs from its hashed content: the entry was altered`
                  : undefined;
        if (failure) {
          problem(row.seq, row.id, failure);
          broken = true;
        }
        expected = row.seq + 1;
        prev = row.hash;
      }
    });
    const last = expected - 1;
    if (!broken && chain.seq !== null && (chain.seq !== last || !chain.head_hash!.equals(prev)))
      problem(
        last,
        null,
        `the chain's head is at entry ${chain.seq} but its entries end at ${last}: entries were cut off the end`,
      );

    const checkpointFailure = checkpoints
      .map((c, i): [CheckpointRow, string | undefined] => [
        c,
        c.number !== i + 1
          ? `checkpoint ${i + 1} is missing (the next is ${c.number})`
          : !publicKeys.includes(c.public_key)
            ? `checkpoint ${c.number} is signed by a key that is not trusted (AUDIT_SIGNING_KEY, AUDIT_PUBLIC_KEYS)`
            : !checkpointSignatureValid(c.public_key, c, c.signature)
              ? `checkpoint ${c.number} has an invalid signature: it was forged or altered`
              : !hashesAtCheckpoints.get(c.seq)?.equals(c.hash)
                ? `checkpoint ${c.number} signed entry ${c.seq}, which no longer exists with that hash`
                : undefined,
      ])
      .find(([, failure]) => failure);
    if (checkpointFailure) problem(checkpointFailure[0].seq, null, checkpointFailure[1]!);
    else if (oldestUnsigned && now.getTime() - oldestUnsigned.created_at.getTime() > maxUnsignedMs)
      problem(
        oldestUnsigned.seq,
        oldestUnsigned.id,
        `entry ${oldestUnsigned.seq} (${oldestUnsigned.created_at.toISOString()}) is covered by no checkpoint: ` +
          'checkpoints are missing or the checkpoint worker is not running',
      );
  }
  return result;
}

/** audit:verify's report: one line per problem, then a summary; true when the trail verified clean. */
export function describeVerification(result: AuditVerification, say: (line: string) => void): boolean {
  for (const p of result.problems)
    say(`chain ${p.chain}${p.seq === null ? '' : ` at entry ${p.seq}`}${p.entry ? ` (${p.entry})` : ''}: ${p.problem}`);
  say(
    result.problems.length
      ? `Audit trail broken: ${result.problems.length} problems in ${result.chains} chains.`
      : `Audit trail verified: ${result.chains} chains, ${result.entries} entries, ${result.checkpoints} signed checkpoints.`,
  );
  return result.problems.length === 0;
}
