import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appDatabaseUrl, connect, type Scope, type Sql } from '../../db/index.js';
import { ReadBatcher } from '../../db/read-batch.js';
import { newId } from '../../lib/ids.js';
import { bootWithTenants, call, card, ok, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { PgProxy } from '../../../test/pg-proxy.js';
import { KeyClaimLost, type HeldKey } from '../../http/idempotency.js';
import { newEvent } from '../events/events.js';
import type { PaymentMethodRow } from '../payment-methods/service.js';
import { createPaymentReader, createPaymentWriter, type PaymentRow, type PaymentWrite } from './repo.js';

// The batched payment writer against the real database, given writes directly: what it writes, and
// what it answers when the connection is lost around COMMIT (a real TCP proxy cutting it).

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const scopeOf = (tenant: TestTenant, livemode = false): Scope => ({ tenantId: tenant.id, livemode });

beforeAll(async () => {
  [t, a, b] = await bootWithTenants('Writer A', 'Writer B');
});
afterAll(() => t?.close());

const writer = (sql: Sql) => createPaymentWriter(sql, { maxSize: 16, maxConcurrency: 2 });

async function payment(tenant: TestTenant, body: Record<string, unknown> = {}) {
  const created = await ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 1_500, currency: 'usd', ...body }),
  );
  const reader = createPaymentReader(new ReadBatcher(t.platform.sql, { maxSize: 8, maxConcurrency: 1 }));
  return (await reader.submit({ scope: scopeOf(tenant), id: created.id })).row;
}

/** The next version of a payment, with a new description and an event (of any catalogued type). */
function described(scope: Scope, row: PaymentRow, description: string): PaymentWrite {
  const next = { ...row, description, version: row.version + 1, updated_at: new Date() };
  return { scope, update: next, events: [newEvent(scope, 'payment.succeeded', { id: row.id }, null)] };
}

/** A new payment of its own for `scope`, so that the scope takes part in the batch. */
function inserted(scope: Scope, template: PaymentRow, idempotencyKey = newId('key')): PaymentWrite {
  const row = { ...template, id: newId('pay'), tenant_id: scope.tenantId, livemode: scope.livemode };
  return { scope, insert: { ...row, idempotency_key: idempotencyKey, version: 0 } };
}

async function storedPayment(id: string) {
  const [row] = await t.admin<{ tenant_id: string; description: string | null; version: number }[]>`
    SELECT tenant_id, description, version FROM payments WHERE id = ${id}`;
  return row;
}

async function inlineMethod(tenant: TestTenant): Promise<PaymentMethodRow> {
  const paid = await ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 1_000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
    }),
  );
  const [row] = await t.admin<PaymentMethodRow[]>`SELECT * FROM payment_methods WHERE id = ${paid.payment_method}`;
  return { ...row, id: newId('pm') };
}

const methodStored = async (id: string) => (await t.admin`SELECT 1 FROM payment_methods WHERE id = ${id}`).length === 1;

describe('compare-and-set', () => {
  it("matches tenant and mode as well as id and version: a write naming another tenant's or mode's payment changes nothing", async () => {
    const target = await payment(b);
    const batched = writer(t.platform.sql);
    for (const scope of [scopeOf(a), scopeOf(b, true)]) {
      // The owner's scope takes part in the same batch, so row-level security alone would allow it.
      const [owner, forged] = await Promise.all([
        batched.submit(inserted(scopeOf(b), target)),
        batched.submit(described(scope, { ...target, tenant_id: scope.tenantId, livemode: scope.livemode }, 'forged')),
      ]);
      expect(owner).toBe(true);
      expect(forged).toBe(false);
    }
    expect(await storedPayment(target.id)).toMatchObject({
      tenant_id: b.id,
      description: null,
      version: target.version,
    });
    expect(await batched.submit(described(scopeOf(b), target, 'owner'))).toBe(true);
    expect(await storedPayment(target.id)).toMatchObject({ description: 'owner', version: target.version + 1 });
  });
});

