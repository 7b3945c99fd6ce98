import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { randomPool } from '../../lib/ids.js';

/**
 * Envelope encryption for card numbers: each record gets its own random data key (AES-256-GCM),
 * which is stored only wrapped by the key-encryption key (KEK). The KEK id is kept with the
 * record so keys can be rotated: records name the KEK that can unwrap them.
 */
export interface SealedPan {
  kekId: string;
  wrappedDek: Buffer;
  ciphertext: Buffer;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomPool(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

export function parseKek(encoded: string): Buffer {
  const key = Buffer.from(encoded, 'base64');
  if (key.length !== 32)
    throw new Error('vault keys (VAULT_KEK, VAULT_FINGERPRINT_KEY) must be 32 bytes, base64-encoded');
  return key;
}

/**
 * One entry of VAULT_KEK: the key in base64, optionally followed by `@` and when it was generated (`YYYY-MM-DD` or an
 * ISO 8601 UTC time). Only whoever generated the key knows that date, so it travels with the key; the PCI access
 * review reports the KEK's age from it.
 */
export function parseKekEntry(entry: string): { key: Buffer; createdAt: Date | null } {
  const [encoded, created, ...rest] = entry.trim().split('@');
  const createdAt =
    created === undefined ? null : new Date(/^\d{4}-\d{2}-\d{2}$/.test(created) ? `${created}T00:00:00Z` : created);
  if (rest.length || (createdAt && (Number.isNaN(createdAt.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(created!))))
    throw new Error('a VAULT_KEK entry is a base64 key, optionally followed by @ and the date it was generated');
  return { key: parseKek(encoded), createdAt };
}

export class CardVault {
  private readonly keks = new Map<string, Buffer>();
  private readonly created = new Map<string, Date>();
  readonly activeKekId: string;
  private readonly fingerprintKey: Buffer;
  private readonly fingerprintSecret: Buffer;

  /**
   * The first KEK is the active one; the others only unwrap records sealed before a rotation.
   * The fingerprint key is separate, so fingerprints survive the retirement of every old KEK.
   */
  constructor(keks: Buffer[], fingerprintKey: Buffer) {
    if (!keks.length) throw new Error('the card vault needs at least one key-encryption key');
    for (const kek of keks) this.keks.set(CardVault.kekId(kek), kek);
    this.activeKekId = CardVault.kekId(keks[0]);
    this.fingerprintSecret = fingerprintKey;
    this.fingerprintKey = Buffer.from(
      hkdfSync('sha256', fingerprintKey, Buffer.alloc(0), 'payforward card fingerprint', 32),
    );
  }

  /** The vault of VAULT_KEK's entries (see parseKekEntry), active first, with the dates they carry. */
  static fromEntries(entries: string[], fingerprintKey: Buffer): CardVault {
    const parsed = entries.map(parseKekEntry);
    const vault = new CardVault(
      parsed.map((p) => p.key),
      fingerprintKey,
    );
    for (const { key, createdAt } of parsed) if (createdAt) vault.created.set(CardVault.kekId(key), createdAt);
    return vault;
  }

  kekIds(): string[] {
    return [...this.keks.keys()];
  }

  /** When the KEK was generated, if its VAULT_KEK entry says. */
  kekCreatedAt(id: string): Date | null {
    return this.created.get(id) ?? null;
  }

  static kekId(kek: Buffer): string {
    return 'kek_' + createHash('sha256').update(kek).digest('hex').slice(0, 16);
  }

  sealPan(pan: string, recordId: string): SealedPan {
    const dek = Buffer.from(randomPool(32));
    const kek = this.keks.get(this.activeKekId)!;
    return {
      kekId: this.activeKekId,
      wrappedDek: seal(kek, dek, `dek:${recordId}`),
      ciphertext: seal(dek, Buffer.from(pan, 'utf8'), `pan:${recordId}`),
    };
  }

  /**
   * Re-wraps a record's data key under the active KEK (key rotation). The card number itself is
   * neither decrypted nor re-encrypted: only the small wrapped key changes.
   */
  rewrap(sealed: SealedPan, recordId: string): SealedPan {
    if (sealed.kekId === this.activeKekId) return sealed;
    const oldKek = this.keks.get(sealed.kekId);
    if (!oldKek) throw new Error(`key-encryption key ${sealed.kekId} is not loaded`);
    const dek = open(oldKek, sealed.wrappedDek, `dek:${recordId}`);
    return {
      kekId: this.activeKekId,
      wrappedDek: seal(this.keks.get(this.activeKekId)!, dek, `dek:${recordId}`),
      ciphertext: sealed.ciphertext,
    };
  }

  /**
   * Any other record that must not be readable from a dump (a stored response holding a new API
   * key): same hierarchy as card numbers, so it rotates and retires with the KEKs. `recordId` is
   * bound into both layers, so a sealed value copied onto another record does not open.
   */
  sealRecord(plaintext: string, recordId: string): SealedPan {
    const dek = Buffer.from(randomPool(32));
    return {
      kekId: this.activeKekId,
      wrappedDek: seal(this.keks.get(this.activeKekId)!, dek, `dek:${recordId}`),
      ciphertext: seal(dek, Buffer.from(plaintext, 'utf8'), `record:${recordId}`),
    };
  }

  openRecord(sealed: SealedPan, recordId: string): string {
    const kek = this.keks.get(sealed.kekId);
    if (!kek) throw new Error(`key-encryption key ${sealed.kekId} is not loaded`);
    const dek = open(kek, sealed.wrappedDek, `dek:${recordId}`);
    return open(dek, sealed.ciphertext, `record:${recordId}`).toString('utf8');
  }

  /**
   * A key of its own for another keyed hash, derived from the fingerprint key under a distinct label:
   * no new secret to manage, and neither key reveals the other.
   */
  deriveKey(label: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.fingerprintSecret, Buffer.alloc(0), label, 32));
  }

  openPan(sealed: SealedPan, recordId: string): string {
    const kek = this.keks.get(sealed.kekId);
    if (!kek) throw new Error(`key-encryption key ${sealed.kekId} is not loaded`);
    const dek = open(kek, sealed.wrappedDek, `dek:${recordId}`);
    return open(dek, sealed.ciphertext, `pan:${recordId}`).toString('utf8');
  }

  /** Keyed hash: equal for the same card number across a tenant, useless without the key. */
  fingerprint(pan: string, tenantId: string): string {
    return createHmac('sha256', this.fingerprintKey).update(`${tenantId}:${pan}`).digest('base64url').slice(0, 16);
  }
}
