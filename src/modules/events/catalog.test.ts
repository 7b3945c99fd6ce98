import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { EVENT_TYPES, isKnownEventType, isValidEventFilter, matchesEventFilter } from './catalog.js';
import { AUDITED_FIELDS } from '../audit/record.js';

const SRC = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

describe('the event catalog', () => {
  it('lists every event type the code emits', () => {
    // tsc holds newEvent to the catalog; this also catches a type built from parts, which it cannot.
    const objects = [...new Set(EVENT_TYPES.map((type) => type.split('.')[0]))];
    const literal = new RegExp(`['\`](?:${objects.join('|')})(?:\\.[a-z_]+)+['\`]`, 'g');
    const found = new Set<string>();
    for (const file of sourceFiles(SRC)) {
      // The catalog itself, and the changelog, whose text names fields such as `payout.arrival_date`.
      if (file.endsWith(join('events', 'catalog.ts')) || file.endsWith(join('versions', 'versions.ts'))) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(literal)) found.add(match[0].slice(1, -1));
    }
    // A checkout session's object name (as Stripe's), not an event type.
    found.delete('checkout.session');
    // bank_account.${status}: the statuses a verification ends in.
    found.add('bank_account.verified').add('bank_account.verification_failed');
    expect(found.size).toBeGreaterThan(20);
    // Audit actions share the object.action shape (webhook_endpoint.created is audited, not an event).
    for (const type of found) if (!(type in AUDITED_FIELDS)) expect(isKnownEventType(type), type).toBe(true);
    for (const type of ['webhook_endpoint.disabled', 'report.ready', 'balance.available', 'payout.paid'])
      expect(isKnownEventType(type), type).toBe(true);
    expect(isKnownEventType('payment.exploded')).toBe(false);
  });

  it('matches exact names, prefix wildcards and *', () => {
    expect(matchesEventFilter(['*'], 'refund.created')).toBe(true);
    expect(matchesEventFilter(['payment.*'], 'payment.succeeded')).toBe(true);
    expect(matchesEventFilter(['payment.*'], 'payout.paid')).toBe(false);
    // A prefix ends at the dot: payment.* is not paymentx.y, and payout.* is not payouts.
    expect(matchesEventFilter(['payment.*'], 'paymentx.created')).toBe(false);
    expect(matchesEventFilter(['refund.created'], 'refund.created')).toBe(true);
    expect(matchesEventFilter(['refund.created'], 'refund.createdx')).toBe(false);
    expect(matchesEventFilter(['refund.created', 'dispute.*'], 'dispute.closed')).toBe(true);
    expect(matchesEventFilter([], 'refund.created')).toBe(false);
    expect(matchesEventFilter(['payment'], 'payment.created')).toBe(false);
  });

  it('accepts as filters only what can match something', () => {
    for (const filter of ['*', 'payment.*', 'bank_account.*', 'report.ready'])
      expect(isValidEventFilter(filter)).toBe(true);
    for (const filter of ['', 'payment', 'payment.', 'paym*', 'nothing.*', 'payment.exploded', '*.created'])
      expect(isValidEventFilter(filter), filter).toBe(false);
  });
});

describe('GET /v1/event_types', () => {
  let t: TestApp;
  let tenant: TestTenant;
  beforeAll(async () => {
    t = await bootApp();
    tenant = await createTenant(t.app, 'Event types tenant');
  });
  afterAll(() => t.close());

  it('lists every type with its description and an example event', async () => {
    const res = await call(t.app, tenant.testKey, 'GET', '/v1/event_types');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ object: 'list', url: '/v1/event_types', has_more: false });
    expect(body.data.map((entry: { type: string }) => entry.type)).toEqual(EVENT_TYPES);
    for (const entry of body.data) {
      expect(entry.description.length, entry.type).toBeGreaterThan(10);
      expect(entry.example).toMatchObject({
        object: 'event',
        type: entry.type,
        livemode: false,
        request: { id: null },
      });
      expect(entry.example.id).toMatch(/^evt_/);
      expect(entry.example.sequence).toBeTypeOf('number');
      expect(entry.example.data.object.id).toMatch(/^[a-z]+_/);
    }
    const succeeded = body.data.find((entry: { type: string }) => entry.type === 'payment.succeeded');
    expect(succeeded.example.data.object).toMatchObject({ object: 'payment', status: 'succeeded' });
  });

  it('any key of the tenant may read it (a restricted key without events:read too)', async () => {
    const restricted = await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] });
    expect(restricted.statusCode).toBe(200);
    const res = await call(t.app, restricted.json().secret, 'GET', '/v1/event_types');
    expect(res.statusCode).toBe(200);
  });

  it('401 without a key, 400 on an unknown parameter', async () => {
    const anonymous = await t.app.inject({ method: 'GET', url: '/v1/event_types' });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().error.type).toBe('authentication_error');
    const bad = await call(t.app, tenant.testKey, 'GET', '/v1/event_types?limit=5');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ type: 'invalid_request_error', param: 'limit' });
  });
});