describe('payment methods', () => {
  it('are written only with the payment that uses them: not when its insert conflicts or its compare-and-set fails', async () => {
    const batched = writer(t.platform.sql);
    const template = await payment(a);
    const scope = scopeOf(a);

    const key = newId('key');
    expect(await batched.submit(inserted(scope, template, key))).toBe(true);
    const duplicate = inserted(scope, template, key);
    const lostInsert = await inlineMethod(a);
    duplicate.insert!.payment_method_id = lostInsert.id;
    expect(await batched.submit({ ...duplicate, paymentMethod: lostInsert })).toBe(false);
    expect(await methodStored(lostInsert.id)).toBe(false);

    const stale = described(scope, template, 'stale');
    stale.update!.version = template.version; // expects a version older than the stored one
    const lostUpdate = await inlineMethod(a);
    stale.update!.payment_method_id = lostUpdate.id;
    expect(await batched.submit({ ...stale, paymentMethod: lostUpdate })).toBe(false);
    expect(await methodStored(lostUpdate.id)).toBe(false);

    const current = described(scope, template, 'current');
    const kept = await inlineMethod(a);
    current.update!.payment_method_id = kept.id;
    expect(await batched.submit({ ...current, paymentMethod: kept })).toBe(true);
    expect(await methodStored(kept.id)).toBe(true);
  });
});

/** A key held in write (as the create route's claim makes it), named as the payment's idempotency_key. */
function heldInWrite(scope: Scope, key = newId('key'), owner = `owner.${newId('o')}`): HeldKey {
  return {
    scope,
    key,
    owner,
    sealResponse: false,
    method: 'POST',
    path: '/v1/payments',
    hash: 'request-hash',
    claimedInWrite: true,
  };
}

/** A payment insert that claims its key in the write, with its created event. */
function claiming(scope: Scope, template: PaymentRow, held = heldInWrite(scope)): PaymentWrite {
  const write = inserted(scope, template, held.key);
  return { ...write, keyClaim: held, events: [newEvent(scope, 'payment.created', { id: write.insert!.id }, null)] };
}

async function storedKey(tenant: TestTenant, key: string) {
  const [row] = await t.admin<
    { owner: string | null; request_hash: string; completed_at: Date | null; xmin: string }[]
  >`
    SELECT owner, request_hash, completed_at, xmin::text FROM idempotency_keys
    WHERE tenant_id = ${tenant.id} AND livemode = false AND key = ${key}`;
  return row;
}

const storedEvents = async (paymentId: string) =>
  (await t.admin`SELECT 1 FROM events WHERE object_id = ${paymentId}`).length;

