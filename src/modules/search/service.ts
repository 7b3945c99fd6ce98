import type { Reads } from '../../db/replica.js';
import type postgres from 'postgres';
import type { Scope, Tx } from '../../db/index.js';
import { idFloor } from '../../lib/ids.js';
import { toApiCustomer, type CustomerRow } from '../customers/service.js';
import { withAttemptsOf, type PaymentRow } from '../payments/repo.js';
import { toApiPayment } from '../payments/service.js';
import { pageCursor, parseSearchQuery, type Clause, type FieldSpec, type SearchQuery } from './query.js';

type Fragment = postgres.PendingQuery<postgres.Row[]>;

const text = { type: 'string' } as const;
const number = { type: 'number' } as const;

export const PAYMENT_SEARCH_FIELDS: Record<string, FieldSpec> = {
  status: text,
  currency: text,
  amount: number,
  created: number,
  customer: text,
  email: text,
  last4: text,
  metadata: text,
};

export const CUSTOMER_SEARCH_FIELDS: Record<string, FieldSpec> = {
  email: text,
  name: text,
  phone: text,
  created: number,
  metadata: text,
};

export interface SearchParams {
  query: string;
  limit?: number;
  page?: string;
}

function compare(tx: Tx, column: Fragment, clause: Clause, value: Fragment | number): Fragment {
  switch (clause.operator) {
    case '>':
      return tx`${column} > ${value}`;
    case '>=':
      return tx`${column} >= ${value}`;
    case '<':
      return tx`${column} < ${value}`;
    case '<=':
      return tx`${column} <= ${value}`;
    default:
      return tx`${column} = ${value}`;
  }
}

/**
 * `created` compares the creation time; for a lower bound the id range of that time is added too
 * (ids begin with their creation time, see idFloor), so the tenant's id index seeks to it.
 */
function created(tx: Tx, alias: string, prefix: string, clause: Clause): Fragment {
  const seconds = clause.value as number;
  const condition = compare(tx, tx`${tx(alias)}.created_at`, clause, tx`to_timestamp(${seconds}::bigint)`);
  const from = clause.operator === '>' ? seconds + 1 : clause.operator === '>=' ? seconds : undefined;
  if (from === undefined || from < 0 || from > 253_402_300_799) return condition;
  return tx`(${condition} AND ${tx(alias)}.id >= ${idFloor(prefix, new Date(from * 1000))})`;
}

/** Through metadata_index (migration 014), whose btree finds the pair without reading the tenant's objects. */
const metadata = (tx: Tx, scope: Scope, alias: string, clause: Clause) =>
  tx`${tx(alias)}.id IN (
    SELECT x.object_id FROM metadata_index x WHERE x.tenant_id = ${scope.tenantId} AND x.livemode = ${scope.livemode}
      AND x.key = ${clause.key!} AND x.value = ${String(clause.value)})`;

function paymentCondition(tx: Tx, scope: Scope, clause: Clause): Fragment {
  const value = String(clause.value);
  switch (clause.field) {
    case 'status':
      return tx`p.status = ${value}`;
    case 'currency':
      return tx`p.currency = ${value.toLowerCase()}`;
    case 'amount':
      return compare(tx, tx`p.amount`, clause, clause.value as number);
    case 'created':
      return created(tx, 'p', 'pay', clause);
    case 'customer':
      return tx`p.customer = ${value}`;
    case 'email':
      return tx`p.customer IN (
        SELECT c.id FROM customers c WHERE c.tenant_id = ${scope.tenantId} AND c.livemode = ${scope.livemode}
          AND c.email IS NOT NULL AND lower(c.email) = lower(${value}))`;
    case 'last4':
      return tx`p.payment_method_id IN (
        SELECT m.id FROM payment_methods m WHERE m.tenant_id = ${scope.tenantId} AND m.livemode = ${scope.livemode}
          AND m.last4 = ${value})`;
    default:
      return metadata(tx, scope, 'p', clause);
  }
}

function customerCondition(tx: Tx, scope: Scope, clause: Clause): Fragment {
  const value = String(clause.value);
  switch (clause.field) {
    case 'email':
      return tx`(c.email IS NOT NULL AND lower(c.email) = lower(${value}))`;
    case 'name':
      return tx`(c.name IS NOT NULL AND lower(c.name) = lower(${value}))`;
    case 'phone':
      return tx`(c.phone IS NOT NULL AND c.phone = ${value})`;
    case 'created':
      return created(tx, 'c', 'cus', clause);
    default:
      return metadata(tx, scope, 'c', clause);
  }
}

