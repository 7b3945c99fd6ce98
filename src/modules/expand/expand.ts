import type { Scope } from '../../db/index.js';
import { ApiError, safeEcho } from '../../http/errors.js';
import { EXPAND_LIMITS } from '../../http/schemas.js';
import type { CustomerService } from '../customers/service.js';
import type { LedgerService } from '../ledger/service.js';
import type { PaymentMethodService } from '../payment-methods/service.js';
import type { PaymentService } from '../payments/service.js';
import { PAYMENT_REFUNDS_EXPANDED } from '../payments/schemas.js';
import type { RefundService } from '../refunds/service.js';

type ApiObject = Record<string, unknown>;

/**
 * What can be expanded, per object type: each field and the type of the object it becomes (for a `list`
 * field, the type of its items: a path goes on through its `data`). The API reference documents the same
 * fields as `anyOf: [id, object]` (src/http/schemas.ts `Expandable`).
 */
export const EXPANDABLE = {
  payment: {
    payment_method: { type: 'payment_method' },
    customer: { type: 'customer' },
    balance_transaction: { type: 'balance_transaction' },
    latest_attempt: { type: 'payment_attempt' },
    refunds: { type: 'refund', list: true },
  },
  refund: {
    payment: { type: 'payment' },
    balance_transaction: { type: 'balance_transaction' },
  },
  customer: {
    default_payment_method: { type: 'payment_method' },
  },
  payment_method: {
    customer: { type: 'customer' },
  },
  balance_transaction: {},
  payment_attempt: {},
} as const satisfies Record<string, Record<string, { type: string; list?: true }>>;

export type ExpandableType = keyof typeof EXPANDABLE;
type Field = { type: ExpandableType; list?: true };

/** The fields to expand, each with what to expand inside the object it becomes. */
export type ExpandTree = Map<string, ExpandTree>;

const invalid = (message: string) => ApiError.invalid('parameter_invalid', message, 'expand[]');

/**
 * Checks every path before anything is read, so a bad one costs no query: a field that is not expandable on the
 * object it reaches, more than four levels (counting `data`, as Stripe does), or a list path without `data.`.
 */
export function parseExpand(raw: string | string[] | undefined, root: ExpandableType, list: boolean): ExpandTree {
  const tree: ExpandTree = new Map();
  for (const path of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
    const segments = path.split('.');
    const shown = safeEcho(path);
    if (segments.length > EXPAND_LIMITS.depth)
      throw invalid(`Cannot expand '${shown}': expansions go at most ${EXPAND_LIMITS.depth} levels deep.`);
    let index = 0;
    if (list) {
      if (segments[0] !== 'data' || segments.length < 2)
        throw invalid(`Cannot expand '${shown}': on a list, each path starts with 'data.' (e.g. data.customer).`);
      index = 1;
    }
    let type: ExpandableType = root;
    let node = tree;
    for (; index < segments.length; index++) {
      const name = segments[index];
      const field = (EXPANDABLE[type] as Record<string, Field>)[name];
      if (!field) {
        const fields = Object.keys(EXPANDABLE[type]);
        throw invalid(
          `Cannot expand '${shown}': '${safeEcho(name)}' is not an expandable field of ${type}` +
            (fields.length ? ` (those are ${fields.join(', ')}).` : ' (it has none).'),
        );
      }
      if (field.list && index + 1 < segments.length) {
        if (segments[index + 1] !== 'data')
          throw invalid(`Cannot expand '${shown}': '${name}' is a list; go on through '${name}.data.'.`);
        index++;
      }
      const child = node.get(name) ?? new Map();
      node.set(name, child);
      node = child;
      type = field.type;
    }
  }
  return tree;
}

type Resolver = (scope: Scope, parents: ApiObject[]) => Promise<Array<unknown>>;

export interface ExpanderDeps {
  payments: PaymentService;
  refunds: RefundService;
  customers: CustomerService;
  paymentMethods: PaymentMethodService;
  ledger: LedgerService;
}

/**
 * Replaces ids with the objects they name, level by level: one query per field and level for a whole page,
 * always through the owning module's service and inside the caller's tenant scope (row-level security), so an
 * id that is not the caller's stays a bare id. Without `expand[]` nothing here runs.
 */
