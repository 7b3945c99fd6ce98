import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TestClock,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { asMember, newMember, signIn, type Member } from '../../../test/team.js';
import { rotateCardKeys } from './rotate.js';
import { CardVault } from './vault.js';

const oldKek = randomBytes(32);
const newKek = randomBytes(32);
const fingerprintKey = randomBytes(32);
let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp({ VAULT_KEK: oldKek.toString('base64') });
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

describe('card vault', () => {
  it('seals each card under its own data key: the same number never gives the same ciphertext', () => {
    const vault = new CardVault([oldKek], fingerprintKey);
    const a = vault.sealPan('4242424242424242', 'pm_a');
    const b = vault.sealPan('4242424242424242', 'pm_b');
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.wrappedDek.equals(b.wrappedDek)).toBe(false);
    expect(vault.openPan(a, 'pm_a')).toBe('4242424242424242');
    // The record id is bound in: a sealed card moved onto another record does not open.
    expect(() => vault.openPan(a, 'pm_b')).toThrow();
  });

  it('rotates every stored card onto a new key-encryption key, and the cards still pay', async () => {
    const created = [];
    for (const number of ['4242424242424242', '4000000000000119']) {
      const res = await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(number));
      expect(res.statusCode).toBe(200);
      created.push(res.json().id as string);
    }
    const rotating = new CardVault([newKek, oldKek], fingerprintKey);
    // Other test files' cards (under their own KEKs) share the database: they are reported, untouched.
    expect((await rotateCardKeys(t.admin, rotating, 1)).rotated).toBeGreaterThanOrEqual(2);
    const rows = await t.admin<
      { id: string; kek_id: string }[]
    >`SELECT id, kek_id FROM payment_methods WHERE id = ANY(${created})`;
    expect(rows.map((r) => r.kek_id)).toEqual([rotating.activeKekId, rotating.activeKekId]);
    expect((await rotateCardKeys(t.admin, rotating)).rotated).toBe(0);
    const unknownKek = await rotateCardKeys(t.admin, new CardVault([randomBytes(32)], fingerprintKey));
    expect(unknownKek.rotated).toBe(0);
    expect(unknownKek.unreadable).toBeGreaterThanOrEqual(2);

    // An app that only holds the new KEK charges the rotated cards, with the same fingerprints.
    const rotated = await bootApp({ VAULT_KEK: newKek.toString('base64') });
    try {
      for (const id of created) {
        const payment = await call(rotated.app, tenant.testKey, 'POST', '/v1/payments', {
          amount: 700,
          currency: 'eur',
          payment_method: id,
          confirm: true,
        });
        expect(payment.statusCode, payment.body).toBe(200);
        expect(payment.json().status).toBe('succeeded');
      }
      // Fingerprints do not depend on the KEK: the same card tokenized after the old KEK is gone
      // still matches the cards stored before.
      const before = await call(t.app, tenant.testKey, 'GET', `/v1/payment_methods/${created[0]}`);
      const again = await call(rotated.app, tenant.testKey, 'POST', '/v1/payment_methods', card('4242424242424242'));
      expect(again.json().card.fingerprint).toBe(before.json().card.fingerprint);
    } finally {
      await rotated.close();
    }
  });

  it('rotation re-wraps stored responses that hold secrets: after it, only the new KEK replays them', async () => {
    const idempotencyKey = `rotate-${randomBytes(8).toString('hex')}`;
    const body = { name: `Rotated replay ${idempotencyKey}` };
    const headers = { 'idempotency-key': idempotencyKey };
    const created = await ok(await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', body, headers));
    const stored = () =>
      t.admin<{ response_kek_id: string }[]>`
        SELECT response_kek_id FROM idempotency_keys WHERE key LIKE ${'%/' + idempotencyKey}`;
    const rotating = new CardVault([newKek, oldKek], fingerprintKey);
    expect(await stored()).toEqual([{ response_kek_id: CardVault.kekId(oldKek) }]);
    expect((await rotateCardKeys(t.admin, rotating)).responses).toBeGreaterThanOrEqual(1);
    expect(await stored()).toEqual([{ response_kek_id: rotating.activeKekId }]);

    const rotated = await bootApp({ VAULT_KEK: newKek.toString('base64') });
    try {
      const replay = await call(rotated.app, PLATFORM_KEY, 'POST', '/v1/tenants', body, headers);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.json().secret_keys.test.secret).toBe(created.secret_keys.test.secret);
    } finally {
      await rotated.close();
    }
  });

  it("rotation re-wraps users' TOTP secrets and webhook signing secrets: with the old KEK retired, TOTP sign-in still works", async () => {
    const clock = new TestClock();
    const before = await bootApp(
      { VAULT_KEK: oldKek.toString('base64'), WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8' },
      undefined,
      { clock },
    );
    let member: Member;
    let team: TestTenant;
    try {
      team = await createTenant(before.app, 'Rotated team');
      member = await newMember(before.app, clock, team.liveKey, 'admin');
      await ok(
        await call(before.app, team.testKey, 'POST', '/v1/webhook_endpoints', {
          url: 'http://127.0.0.1:9/rotated',
          enabled_events: ['*'],
        }),
      );
    } finally {
      await before.close();
    }
    const sealedUnder = async () => {
      const [{ totp }] = await t.admin<
        { totp: string }[]
      >`SELECT totp_kek_id AS totp FROM users WHERE id = ${member.id}`;
      const secrets = await t.admin<{ kek_id: string }[]>`
        SELECT kek_id FROM webhook_endpoint_secrets WHERE tenant_id = ${team.id}`;
      return { totp, webhooks: secrets.map((s) => s.kek_id) };
    };
    expect(await sealedUnder()).toEqual({ totp: CardVault.kekId(oldKek), webhooks: [CardVault.kekId(oldKek)] });
    const rotating = new CardVault([newKek, oldKek], fingerprintKey);
    const runsAudited = async () =>
      (
        await t.admin`SELECT 1 FROM audit_entries WHERE tenant_id = '__platform__' AND action = 'vault.keys_rotated'
          AND content LIKE ${'%' + rotating.activeKekId + '%'}`
      ).length;
    const auditedBefore = await runsAudited();
    expect((await rotateCardKeys(t.admin, rotating)).rotated).toBeGreaterThanOrEqual(2);
    expect(await runsAudited()).toBe(auditedBefore + 1);
    expect(await sealedUnder()).toEqual({ totp: rotating.activeKekId, webhooks: [rotating.activeKekId] });

    // The old KEK retired: an app holding only the new one signs the member in with their authenticator.
    const after = await bootApp({ VAULT_KEK: newKek.toString('base64') }, undefined, { clock });
    try {
      clock.advance(60_000);
      const session = await signIn(after.app, clock, member);
      const me = await asMember(after.app, session, 'GET', '/v1/users/me');
      expect(me.statusCode, me.body).toBe(200);
      expect(me.json().id).toBe(member.id);
    } finally {
      await after.close();
    }
  });
});
