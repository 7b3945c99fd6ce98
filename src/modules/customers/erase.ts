import type { Scope, Tx } from '../../db/index.js';
import type { StoredInputs } from '../fraud/engine.js';
import type { CustomerRow } from './service.js';

export const ERASED = '[erased]';

/**
 * Keys whose value is personal data wherever they appear (metadata, dispute evidence, objects in
 * events): email addresses, phone numbers, IP addresses and people's names. `product_name` is not one.
 */
const PERSONAL_KEY =
  /^(?:.*_)?(?:e-?mail(?:_address)?|phone(?:_number)?|ip(?:_address)?)$|^(?:(?:first|last|full|customer|billing|shipping|cardholder)_)?name$/i;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Replaces personal data in any JSON value: a string under a personal key becomes `[erased]`, and
 * the customer's own email, name and phone are cut out of every other string. Numbers and booleans
 * (amounts, counts, flags) are never changed.
 */
export function scrubber(terms: (string | null)[]) {
  const known = terms.filter((t): t is string => !!t && t.trim().length >= 3);
  const pattern = known.length
    ? new RegExp(
        known
          .sort((a, b) => b.length - a.length)
          .map(escapeRegExp)
          .join('|'),
        'gi',
      )
    : null;
  const scrub = (value: unknown, key?: string): unknown => {
    if (typeof value === 'string') {
      if (key !== undefined && PERSONAL_KEY.test(key)) return ERASED;
      return pattern ? value.replace(pattern, ERASED) : value;
    }
    if (Array.isArray(value)) return value.map((item) => scrub(item));
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, k)]));
    return value;
  };
  return scrub;
}

/**
 * Pseudonymises one customer (the caller holds its row lock): its fields are cleared, and its
 * payments' descriptions and metadata, their refunds' metadata, disputes' evidence and every event
 * about any of these lose the customer's personal data. The customer keeps its id, which is the
 * pseudonym: payments, the ledger and reports still add up per customer. Payment versions move on,
 * so a state change computed from the old row cannot write the old text back.
 */
export async function erasePersonalData(tx: Tx, scope: Scope, row: CustomerRow): Promise<CustomerRow> {
  const scrub = scrubber([row.email, row.name, row.phone]);
  const where = tx`tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;

  const payments = await tx<
    { id: string; description: string | null; metadata: Record<string, string>; fraud_details: unknown }[]
  >`
    SELECT id, description, metadata, fraud_details FROM payments WHERE ${where} AND customer = ${row.id} FOR UPDATE`;
  const paymentIds = payments.map((p) => p.id);
  for (const payment of payments) {
    await tx`
      UPDATE payments SET description = ${scrub(payment.description) as string | null},
        metadata = ${tx.json(scrub(payment.metadata) as never)},
        fraud_details = ${payment.fraud_details === null ? null : tx.json(scrub(payment.fraud_details) as never)},
        version = version + 1, updated_at = now()
      WHERE id = ${payment.id} AND ${where}`;
  }
  // The fraud decisions keep the email and IP address they were taken on (for backtests): from now on unknown, as
  // for a payment that never gave them. The IP's country stays: it names no one.
  const decisions = await tx<{ payment_id: string; inputs: StoredInputs }[]>`
    SELECT payment_id, inputs FROM payment_fraud_decisions WHERE payment_id = ANY(${paymentIds}) FOR UPDATE`;
  for (const decision of decisions) {
    const inputs = { ...decision.inputs, email: '', ip: { ...decision.inputs.ip, address: '' } };
    await tx`
      UPDATE payment_fraud_decisions SET inputs = ${JSON.stringify(inputs)}::json
      WHERE payment_id = ${decision.payment_id} AND ${where}`;
  }
  const refunds = await tx<{ id: string; metadata: Record<string, string> }[]>`
    SELECT id, metadata FROM refunds WHERE ${where} AND payment_id = ANY(${paymentIds}) FOR UPDATE`;
  for (const refund of refunds)
    await tx`UPDATE refunds SET metadata = ${tx.json(scrub(refund.metadata) as never)} WHERE id = ${refund.id}`;
  const disputes = await tx<{ id: string; evidence: Record<string, unknown>; metadata: Record<string, string> }[]>`
    SELECT id, evidence, metadata FROM disputes WHERE ${where} AND payment_id = ANY(${paymentIds}) FOR UPDATE`;
  for (const dispute of disputes)
    await tx`
      UPDATE disputes SET evidence = ${tx.json(scrub(dispute.evidence) as never)},
        metadata = ${tx.json(scrub(dispute.metadata) as never)}
      WHERE id = ${dispute.id}`;

  const objectIds = [row.id, ...paymentIds, ...refunds.map((r) => r.id), ...disputes.map((d) => d.id)];
  const events = await tx<{ id: string; data: unknown }[]>`
    SELECT id, data FROM events WHERE ${where} AND object_id = ANY(${objectIds})`;
  for (const event of events)
    await tx`UPDATE events SET data = ${JSON.stringify(scrub(event.data))}::text::json WHERE id = ${event.id}`;

  const [erased] = await tx<CustomerRow[]>`
    UPDATE customers SET email = NULL, name = NULL, phone = NULL,
      metadata = ${tx.json(scrub(row.metadata) as never)}, erased_at = coalesce(erased_at, now()), updated_at = now()
    WHERE id = ${row.id} AND ${where}
    RETURNING *`;
  return erased;
}
