import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientSecrets } from '../../http/client-secret.js';
import { paymentClientView } from './client-view.js';

const secrets = new ClientSecrets('test-secret-0123456789');
const scope = { tenantId: 'ten_1', livemode: false };
const request = (via: string) =>
  ({
    auth: { kind: 'tenant', tenantId: 'ten_1', livemode: false, keyId: 'key_1', scopes: [], via },
  }) as unknown as FastifyRequest;
const reply = () => {
  const serializers: unknown[] = [];
  return { reply: { serializer: (fn: unknown) => serializers.push(fn) } as unknown as FastifyReply, serializers };
};
const payment = {
  id: 'pay_1',
  object: 'payment',
  amount: 1000,
  status: 'succeeded',
  payment_method: { id: 'pm_1', object: 'payment_method', card: { fingerprint: 'fp' } },
  customer: { id: 'cus_1', object: 'customer', email: 'jenny@example.com' },
  metadata: { order: '1' },
  outcome: { risk_score: 3 },
  last_payment_error: null,
  next_action: null,
};

describe('the payment as each key sees it', () => {
  it('a publishable key gets the listed fields, related objects as ids, and its own serializer', async () => {
    const { reply: r, serializers } = reply();
    const shown = (await paymentClientView(secrets)(request('publishable_key'), r, payment)) as Record<string, unknown>;
    expect(shown).toEqual({
      id: 'pay_1',
      object: 'payment',
      amount: 1000,
      status: 'succeeded',
      client_secret: secrets.for(scope, 'pay_1'),
      payment_method: 'pm_1',
      last_payment_error: null,
      next_action: null,
    });
    expect(serializers).toHaveLength(1);
  });

  it('a secret key gets everything plus the client_secret, in lists and in a decline too', async () => {
    const view = paymentClientView(secrets);
    const secret = secrets.for(scope, 'pay_1');
    expect(await view(request('api_key'), reply().reply, payment)).toEqual({ ...payment, client_secret: secret });
    const list = (await view(request('api_key'), reply().reply, { object: 'list', data: [payment] })) as {
      data: unknown[];
    };
    expect(list.data).toEqual([{ ...payment, client_secret: secret }]);
    const declined = (await view(request('api_key'), reply().reply, { error: { code: 'card_declined', payment } })) as {
      error: { payment: unknown };
    };
    expect(declined.error.payment).toEqual({ ...payment, client_secret: secret });
  });

  it('a client secret matches only its own tenant, mode and payment', () => {
    const secret = secrets.for(scope, 'pay_1');
    expect(secrets.matches(scope, 'pay_1', secret)).toBe(true);
    expect(secrets.matches({ ...scope, livemode: true }, 'pay_1', secret)).toBe(false);
    expect(secrets.matches({ ...scope, tenantId: 'ten_2' }, 'pay_1', secret)).toBe(false);
    expect(secrets.matches(scope, 'pay_2', secret)).toBe(false);
    expect(secrets.matches(scope, 'pay_1', `${secret}x`)).toBe(false);
    expect(new ClientSecrets('another-platform-secret').for(scope, 'pay_1')).not.toBe(secret);
  });

  it('remembers recent secrets without changing them, whatever it had to forget', () => {
    const small = new ClientSecrets('test-secret-0123456789', 3);
    const ids = Array.from({ length: 10 }, (_, i) => `pay_${i}`);
    const first = ids.map((id) => small.for(scope, id));
    const again = [...ids].reverse().map((id) => small.for(scope, id));
    expect(again.reverse()).toEqual(first);
    expect(first).toEqual(ids.map((id) => secrets.for(scope, id)));
    const key = createHmac('sha256', 'test-secret-0123456789').update('payforward client_secret v1').digest();
    const mac = createHmac('sha256', key).update(`${scope.tenantId}\ntest\npay_7`).digest('base64url').slice(0, 32);
    expect(first[7]).toBe(`pay_7_secret_${mac}`);
    expect(small.for({ ...scope, livemode: true }, 'pay_7')).not.toBe(first[7]);
  });
});
