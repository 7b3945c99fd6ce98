import { inScope, type Sql } from '../../db/index.js';
import { recordAudit, systemContext } from '../audit/record.js';
import { ApiError } from '../../http/errors.js';
import { idFloor } from '../../lib/ids.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';

const DAY_MS = 86_400_000;
// Payments are created within moments of their time-ordered ids.
const ID_MARGIN_MS = 60 * 60_000;

/** A payment method whose card data the retention job erased cannot be charged or verified again. */
export function cardDataErased() {
  return ApiError.invalid(
    'payment_method_card_data_erased',
    'This payment method was unused for the card-data retention period, so its card number was erased; ' +
      'collect the card from the customer again.',
    'payment_method',
  );
}

/**
 * Card-data retention (PCI DSS 3.2.1: keep card data no longer than needed): erases the sealed card
 * number of each payment method unused for `retentionDays` (no payment created with it since).
 * The token, brand, last4, expiry and fingerprint stay, so past payments still show their card.
 */
export class CardDataRetention {
  constructor(
    private readonly sql: Sql,
    private readonly workerSql: Sql,
    private readonly retentionDays: number,
  ) {}

  async run(now = new Date(), limit = 500, items: ItemRunner = separately('payment methods')): Promise<number> {
    const before = new Date(now.getTime() - this.retentionDays * DAY_MS);
    const idsFrom = idFloor('pay', new Date(before.getTime() - ID_MARGIN_MS));
    const due = await this.workerSql<{ id: string; tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_unused_card_data(${before}, ${idsFrom}, ${limit + items.waiting})`;
    return items.each(
      due,
      (pm) => pm.id,
      (pm) =>
        inScope(this.sql, { tenantId: pm.tenant_id, livemode: pm.livemode }, async (tx) => {
          // Checked again under the row lock: a payment made with the card since the scan keeps it.
          const erased = await tx`
            UPDATE payment_methods pm SET kek_id = NULL, wrapped_dek = NULL, pan_ciphertext = NULL,
              card_data_erased_at = ${now}
            WHERE pm.id = ${pm.id} AND pm.tenant_id = ${pm.tenant_id} AND pm.livemode = ${pm.livemode}
              AND pm.card_data_erased_at IS NULL AND pm.created_at < ${before}
              AND NOT EXISTS (
                SELECT 1 FROM payments p WHERE p.tenant_id = pm.tenant_id AND p.livemode = pm.livemode
                  AND p.id >= ${idsFrom} AND p.payment_method_id = pm.id AND p.created_at >= ${before})`;
          if (erased.count !== 1) return false;
          await recordAudit(tx, {
            scope: { tenantId: pm.tenant_id, livemode: pm.livemode },
            context: systemContext('card-data-retention'),
            action: 'payment_method.card_data_erased',
            target: { type: 'payment_method', id: pm.id },
            after: { card_data_erased: true, retention_days: this.retentionDays },
          });
          return true;
        }),
    );
  }
}
