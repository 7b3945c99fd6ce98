import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalCardless } from './idempotency.js';

// The request fingerprint's text as it was made before canonicalCardless (a copy of the body without card data, then
// its canonical JSON): the fingerprints of keys still live were made from it, so a retry after an upgrade must match.
const CARD_DATA = new Set(['number', 'cvc', 'exp_month', 'exp_year']);

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

function withoutCardData(value: unknown, cardFingerprint: (pan: string) => string): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => withoutCardData(item, cardFingerprint));
  const source = value as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (const [name, item] of Object.entries(source))
    if (!CARD_DATA.has(name)) result[name] = withoutCardData(item, cardFingerprint);
  if (source.number !== undefined) result.card_fingerprint = cardFingerprint(String(source.number));
  return result;
}

const fingerprint = (pan: string) => `fp_${pan.length}_${pan.slice(-4)}`;
const reference = (value: unknown) => canonicalJson(withoutCardData(value, fingerprint));

// Keys the card rules look at, and others, at any depth.
const key = fc.oneof(
  fc.constantFrom('number', 'cvc', 'exp_month', 'exp_year', 'card_fingerprint', 'card', 'amount', 'a', 'B', 'é', ''),
  fc.string({ maxLength: 6 }),
);
const body = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.string(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).value;

describe('canonicalCardless', () => {
  it('writes the text the fingerprints were made from, for any JSON body', () => {
    fc.assert(
      fc.property(body, (value) => {
        expect(canonicalCardless(value, fingerprint)).toBe(reference(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves card number, CVC and expiry out and names the card by its fingerprint', () => {
    const text = canonicalCardless(
      {
        amount: 1500,
        payment_method_data: { card: { number: '4242424242424242', cvc: '123', exp_month: 12, exp_year: 2030 } },
        metadata: { order: 'A-1' },
      },
      fingerprint,
    );
    expect(text).toBe(
      '{"amount":1500,"metadata":{"order":"A-1"},"payment_method_data":{"card":{"card_fingerprint":"fp_16_4242"}}}',
    );
  });
});