function where(tx: Tx, query: SearchQuery, condition: (clause: Clause) => Fragment): Fragment {
  const parts = query.clauses.map((clause) => {
    const fragment = condition(clause);
    return clause.negated ? tx`NOT coalesce(${fragment}, false)` : fragment;
  });
  const joiner = query.combinator === 'AND' ? tx`AND` : tx`OR`;
  return parts.slice(1).reduce((acc, part) => tx`${acc} ${joiner} ${part}`, parts[0]);
}

/** The statement a payment search runs (exported so a test can EXPLAIN it). */
export function paymentSearchStatement(tx: Tx, scope: Scope, query: SearchQuery, limit: number, after?: string) {
  return tx<PaymentRow[]>`
    SELECT p.* FROM payments p
    WHERE p.tenant_id = ${scope.tenantId} AND p.livemode = ${scope.livemode}
      AND (${where(tx, query, (clause) => paymentCondition(tx, scope, clause))})
      ${after ? tx`AND p.id < ${after}` : tx``}
    ORDER BY p.id DESC LIMIT ${limit + 1}`;
}

export function customerSearchStatement(tx: Tx, scope: Scope, query: SearchQuery, limit: number, after?: string) {
  return tx<CustomerRow[]>`
    SELECT c.* FROM customers c
    WHERE c.tenant_id = ${scope.tenantId} AND c.livemode = ${scope.livemode} AND c.deleted_at IS NULL
      AND (${where(tx, query, (clause) => customerCondition(tx, scope, clause))})
      ${after ? tx`AND c.id < ${after}` : tx``}
    ORDER BY c.id DESC LIMIT ${limit + 1}`;
}

function page<Row extends { id: string }, Out>(rows: Row[], limit: number, data: Out[], url: string) {
  const hasMore = rows.length > limit;
  return {
    object: 'search_result' as const,
    url,
    data,
    has_more: hasMore,
    next_page: hasMore ? pageCursor.encode(rows[limit - 1].id) : null,
  };
}

/**
 * The fields a search checks on the object's own row (an equality on an index of the tenant in id order, a comparison,
 * an id range). A search on these alone is a walk of the tenant's index in id order that stops at the page's end
 * (Reads.inPageScope): the planner's defaults do not choose it while row-level security hides the tenant's share of the
 * table from their estimate, and read every payment of the tenant through another index to sort them. A field found
 * through another table's index (a customer's email or a card's last4 for payments, metadata) is best read from there
 * and sorted, under the defaults; so are clauses joined by OR, whose rows several index scans find together.
 */
const PAYMENT_ROW_FIELDS = new Set(['status', 'currency', 'amount', 'created', 'customer']);
const CUSTOMER_ROW_FIELDS = new Set(['email', 'name', 'phone', 'created']);

function searchRead<T>(
  reads: Reads,
  scope: Scope,
  query: SearchQuery,
  rowFields: Set<string>,
  fn: (tx: Tx) => Promise<T>,
) {
  const walk = query.clauses.length === 1 || query.combinator === 'AND';
  return walk && query.clauses.every((clause) => rowFields.has(clause.field))
    ? reads.inPageScope(scope, fn)
    : reads.inScope(scope, fn);
}

/** Stripe-style search over payments and customers: newest first, paged by an opaque `page` cursor. */
export class SearchService {
  constructor(private readonly reads: Reads) {}

  async payments(scope: Scope, params: SearchParams) {
    const query = parseSearchQuery(params.query, PAYMENT_SEARCH_FIELDS);
    const limit = params.limit ?? 10;
    const after = params.page === undefined ? undefined : pageCursor.decode(params.page);
    return searchRead(this.reads, scope, query, PAYMENT_ROW_FIELDS, async (tx) => {
      const rows = await paymentSearchStatement(tx, scope, query, limit, after);
      const states = await withAttemptsOf(tx, rows.slice(0, limit));
      return page(rows, limit, states.map(toApiPayment), '/v1/payments/search');
    });
  }

  async customers(scope: Scope, params: SearchParams) {
    const query = parseSearchQuery(params.query, CUSTOMER_SEARCH_FIELDS);
    const limit = params.limit ?? 10;
    const after = params.page === undefined ? undefined : pageCursor.decode(params.page);
    return searchRead(this.reads, scope, query, CUSTOMER_ROW_FIELDS, async (tx) => {
      const rows = await customerSearchStatement(tx, scope, query, limit, after);
      return page(rows, limit, rows.slice(0, limit).map(toApiCustomer), '/v1/customers/search');
    });
  }
}
