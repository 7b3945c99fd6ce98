import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp } from '../../../test/helpers.js';

let t: TestApp;

beforeAll(async () => {
  t = await bootApp({ CARD_DATA_RETENTION_DAYS: '30' });
});
afterAll(() => t.close());

describe('card-data retention', () => {
  it('erases the card number of payment methods unused for the period; the token, brand and last4 stay', async () => {
    const tenant = await createTenant(t.app, 'Retention');
    const save = async () =>
      ok(await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa)));
    const unused = await save();
    const used = await save();
    const fresh = await save();
    await t.admin`
      UPDATE payment_methods SET created_at = now() - interval '40 days' WHERE id IN (${unused.id}, ${used.id})`;
    // Used now: within the period, so it keeps its card data although it was saved 40 days ago.
    await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 1_000,
        currency: 'usd',
        payment_method: used.id,
        confirm: true,
      }),
    );
    // The clock the job is given decides; today's real clock here, as other tests share the database.
    const now = new Date();
    await t.platform.cardDataRetention.run(now);
    const rows = await t.admin<
      {
        id: string;
        pan_ciphertext: Buffer | null;
        wrapped_dek: Buffer | null;
        kek_id: string | null;
        card_data_erased_at: Date | null;
        last4: string;
        brand: string;
      }[]
    >`SELECT id, pan_ciphertext, wrapped_dek, kek_id, card_data_erased_at, last4, brand FROM payment_methods
      WHERE tenant_id = ${tenant.id} ORDER BY id`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(unused.id)).toMatchObject({
      pan_ciphertext: null,
      wrapped_dek: null,
      kek_id: null,
      card_data_erased_at: now,
      last4: '4242',
      brand: 'visa',
    });
    for (const kept of [used.id, fresh.id]) {
      expect(byId.get(kept)!.pan_ciphertext).not.toBeNull();
      expect(byId.get(kept)!.card_data_erased_at).toBeNull();
    }

    const retrieved = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payment_methods/${unused.id}`));
    expect(retrieved).toMatchObject({ id: unused.id, card: { brand: 'visa', last4: '4242' } });
    const charge = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 1_000,
      currency: 'usd',
      payment_method: unused.id,
      confirm: true,
    });
    expect(charge.statusCode).toBe(400);
    expect(charge.json().error).toMatchObject({ code: 'payment_method_card_data_erased', param: 'payment_method' });
    const verify = await call(t.app, tenant.testKey, 'POST', `/v1/payment_methods/${unused.id}/verify`, {});
    expect(verify.statusCode).toBe(400);
    expect(verify.json().error.code).toBe('payment_method_card_data_erased');
    // A second pass finds nothing more to erase for this tenant.
    await t.platform.cardDataRetention.run(now);
    const [{ erased }] = await t.admin<{ erased: number }[]>`
      SELECT count(*)::int AS erased FROM payment_methods WHERE tenant_id = ${tenant.id} AND card_data_erased_at IS NOT NULL`;
    expect(erased).toBe(1);
    const audited = await t.admin`SELECT action, actor_id, target_id FROM audit_entries
      WHERE tenant_id = ${tenant.id} AND action = 'payment_method.card_data_erased'`;
    expect(audited).toEqual([
      { action: 'payment_method.card_data_erased', actor_id: 'card-data-retention', target_id: unused.id },
    ]);
  });
});
