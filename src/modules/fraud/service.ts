import { isIP } from 'node:net';
import { auditChange, type AuditContext } from '../audit/record.js';
import { inPageScope, inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { listRead, primaryReads } from '../../db/replica.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import type { Metrics } from '../../http/metrics.js';
import type { PaymentService } from '../payments/service.js';
import type { RefundService } from '../refunds/service.js';
import { decisionInputs, LIST_ITEM_COLUMNS, RULE_COLUMNS, type FraudEngine } from './engine.js';
import {
  decidedPayments,
  type ListItemRow,
  type ListItemType,
  type ListRow,
  type ReviewRow,
  type RuleRow,
} from './repo.js';
import { activation, compileRule, normalizeListValue } from './rules.js';
import type {
  Backtest,
  BacktestBody,
  CreateListBody,
  CreateRuleBody,
  FraudList,
  ListItem,
  Review,
  Rule,
  UpdateRuleBody,
} from './schemas.js';
import { systemClock, type Clock } from '../../lib/time.js';

const seconds = (date: Date | null) => (date === null ? null : Math.floor(new Date(date).getTime() / 1000));
const MAX_RULES = 200;
const MAX_LISTS = 100;

export const toApiRule = (row: RuleRow): Rule => ({
  id: row.id,
  object: 'fraud_rule',
  name: row.name,
  expression: row.expression,
  action: row.action,
  priority: row.priority,
  enabled: row.enabled,
  shadow: row.shadow,
  created: seconds(row.created_at)!,
  updated: seconds(row.updated_at)!,
  livemode: row.livemode,
});

const toApiList = (row: ListRow): FraudList => ({
  id: row.id,
  object: 'fraud_list',
  name: row.name,
  item_type: row.item_type,
  kind: row.kind,
  created: seconds(row.created_at)!,
  livemode: row.livemode,
});

const toApiItem = (row: ListItemRow): ListItem => ({
  id: row.id,
  object: 'fraud_list_item',
  list: row.list_id,
  value: row.value,
  created: seconds(row.created_at)!,
  livemode: row.livemode,
});

const toApiReview = (row: ReviewRow): Review => ({
  id: row.id,
  object: 'review',
  payment: row.payment_id,
  status: row.status,
  opened_reason: row.opened_reason,
  closed_reason: row.closed_reason,
  closed_by: row.closed_by,
  closed_at: seconds(row.closed_at),
  created: seconds(row.created_at)!,
  livemode: row.livemode,
});

const ITEM_FORMATS: Record<ListItemType, (value: string) => boolean> = {
  card_fingerprint: (v) => /^[A-Za-z0-9_-]{1,64}$/.test(v),
  card_bin: (v) => /^\d{6,8}$/.test(v),
  email: (v) => /^[^\s@]+@[^\s@]+$/.test(v),
  ip_address: (v) => isIP(v) !== 0,
  country: (v) => /^[A-Za-z]{2}$/.test(v),
  customer: (v) => v.length <= 255,
};

/**
 * The fraud configuration API (rules and lists), the review queue, fraud labels and backtests.
 * Every write to rules or lists announces itself (a trigger's NOTIFY), so every process's cached
 * configuration of that tenant mode is dropped; this process's at once.
 */
export class FraudService {
  constructor(
    private readonly sql: Sql,
    private readonly engine: FraudEngine,
    private readonly payments: PaymentService,
    private readonly refunds: RefundService,
    private readonly workerSql: Sql,
    private readonly metrics: Metrics,
    private readonly now: Clock = systemClock,
  ) {}

  /** Sets the platform-wide gauges from the database (a worker loop; the worker role reads all tenants). */
  async refreshGauges(): Promise<void> {
    const [row] = await this.workerSql<{ open_reviews: number; fraud_amount: string; volume: string }[]>`
      SELECT * FROM worker_fraud_metrics()`;
    this.metrics.fraudReviewBacklog.set(Number(row.open_reviews));
    const volume = Number(row.volume);
    this.metrics.fraudRateBasisPoints.set(volume > 0 ? (Number(row.fraud_amount) * 10_000) / volume : 0);
  }

  private async changed<T>(scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
    await this.engine.configuration(scope);
    const result = await inScope(this.sql, scope, fn);
    this.engine.forget(scope);
    return result;
  }

  async listRules(scope: Scope): Promise<Rule[]> {
    return (await this.engine.configuration(scope)).rules.map(({ row }) => toApiRule(row));
  }

  async createRule(scope: Scope, body: CreateRuleBody, context: AuditContext): Promise<Rule> {
    const configuration = await this.engine.configuration(scope);
    compileRule(body.expression, configuration.lists);
    if (configuration.rules.length >= MAX_RULES)
      throw ApiError.invalid('too_many_rules', `A tenant mode has at most ${MAX_RULES} rules: delete some first.`);
    const now = this.now();
    const row: RuleRow = {
      id: newId('rule', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      name: body.name,
      expression: body.expression,
      action: body.action as RuleRow['action'],
      priority: body.priority ?? Math.max(0, ...configuration.rules.map((r) => r.row.priority)) + 10,
      enabled: body.enabled ?? true,
      shadow: body.shadow ?? false,
      created_at: now,
      updated_at: now,
    };
    await this.changed(scope, async (tx) => {
      await insertRows(tx, 'fraud_rules', RULE_COLUMNS, [row]);
      await auditChange(tx, scope, context, 'fraud_rule.created', 'fraud_rule', row.id, null, toApiRule(row));
    });
    return toApiRule(row);
  }

  async retrieveRule(scope: Scope, id: string): Promise<Rule> {
    return toApiRule(await inScope(this.sql, scope, (tx) => findOwned<RuleRow>(tx, 'fraud_rules', scope, id, 'rule')));
  }

  async updateRule(scope: Scope, id: string, body: UpdateRuleBody, context: AuditContext): Promise<Rule> {
    if (body.expression !== undefined) compileRule(body.expression, (await this.engine.configuration(scope)).lists);
    return this.changed(scope, async (tx) => {
      const rule = await findOwned<RuleRow>(tx, 'fraud_rules', scope, id, 'rule');
      const next = { ...rule, ...body, updated_at: this.now() } as RuleRow;
      await tx`UPDATE fraud_rules SET name = ${next.name}, expression = ${next.expression}, action = ${next.action},
        priority = ${next.priority}, enabled = ${next.enabled}, shadow = ${next.shadow}, updated_at = ${next.updated_at}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      await auditChange(tx, scope, context, 'fraud_rule.updated', 'fraud_rule', id, toApiRule(rule), toApiRule(next));
      return toApiRule(next);
    });
  }

  async deleteRule(scope: Scope, id: string, context: AuditContext) {
    return this.changed(scope, async (tx) => {
      const rule = await findOwned<RuleRow>(tx, 'fraud_rules', scope, id, 'rule');
      await auditChange(tx, scope, context, 'fraud_rule.deleted', 'fraud_rule', id, toApiRule(rule), null);
      await tx`DELETE FROM fraud_rules WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      return { id, object: 'fraud_rule' as const, deleted: true as const };
    });
  }

  async listLists(scope: Scope): Promise<FraudList[]> {
    await this.engine.configuration(scope);
    const rows = await inScope(
      this.sql,
      scope,
      (tx) => tx<ListRow[]>`SELECT * FROM fraud_lists
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ORDER BY name`,
    );
    return rows.map(toApiList);
  }

  async createList(scope: Scope, body: CreateListBody, context: AuditContext): Promise<FraudList> {
    const row: ListRow = {
      id: newId('rsl', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      name: body.name,
      item_type: body.item_type as ListItemType,
      kind: (body.kind ?? 'block') as ListRow['kind'],
      created_at: this.now(),
    };
    return this.changed(scope, async (tx) => {
      const [{ count }] = await tx<{ count: number }[]>`SELECT count(*)::int AS count FROM fraud_lists
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      if (count >= MAX_LISTS)
        throw ApiError.invalid('too_many_lists', `A tenant mode has at most ${MAX_LISTS} lists: delete some first.`);
      const inserted = await tx`INSERT INTO fraud_lists (id, tenant_id, livemode, name, item_type, kind, created_at)
        VALUES (${row.id}, ${row.tenant_id}, ${row.livemode}, ${row.name}, ${row.item_type}, ${row.kind},
          ${row.created_at})
        ON CONFLICT (tenant_id, livemode, name) DO NOTHING RETURNING id`;
      if (!inserted.length) throw ApiError.invalid('list_exists', `A list named '${row.name}' already exists.`, 'name');
      await auditChange(tx, scope, context, 'fraud_list.created', 'fraud_list', row.id, null, toApiList(row));
      return toApiList(row);
    });
  }

  async retrieveList(scope: Scope, id: string): Promise<FraudList> {
    await this.engine.configuration(scope);
    return toApiList(await inScope(this.sql, scope, (tx) => findOwned<ListRow>(tx, 'fraud_lists', scope, id, 'list')));
  }

  async deleteList(scope: Scope, id: string, context: AuditContext) {
    return this.changed(scope, async (tx) => {
      const list = await findOwned<ListRow>(tx, 'fraud_lists', scope, id, 'list');
      await auditChange(tx, scope, context, 'fraud_list.deleted', 'fraud_list', id, toApiList(list), null);
      await tx`DELETE FROM fraud_lists WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      return { id, object: 'fraud_list' as const, deleted: true as const };
    });
  }

  async addItem(scope: Scope, listId: string, value: string, context: AuditContext): Promise<ListItem> {
    return this.changed(scope, async (tx) => {
      const item = await this.insertItem(tx, scope, listId, value);
      await auditChange(tx, scope, context, 'fraud_list_item.added', 'fraud_list_item', item.id, null, item);
      return item;
    });
  }

  private async insertItem(tx: Tx, scope: Scope, listId: string, value: string): Promise<ListItem> {
    const list = await findOwned<ListRow>(tx, 'fraud_lists', scope, listId, 'list');
    if (!ITEM_FORMATS[list.item_type](value))
      throw ApiError.invalid('invalid_list_item', `The value is not a valid ${list.item_type}.`, 'value');
    const row: ListItemRow = {
      id: newId('rsli', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      list_id: list.id,
      value: normalizeListValue(list.item_type === 'country' ? value.toUpperCase() : value),
      created_at: this.now(),
    };
    const [existing] = await insertRows(
      tx,
      'fraud_list_items',
      LIST_ITEM_COLUMNS,
      [row],
      'ON CONFLICT (list_id, value) DO UPDATE SET value = excluded.value RETURNING *',
    );
    return toApiItem(existing as ListItemRow);
  }

  async listItems(scope: Scope, listId: string, params: ListParams) {
    return inPageScope(this.sql, scope, async (tx) => {
      await findOwned<ListRow>(tx, 'fraud_lists', scope, listId, 'list');
      const page = await listPage<ListItemRow>(tx, 'fraud_list_items', scope, params, [tx`AND list_id = ${listId}`]);
      return { data: page.rows.map(toApiItem), has_more: page.hasMore };
    });
  }

  async deleteItem(scope: Scope, listId: string, itemId: string, context: AuditContext) {
    return this.changed(scope, async (tx) => {
      const item = await findOwned<ListItemRow>(tx, 'fraud_list_items', scope, itemId, 'list_item');
      if (item.list_id !== listId) throw ApiError.notFound('list_item', itemId);
      await auditChange(
        tx,
        scope,
        context,
        'fraud_list_item.removed',
        'fraud_list_item',
        itemId,
        toApiItem(item),
        null,
      );
      await tx`DELETE FROM fraud_list_items WHERE id = ${itemId} AND tenant_id = ${scope.tenantId}
        AND livemode = ${scope.livemode}`;
      return { id: itemId, object: 'fraud_list_item' as const, deleted: true as const };
    });
  }

  async listReviews(scope: Scope, params: ListParams & { status?: string }) {
    // The open reviews, the queue, are few among many closed: found through fraud_reviews_open and sorted, not by a
    // walk of the tenant's history.
    return listRead(primaryReads(this.sql), scope, params.status !== undefined, async (tx) => {
      const page = await listPage<ReviewRow>(tx, 'fraud_reviews', scope, params, [
        params.status ? tx`AND status = ${params.status}` : tx``,
      ]);
      return { data: page.rows.map(toApiReview), has_more: page.hasMore };
    });
  }

  async retrieveReview(scope: Scope, id: string): Promise<Review> {
    return toApiReview(
      await inScope(this.sql, scope, (tx) => findOwned<ReviewRow>(tx, 'fraud_reviews', scope, id, 'review')),
    );
  }

  /**
   * Approving lets the payment go on (an uncaptured one is captured); rejecting stops it (an
   * uncaptured one is canceled, a captured one refunded in full). The payment is acted on first and
   * the review closed after, compare-and-set on `open`, with who closed it, why and when.
   */
  async closeReview(
    scope: Scope,
    id: string,
    decision: 'approved' | 'rejected',
    reason: string | null,
    by: string,
    context: AuditContext,
  ): Promise<Review> {
    const { requestId } = context;
    const review = await inScope(this.sql, scope, (tx) =>
      findOwned<ReviewRow>(tx, 'fraud_reviews', scope, id, 'review'),
    );
    if (review.status !== 'open') throw ApiError.invalid('review_not_open', `This review is already ${review.status}.`);
    const payment = await this.payments.retrieve(scope, review.payment_id);
    if (decision === 'approved' && payment.status === 'requires_capture')
      await this.payments.capture(scope, payment.id, null, requestId);
    if (decision === 'rejected') {
      if (payment.status === 'requires_capture')
        await this.payments.cancel(scope, payment.id, { cancellation_reason: 'fraudulent' }, requestId);
      else if (payment.status === 'succeeded' && payment.amount_received > payment.amount_refunded)
        await this.refunds.create(scope, { payment: payment.id, reason: 'fraudulent' }, context);
    }
    const [closed] = await inScope(
      this.sql,
      scope,
      (tx) => tx<ReviewRow[]>`UPDATE fraud_reviews SET status = ${decision}, closed_reason = ${reason},
        closed_by = ${by}, closed_at = ${this.now()}
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND status = 'open'
      RETURNING *`,
    );
    if (!closed) throw ApiError.invalid('review_not_open', 'This review was closed by another request.');
    return toApiReview(closed);
  }

  /** Labels a payment as fraud (for backtests and the fraud rate); optionally blocks its card. */
  async reportFraud(scope: Scope, paymentId: string, by: string, blockCard: boolean) {
    const payment = await this.payments.retrieve(scope, paymentId);
    const write = async (tx: Tx) => {
      await tx`INSERT INTO fraud_reports (payment_id, tenant_id, livemode, reported_by)
        VALUES (${paymentId}, ${scope.tenantId}, ${scope.livemode}, ${by}) ON CONFLICT DO NOTHING`;
      if (!blockCard || typeof payment.payment_method !== 'string') return;
      const [method] = await tx<{ fingerprint: string }[]>`SELECT fingerprint FROM payment_methods
        WHERE id = ${payment.payment_method} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      const [list] = await tx<{ id: string }[]>`SELECT id FROM fraud_lists WHERE tenant_id = ${scope.tenantId}
        AND livemode = ${scope.livemode} AND name = 'blocked_cards'`;
      if (method && list) await this.insertItem(tx, scope, list.id, method.fingerprint);
    };
    await (blockCard ? this.changed(scope, write) : inScope(this.sql, scope, write));
    return payment;
  }

  /**
   * Replays an expression (or a stored rule's) over the decided payments of a window, with the
   * inputs stored at decision time and today's lists: matches, their amount, and precision and
   * recall against the fraud labels (reports and fraudulent disputes).
   */
  async backtest(scope: Scope, body: BacktestBody): Promise<Backtest> {
    if ((body.expression === undefined) === (body.rule === undefined))
      throw ApiError.invalid('parameter_invalid', 'Give exactly one of expression or rule.', 'expression');
    const until = body.until ?? Math.floor(Date.now() / 1000);
    if (until <= body.since) throw ApiError.invalid('parameter_invalid', 'until must be after since.', 'until');
    const configuration = await this.engine.configuration(scope);
    const expression =
      body.expression ??
      (await inScope(this.sql, scope, (tx) => findOwned<RuleRow>(tx, 'fraud_rules', scope, body.rule!, 'rule')))
        .expression;
    const compiled = compileRule(expression, configuration.lists);
    const rows = await inScope(this.sql, scope, (tx) =>
      decidedPayments(tx, scope, new Date(body.since * 1000), new Date(until * 1000)),
    );
    const truncated = rows.length > 100_000;
    let matched = 0;
    let matchedAmount = 0;
    let matchedFraud = 0;
    let fraud = 0;
    for (const row of rows.slice(0, 100_000)) {
      if (row.fraud) fraud++;
      let hit = false;
      try {
        hit = compiled(activation(decisionInputs(row.fraud_inputs), configuration.lists)) === true;
      } catch {
        // Inputs stored by an older version may lack a variable: such a payment does not match.
      }
      if (!hit) continue;
      matched++;
      matchedAmount += Number(row.amount);
      if (row.fraud) matchedFraud++;
    }
    return {
      object: 'fraud_backtest',
      expression,
      payments: Math.min(rows.length, 100_000),
      matched,
      matched_amount: matchedAmount,
      matched_fraud: matchedFraud,
      fraud,
      precision: matched ? matchedFraud / matched : null,
      recall: fraud ? matchedFraud / fraud : null,
      truncated,
    };
  }
}