describe('Idempotency-Key claimed in the write', () => {
  it('a free key is claimed by the statement that inserts the payment: one transaction, owned, not completed', async () => {
    const write = claiming(scopeOf(a), await payment(a));
    expect(await writer(t.platform.sql).submit(write)).toBe(true);
    const key = await storedKey(a, write.keyClaim!.key);
    expect(key).toMatchObject({ owner: write.keyClaim!.owner, request_hash: 'request-hash', completed_at: null });
    const [stored] = await t.admin<{ xmin: string }[]>`SELECT xmin::text FROM payments WHERE id = ${write.insert!.id}`;
    expect(stored.xmin).toBe(key.xmin);
  });

  it("a key another request holds: KeyClaimLost, and nothing of the write is there, not its card; the batch's other writes are", async () => {
    const template = await payment(a);
    const scope = scopeOf(a);
    const taken = heldInWrite(scope);
    await t.admin`
      INSERT INTO idempotency_keys (tenant_id, livemode, key, owner, request_method, request_path, request_hash, heartbeat_at)
      VALUES (${a.id}, false, ${taken.key}, 'someone.else', 'POST', '/v1/payments', 'request-hash', now())`;
    const lost = claiming(scope, template, taken);
    const method = await inlineMethod(a);
    lost.insert!.payment_method_id = method.id;
    const free = claiming(scopeOf(b), await payment(b));
    const batched = writer(t.platform.sql);
    const [lostAnswer, freeAnswer] = await Promise.allSettled([
      batched.submit({ ...lost, paymentMethod: method }),
      batched.submit(free),
    ]);
    expect(lostAnswer.status === 'rejected' && lostAnswer.reason).toBeInstanceOf(KeyClaimLost);
    expect(freeAnswer).toEqual({ status: 'fulfilled', value: true });
    expect(await storedPayment(lost.insert!.id)).toBeUndefined();
    expect(await methodStored(method.id)).toBe(false);
    expect(await storedEvents(lost.insert!.id)).toBe(0);
    expect(await storedKey(a, taken.key)).toMatchObject({ owner: 'someone.else' });
    expect(await storedPayment(free.insert!.id)).toMatchObject({ tenant_id: b.id });
  });

  it('two requests claiming one key in the same batch: one payment, the other KeyClaimLost', async () => {
    const scope = scopeOf(a);
    const template = await payment(a);
    const key = newId('key');
    const [one, two] = [
      claiming(scope, template, heldInWrite(scope, key)),
      claiming(scope, template, heldInWrite(scope, key)),
    ];
    const answers = await Promise.allSettled([writer(t.platform.sql).submit(one), writer(t.platform.sql).submit(two)]);
    const batched = writer(t.platform.sql);
    const together = await Promise.allSettled([
      batched.submit(claiming(scope, template, heldInWrite(scope, `${key}.b`))),
      batched.submit(claiming(scope, template, heldInWrite(scope, `${key}.b`))),
    ]);
    for (const settled of [answers, together]) {
      expect(settled.filter((answer) => answer.status === 'fulfilled' && answer.value === true)).toHaveLength(1);
      const lost = settled.filter((answer) => answer.status === 'rejected');
      expect(lost).toHaveLength(1);
      expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(KeyClaimLost);
    }
    const [{ count }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${a.id} AND idempotency_key IN (${key}, ${`${key}.b`})`;
    expect(count).toBe(2);
  });

  it('a completed key is not claimed again, even by its former owner', async () => {
    const scope = scopeOf(a);
    const held = heldInWrite(scope);
    await t.admin`
      INSERT INTO idempotency_keys (tenant_id, livemode, key, owner, request_method, request_path, request_hash,
        heartbeat_at, response_status, response_body, completed_at)
      VALUES (${a.id}, false, ${held.key}, ${held.owner}, 'POST', '/v1/payments', 'request-hash', now(), 200, '{}', now())`;
    const write = claiming(scope, await payment(a), held);
    await expect(writer(t.platform.sql).submit(write)).rejects.toBeInstanceOf(KeyClaimLost);
    expect(await storedPayment(write.insert!.id)).toBeUndefined();
  });

  it("the owner's own claim, left by a try whose answer was lost, holds: the payment is written", async () => {
    const scope = scopeOf(a);
    const held = heldInWrite(scope);
    await t.admin`
      INSERT INTO idempotency_keys (tenant_id, livemode, key, owner, request_method, request_path, request_hash, heartbeat_at)
      VALUES (${a.id}, false, ${held.key}, ${held.owner}, 'POST', '/v1/payments', 'request-hash', now())`;
    const write = claiming(scope, await payment(a), held);
    expect(await writer(t.platform.sql).submit(write)).toBe(true);
    expect(await storedPayment(write.insert!.id)).toMatchObject({ tenant_id: a.id });
  });
});

describe("a request's answer stored with its payment's write", () => {
  /** A claimed key's payment, then its next version with the request's answer. */
  async function answering(held: HeldKey, body: string, versionOffset = 0): Promise<PaymentWrite> {
    const claimed = claiming(held.scope, await payment(a), held);
    expect(await writer(t.platform.sql).submit(claimed)).toBe(true);
    const next = described(held.scope, { ...claimed.insert!, version: claimed.insert!.version + versionOffset }, body);
    return { ...next, keyAnswer: { held, paymentId: claimed.insert!.id, status: 200, body } };
  }

  async function storedAnswer(key: string) {
    const [row] = await t.admin<
      { response_status: number | null; response_body: string | null; completed_at: Date | null; xmin: string }[]
    >`
      SELECT response_status, response_body::text, completed_at, xmin::text FROM idempotency_keys
      WHERE tenant_id = ${a.id} AND livemode = false AND key = ${key}`;
    return row;
  }

  it('is stored on the key, as given, by the statement that updates the payment, in its transaction', async () => {
    const held = heldInWrite(scopeOf(a));
    const body = `{"id":"answer","object":"payment","description":"stored in write ${held.key}"}`;
    const write = await answering(held, body);
    expect(await writer(t.platform.sql).submit(write)).toBe(true);
    const stored = await storedAnswer(held.key);
    expect(stored).toMatchObject({ response_status: 200, response_body: body });
    expect(stored.completed_at).not.toBeNull();
    const [payment] = await t.admin<{ xmin: string }[]>`SELECT xmin::text FROM payments WHERE id = ${write.update!.id}`;
    expect(payment.xmin).toBe(stored.xmin);
    expect(held.answeredInWrite).toBe(body);
  });

  it('is not stored when the write loses its compare-and-set, nor on a key its owner no longer holds', async () => {
    const stale = heldInWrite(scopeOf(a));
    const lost = await answering(stale, '{"lost":true}', 1);
    expect(await writer(t.platform.sql).submit(lost)).toBe(false);
    expect(await storedAnswer(stale.key)).toMatchObject({ response_status: null, completed_at: null });
    expect(stale.answeredInWrite).toBeUndefined();

    const taken = heldInWrite(scopeOf(a));
    const write = await answering(taken, '{"taken":true}');
    // A retry took the key over meanwhile (its owner seemed gone): the answer of record is the retry's to store.
    await t.admin`UPDATE idempotency_keys SET owner = 'the.retry' WHERE tenant_id = ${a.id} AND key = ${taken.key}`;
    expect(await writer(t.platform.sql).submit(write)).toBe(true);
    expect(await storedAnswer(taken.key)).toMatchObject({ response_status: null, completed_at: null });
  });
});

describe('a commit whose answer is lost', () => {
  let proxy: PgProxy;
  let proxied: Sql;

  beforeAll(async () => {
    const target = new URL(t.adminUrl);
    proxy = await PgProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    proxied = connect(appDatabaseUrl(proxy.url(t.adminUrl), t.config), { max: 4 });
  });
  afterAll(async () => {
    await proxied?.end({ timeout: 5 });
    await proxy?.close();
  });

  for (const mode of ['after-commit', 'before-commit'] as const) {
    const outcome = mode === 'after-commit' ? 'committed' : 'not committed';
    it(`${outcome} (connection cut ${mode.replace('-', ' ')}): answered true, written exactly once`, async () => {
      const row = await payment(a);
      const write = described(scopeOf(a), row, mode);
      const cut = proxy.cutNextCommit(mode, 'UPDATE payments t SET');
      expect(await writer(proxied).submit(write)).toBe(true);
      await cut;
      expect(await storedPayment(row.id)).toMatchObject({ description: mode, version: row.version + 1 });
      const events = await t.admin`SELECT id FROM events WHERE id = ${write.events![0].id}`;
      expect(events).toHaveLength(1);
    });
  }

  it('a payment claiming its key, committed but unanswered: answered true, one payment, the key claimed once', async () => {
    const write = claiming(scopeOf(a), await payment(a));
    const cut = proxy.cutNextCommit('after-commit', 'key_claims AS');
    expect(await writer(proxied).submit(write)).toBe(true);
    await cut;
    expect(await storedPayment(write.insert!.id)).toMatchObject({ tenant_id: a.id });
    expect(await storedEvents(write.insert!.id)).toBe(1);
    expect(await storedKey(a, write.keyClaim!.key)).toMatchObject({ owner: write.keyClaim!.owner, completed_at: null });
  });

  it('a write that lost its compare-and-set is still answered false after its commit answer was lost', async () => {
    const row = await payment(a);
    const stale = described(scopeOf(a), row, 'stale');
    stale.update!.version = row.version;
    const cut = proxy.cutNextCommit('after-commit', 'UPDATE payments t SET');
    expect(await writer(proxied).submit(stale)).toBe(false);
    await cut;
    expect(await storedPayment(row.id)).toMatchObject({ description: null, version: row.version });
  });
});
