import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { Sql } from '../../db/index.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';

// PKCS #8 and SPKI wrappings of a raw Ed25519 key (RFC 8410): Node imports Ed25519 keys only in these forms.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** AUDIT_SIGNING_KEY: the base64 of a 32-byte Ed25519 seed (`openssl rand -base64 32`). */
export function auditSigningKey(seedBase64: string): { privateKey: KeyObject; publicKey: string } {
  const seed = Buffer.from(seedBase64, 'base64');
  if (seed.length !== 32) throw new Error('AUDIT_SIGNING_KEY must be 32 bytes, base64-encoded');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: spki.subarray(SPKI_PREFIX.length).toString('base64') };
}

export interface Checkpoint {
  tenant_id: string;
  number: number;
  seq: number;
  hash: Buffer;
  signed_at: Date;
}

/** The exact bytes a checkpoint's signature covers. */
export function checkpointMessage(c: Checkpoint): Buffer {
  const hash = c.hash.toString('hex');
  const at = c.signed_at.toISOString();
  return Buffer.from(`payforward-audit-checkpoint:v1\n${c.tenant_id}\n${c.number}\n${c.seq}\n${hash}\n${at}`);
}

export function signCheckpoint(privateKey: KeyObject, c: Checkpoint): Buffer {
  return sign(null, checkpointMessage(c), privateKey);
}

export function checkpointSignatureValid(publicKeyBase64: string, c: Checkpoint, signature: Buffer): boolean {
  const raw = Buffer.from(publicKeyBase64, 'base64');
  if (raw.length !== 32) return false;
  const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  return verify(null, checkpointMessage(c), key, signature);
}

/**
 * One checkpoint pass (the worker's `audit-checkpoint` loop): signs the head of every chain that moved since its last
 * checkpoint. Each chain is an item of its own; two workers signing one head at once write it once (the number is the
 * key), and a head that moved meanwhile is signed on the next pass.
 */
export async function signAuditCheckpoints(
  workerSql: Sql,
  seedBase64: string,
  { now = () => new Date(), limit = 500, items = separately('audit chains') as ItemRunner } = {},
): Promise<number> {
  const key = auditSigningKey(seedBase64);
  const heads = await workerSql<{ tenant_id: string; seq: number; head_hash: Buffer; last_number: number }[]>`
    SELECT * FROM worker_audit_heads_to_sign(${limit + items.waiting})`;
  return items.each(
    heads,
    (head) => head.tenant_id,
    async (head) => {
      const checkpoint = {
        tenant_id: head.tenant_id,
        number: head.last_number + 1,
        seq: head.seq,
        hash: head.head_hash,
        signed_at: now(),
      };
      const signature = signCheckpoint(key.privateKey, checkpoint);
      const [{ written }] = await workerSql<{ written: boolean }[]>`
        SELECT worker_audit_checkpoint(${checkpoint.tenant_id}, ${checkpoint.number}, ${checkpoint.seq},
          ${checkpoint.hash}, ${checkpoint.signed_at}, ${key.publicKey}, ${signature}) AS written`;
      return written;
    },
  );
}