export class Expander {
  private readonly resolvers: { [T in ExpandableType]: Record<keyof (typeof EXPANDABLE)[T], Resolver> };

  constructor(deps: ExpanderDeps) {
    const byId =
      (field: string, load: (scope: Scope, ids: string[]) => Promise<ApiObject[]>): Resolver =>
      async (scope, parents) => {
        const ids = [...new Set(parents.map((p) => p[field]).filter((v): v is string => typeof v === 'string'))];
        const found = new Map((await load(scope, ids)).map((object) => [object.id as string, object]));
        return parents.map((p) => (typeof p[field] === 'string' ? found.get(p[field]) : undefined));
      };
    const paymentMethods = (field: string) =>
      byId(field, (scope, ids) => deps.paymentMethods.retrieveMany(scope, ids) as Promise<ApiObject[]>);
    const customers = (field: string) =>
      byId(field, (scope, ids) => deps.customers.retrieveMany(scope, ids) as Promise<ApiObject[]>);
    const balanceTransactions = (field: string) =>
      byId(field, (scope, ids) => deps.ledger.retrieveBalanceTransactions(scope, ids) as Promise<ApiObject[]>);
    this.resolvers = {
      payment: {
        payment_method: paymentMethods('payment_method'),
        customer: customers('customer'),
        balance_transaction: balanceTransactions('balance_transaction'),
        // The attempts came with the payment: no query.
        latest_attempt: async (_scope, parents) =>
          parents.map((p) => (p.attempts as ApiObject[]).find((attempt) => attempt.id === p.latest_attempt)),
        refunds: async (scope, parents) => {
          const ids = parents.map((p) => p.id as string);
          const pages = await deps.refunds.listForPayments(scope, ids, PAYMENT_REFUNDS_EXPANDED);
          return ids.map((id) => ({ object: 'list', url: `/v1/refunds?payment=${id}`, ...pages.get(id)! }));
        },
      },
      refund: {
        payment: byId('payment', (scope, ids) => deps.payments.retrieveMany(scope, ids) as Promise<ApiObject[]>),
        balance_transaction: balanceTransactions('balance_transaction'),
      },
      customer: { default_payment_method: paymentMethods('default_payment_method') },
      payment_method: { customer: customers('customer') },
      balance_transaction: {},
      payment_attempt: {},
    };
  }

  /** A retrieve: checks `expand[]`, loads the object, expands it. */
  async one<T>(scope: Scope, type: ExpandableType, raw: string | string[] | undefined, load: () => Promise<T>) {
    const tree = parseExpand(raw, type, false);
    const object = await load();
    if (tree.size) await this.expand(scope, type, [object as ApiObject], tree);
    return object;
  }

  /** A list: checks `expand[]` (each path through `data.`), loads the page, expands its items. */
  async list<T extends { data: unknown[] }>(
    scope: Scope,
    type: ExpandableType,
    raw: string | string[] | undefined,
    load: () => Promise<T>,
  ) {
    const tree = parseExpand(raw, type, true);
    const page = await load();
    if (tree.size) await this.expand(scope, type, page.data as ApiObject[], tree);
    return page;
  }

  private async expand(scope: Scope, type: ExpandableType, objects: ApiObject[], tree: ExpandTree): Promise<void> {
    if (!objects.length) return;
    await Promise.all(
      [...tree].map(async ([name, subtree]) => {
        const field = (EXPANDABLE[type] as Record<string, Field>)[name];
        const values = await (this.resolvers[type] as Record<string, Resolver>)[name](scope, objects);
        const children: ApiObject[] = [];
        objects.forEach((object, index) => {
          const value = values[index] as ApiObject | undefined;
          if (value === undefined) return;
          // A copy per parent: the same customer under two payments may be expanded further on one path only.
          const copy = field.list
            ? { ...value, data: (value.data as ApiObject[]).map((item) => ({ ...item })) }
            : { ...value };
          object[name] = copy;
          children.push(...(field.list ? (copy.data as ApiObject[]) : [copy]));
        });
        if (subtree.size) await this.expand(scope, field.type, children, subtree);
      }),
    );
  }
}
