import type postgres from 'postgres';
import type { Scope, Tx } from './index.js';
import { ApiError, safeEcho } from '../http/errors.js';
import { idRangeFrom, idRangeUntil } from '../lib/ids.js';

export interface ListParams {
  limit?: number;
  starting_after?: string;
  ending_before?: string;
  'created[gte]'?: number;
  'created[gt]'?: number;
  'created[lte]'?: number;
  'created[lt]'?: number;
}

export interface Page<Row> {
  rows: Row[];
  hasMore: boolean;
}

/**
 * Newest-first cursor pagination over a tenant table. Ids are time-ordered, so the cursor is the
 * id itself. `filters` are extra SQL fragments (each starting with AND). The cursor's check and the
 * page are queued together, so they cost one round trip, not two. `select` replaces `*` (the row is
 * `item`), for a list that reads related rows with its page in the same statement.
 */
export async function listPage<Row extends { id: string }>(
  tx: Tx,
  table: string,
  scope: Scope,
  params: ListParams,
  filters: postgres.PendingQuery<postgres.Row[]>[] = [],
  select?: postgres.PendingQuery<postgres.Row[]>,
): Promise<Page<Row>> {
  const limit = params.limit ?? 10;
  const backwards = params.ending_before !== undefined;
  const conditions = [
    ...(params.starting_after !== undefined ? [tx`AND id < ${params.starting_after}`] : []),
    ...(backwards ? [tx`AND id > ${params.ending_before!}`] : []),
    ...createdRange(tx, params, TIME_ORDERED_IDS[table]),
    ...filters,
  ];
  const where = joinConditions(tx, conditions);
  const [, rows] = await Promise.all([
    checkCursor(tx, table, scope, params),
    tx<Row[]>`
    SELECT ${select ?? tx`*`} FROM ${tx(table)} AS item
    WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ${where}
    ORDER BY id ${backwards ? tx`ASC` : tx`DESC`}
    LIMIT ${limit + 1}`,
  ]);
  const hasMore = rows.length > limit;
  const page = rows.slice(0, limit);
  if (backwards) page.reverse();
  return { rows: page, hasMore };
}

/**
 * The tables whose ids begin with their row's creation time (lib/ids.ts, the instant of created_at or moments before
 * it) and that grow with payments: there a `created` bound is an id bound too, so the walk of the tenant's id index
 * starts and stops at the range. With created_at alone, `created[gte]=<yesterday>` read every older row of the tenant
 * to learn that there were no more, and `created[lt]=<last year>` every newer one before the first it could answer.
 */
const TIME_ORDERED_IDS: Readonly<Record<string, string>> = {
  payments: 'pay',
  refunds: 're',
  events: 'evt',
  disputes: 'dp',
  payouts: 'po',
  settlements: 'st',
  customers: 'cus',
  payment_methods: 'pm',
  // The view over ledger_transactions: a transaction's id is made moments before it is stamped (ledger/history.ts).
  balance_transactions: 'txn',
};

/**
 * The `created[gte|gt|lte|lt]` bounds a list query names, as SQL fragments (each starting with AND). Only those named:
 * every fragment is an object postgres.js builds and the join nests once more, which for a list with no filter was
 * about 4% of its API time. With `idPrefix` (TIME_ORDERED_IDS), each bound comes with its id bound.
 */
export function createdRange(tx: Tx, params: ListParams, idPrefix?: string): postgres.PendingQuery<postgres.Row[]>[] {
  // to_timestamp in SQL rather than a JS Date: `created[lte]=253402300799` asks for everything
  // before 10000-01-01, a bound PostgreSQL holds but postgres.js cannot serialize from a Date.
  const seconds = (value: number) => tx`to_timestamp(${value}::bigint)`;
  const bounds: postgres.PendingQuery<postgres.Row[]>[] = [];
  const from = (value: number) => {
    bounds.push(tx`AND created_at >= ${seconds(value)}`);
    if (idPrefix) bounds.push(tx`AND id >= ${idRangeFrom(idPrefix, new Date(value * 1000))}`);
  };
  const until = (value: number) => {
    bounds.push(tx`AND created_at < ${seconds(value)}`);
    if (idPrefix) bounds.push(tx`AND id < ${idRangeUntil(idPrefix, new Date(value * 1000))}`);
  };
  if (params['created[gte]'] !== undefined) from(params['created[gte]']);
  if (params['created[gt]'] !== undefined) from(params['created[gt]'] + 1);
  if (params['created[lte]'] !== undefined) until(params['created[lte]'] + 1);
  if (params['created[lt]'] !== undefined) until(params['created[lt]']);
  return bounds;
}

export function joinConditions(tx: Tx, conditions: postgres.PendingQuery<postgres.Row[]>[]) {
  return conditions.length ? conditions.reduce((acc, fragment) => tx`${acc} ${fragment}`) : tx``;
}

/** The list's cursor and the parameter that gave it; both at once is a 400, as at Stripe. */
export function listCursor(params: Pick<ListParams, 'starting_after' | 'ending_before'>) {
  if (params.starting_after !== undefined && params.ending_before !== undefined) {
    throw ApiError.invalid(
      'parameter_invalid',
      'You may only specify one of these parameters: starting_after, ending_before.',
      'ending_before',
    );
  }
  const param = params.starting_after !== undefined ? ('starting_after' as const) : ('ending_before' as const);
  return { param, cursor: params[param] };
}

/**
 * A cursor must name an object the caller can see. Otherwise the id comparison would still run
 * and answer some page (for an unknown id, usually the first one): a client paging through a
 * list would silently start over, and another tenant's id would be used as a position.
 */
async function checkCursor(tx: Tx, table: string, scope: Scope, params: ListParams): Promise<void> {
  const { param, cursor } = listCursor(params);
  if (cursor === undefined) return;
  const [found] = await tx`
    SELECT 1 FROM ${tx(table)} WHERE id = ${cursor} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
  if (!found) {
    throw new ApiError(
      'invalid_request_error',
      'resource_missing',
      `No such object for ${param}: '${safeEcho(cursor)}'.`,
      param,
      400,
    );
  }
}

/**
 * The objects of a tenant table among `ids`, in one query; ids of another tenant or mode are simply absent. Used to
 * expand references (`expand[]`), where a page of objects names many others.
 */
export async function findManyOwned<Row extends object>(tx: Tx, table: string, scope: Scope, ids: string[]) {
  if (!ids.length) return [];
  return tx<Row[]>`
    SELECT * FROM ${tx(table)}
    WHERE id = ANY(${ids}) AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
}

/** One object of a tenant table by id, or the 404 that another tenant's id also gets. */
export async function findOwned<Row extends object>(
  tx: Tx,
  table: string,
  scope: Scope,
  id: string,
  resource: string,
): Promise<Row> {
  const [row] = await tx<Row[]>`
    SELECT * FROM ${tx(table)} WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
  if (!row) throw ApiError.notFound(resource, id);
  return row;
}
