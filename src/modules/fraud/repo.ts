import type { Scope, Tx } from '../../db/index.js';
import type { Columns } from '../../db/unnest.js';
import { idRangeFrom, idRangeUntil } from '../../lib/ids.js';
import type { StoredInputs } from './engine.js';

export type FraudAction = 'allow' | 'review' | 'block' | 'request_3ds';
export const FRAUD_ACTIONS: FraudAction[] = ['allow', 'review', 'block', 'request_3ds'];
export const LIST_ITEM_TYPES = ['card_fingerprint', 'card_bin', 'email', 'ip_address', 'country', 'customer'] as const;
export type ListItemType = (typeof LIST_ITEM_TYPES)[number];

export interface RuleRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  name: string;
  expression: string;
  action: FraudAction;
  priority: number;
  enabled: boolean;
  shadow: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface ListRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  name: string;
  item_type: ListItemType;
  kind: 'block' | 'allow';
  created_at: Date;
}

export interface ListItemRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  list_id: string;
  value: string;
  created_at: Date;
}

export interface ReviewRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  payment_id: string;
  status: 'open' | 'approved' | 'rejected';
  opened_reason: string;
  closed_reason: string | null;
  closed_by: string | null;
  closed_at: Date | null;
  created_at: Date;
}

/** Written with the payment, in its batch, so a payment in review never lacks its review. */
export const REVIEW_COLUMNS: Columns<ReviewRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['payment_id', 'text'],
  ['status', 'text'],
  ['opened_reason', 'text'],
  ['closed_reason', 'text'],
  ['closed_by', 'text'],
  ['closed_at', 'timestamptz'],
  ['created_at', 'timestamptz'],
];

/** A tenant mode's whole fraud configuration, as the decision caches it. */
export async function loadConfiguration(tx: Tx, scope: Scope) {
  const [rules, lists, items] = await Promise.all([
    tx<RuleRow[]>`SELECT * FROM fraud_rules WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
      ORDER BY priority, id`,
    tx<ListRow[]>`SELECT * FROM fraud_lists WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`,
    // Through the tenant's lists: fraud_list_items is indexed by list alone, so filtering it by tenant read every
    // tenant's items.
    tx<Pick<ListItemRow, 'list_id' | 'value'>[]>`SELECT list_id, value FROM fraud_list_items
      WHERE list_id IN (SELECT id FROM fraud_lists WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode})
        AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`,
  ]);
  return { rules, lists, items };
}

/** Marks the default pack as given; true only for the first caller, who then inserts it. */
export async function claimDefaults(tx: Tx, scope: Scope): Promise<boolean> {
  const rows = await tx`INSERT INTO fraud_settings (tenant_id, livemode) VALUES (${scope.tenantId}, ${scope.livemode})
    ON CONFLICT DO NOTHING RETURNING 1`;
  return rows.length === 1;
}

/**
 * The payments a backtest replays: those decided in the window, with their stored inputs, and
 * whether each is labelled fraud (reported, or disputed as fraudulent). Ids begin with their creation time (idFloor),
 * so the window is also an id range: the tenant's index is read from the window's start, not from its first payment.
 */
export function decidedPayments(tx: Tx, scope: Scope, since: Date, until: Date) {
  return tx<{ id: string; amount: number; fraud_inputs: StoredInputs; fraud: boolean }[]>`
    SELECT p.id, p.amount, f.inputs AS fraud_inputs,
      (EXISTS (SELECT 1 FROM fraud_reports r WHERE r.payment_id = p.id)
        OR EXISTS (SELECT 1 FROM disputes d WHERE d.payment_id = p.id AND d.reason = 'fraudulent')) AS fraud
    FROM payments p JOIN payment_fraud_decisions f ON f.payment_id = p.id
    WHERE p.tenant_id = ${scope.tenantId} AND p.livemode = ${scope.livemode}
      AND p.created_at >= ${since} AND p.created_at < ${until} AND p.id >= ${idRangeFrom('pay', since)}
      AND p.id < ${idRangeUntil('pay', until)}
    ORDER BY p.id
    LIMIT 100001`;
}
