import { primaryReads, type Reads } from '../../db/replica.js';
import { inPageScope, inScope, scopedRead, type Scope, type Sql, type Tx } from '../../db/index.js';
import { recordAudit, type AuditContext } from '../audit/record.js';
import type { EventType } from '../events/catalog.js';
import { findManyOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { ApiError, safeEcho } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import type { PaymentMethod } from '../payment-methods/schemas.js';
import { toApiPaymentMethod, type PaymentMethodRow } from '../payment-methods/service.js';
import { erasePersonalData } from './erase.js';
import type { CreateCustomerBody, Customer, UpdateCustomerBody } from './schemas.js';

export interface CustomerRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  email: string | null;
  name: string | null;
  phone: string | null;
  metadata: Record<string, string>;
  default_payment_method: string | null;
  deleted_at: Date | null;
  erased_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const CUSTOMER_COLUMNS: Columns<CustomerRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['email', 'text'],
  ['name', 'text'],
  ['phone', 'text'],
  ['metadata', 'jsonb'],
  ['default_payment_method', 'text'],
  ['deleted_at', 'timestamptz'],
  ['erased_at', 'timestamptz'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

export const toApiCustomer = (row: CustomerRow): Customer => ({
  id: row.id,
  object: 'customer',
  email: row.email,
  name: row.name,
  phone: row.phone,
  metadata: row.metadata ?? {},
  default_payment_method: row.default_payment_method,
  erased: row.erased_at !== null,
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

/** Stripe's metadata update: keys merge in, a key set to "" is removed. */
export function mergeMetadata(current: Record<string, string>, changes: Record<string, string> | undefined) {
  const merged = { ...current };
  for (const [key, value] of Object.entries(changes ?? {})) {
    if (value === '') delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

const missingCustomer = (id: string, param: string) =>
  new ApiError('invalid_request_error', 'resource_missing', `No such customer: '${safeEcho(id)}'`, param, 400);

/** Customers, and the cards saved for them (a card belongs to at most one customer). */
export class CustomerService {
  constructor(
    private readonly sql: Sql,
    private readonly now: Clock = systemClock,
    /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  async create(scope: Scope, body: CreateCustomerBody, requestId: string | null): Promise<Customer> {
    const now = this.now();
    const row: CustomerRow = {
      id: newId('cus', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      email: body?.email ?? null,
      name: body?.name ?? null,
      phone: body?.phone ?? null,
      metadata: body?.metadata ?? {},
      default_payment_method: null,
      deleted_at: null,
      erased_at: null,
      created_at: now,
      updated_at: now,
    };
    const customer = toApiCustomer(row);
    await inScope(this.sql, scope, async (tx) => {
      await insertRows(tx, 'customers', CUSTOMER_COLUMNS, [row]);
      await this.emit(tx, scope, 'customer.created', customer, requestId);
    });
    return customer;
  }

  async retrieve(scope: Scope, id: string): Promise<Customer> {
    return toApiCustomer(await scopedRead(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  /** For `expand[]`: a deleted customer is left out, so the payment that names it keeps the bare id. */
  async retrieveMany(scope: Scope, ids: string[]): Promise<Customer[]> {
    const rows = await scopedRead(this.sql, scope, (tx) => findManyOwned<CustomerRow>(tx, 'customers', scope, ids));
    return rows.filter((row) => row.deleted_at === null).map(toApiCustomer);
  }

  async list(scope: Scope, params: ListParams & { email?: string }) {
    return this.reads.page(scope, async (tx) => {
      const page = await listPage<CustomerRow>(tx, 'customers', scope, params, [
        tx`AND deleted_at IS NULL`,
        params.email !== undefined ? tx`AND email IS NOT NULL AND lower(email) = lower(${params.email})` : tx``,
      ]);
      return { data: page.rows.map(toApiCustomer), has_more: page.hasMore };
    });
  }

  async update(scope: Scope, id: string, body: UpdateCustomerBody, requestId: string | null): Promise<Customer> {
    return inScope(this.sql, scope, async (tx) => {
      const current = await this.find(tx, scope, id, true);
      const field = (value: string | undefined, was: string | null) =>
        value === undefined ? was : value === '' ? null : value;
      let defaultPaymentMethod = current.default_payment_method;
      if (body?.default_payment_method !== undefined) {
        defaultPaymentMethod = body.default_payment_method === '' ? null : body.default_payment_method;
        if (defaultPaymentMethod !== null) await this.requireAttached(tx, scope, defaultPaymentMethod, id);
      }
      const [row] = await tx<CustomerRow[]>`
        UPDATE customers SET
          email = ${field(body?.email, current.email)}, name = ${field(body?.name, current.name)},
          phone = ${field(body?.phone, current.phone)},
          metadata = ${tx.json(mergeMetadata(current.metadata, body?.metadata) as never)},
          default_payment_method = ${defaultPaymentMethod}, updated_at = ${this.now()}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        RETURNING *`;
      const customer = toApiCustomer(row);
      await this.emit(tx, scope, 'customer.updated', customer, requestId);
      return customer;
    });
  }

  /**
   * Deletes a customer. Its payments keep naming it, and its saved cards stay attached to it, so a
   * deleted customer's card can be charged by nobody.
   */
  async remove(scope: Scope, id: string, requestId: string | null) {
    return inScope(this.sql, scope, async (tx) => {
      const [row] = await tx<CustomerRow[]>`
        UPDATE customers SET deleted_at = ${this.now()}, updated_at = ${this.now()}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
        RETURNING *`;
      if (!row) throw ApiError.notFound('customer', id);
      await this.emit(tx, scope, 'customer.deleted', toApiCustomer(row), requestId);
      return { id, object: 'customer' as const, deleted: true as const };
    });
  }

  /** A customer a payment or card may name: of this tenant and mode, and not deleted. */
  async requireActive(tx: Tx, scope: Scope, id: string, param = 'customer'): Promise<void> {
    const [row] = await tx`
      SELECT 1 FROM customers
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL`;
    if (!row) throw missingCustomer(id, param);
  }

  checkActive(scope: Scope, id: string, param = 'customer'): Promise<void> {
    return inScope(this.sql, scope, (tx) => this.requireActive(tx, scope, id, param));
  }

  async attach(scope: Scope, paymentMethodId: string, customerId: string, requestId: string | null) {
    return inScope(this.sql, scope, async (tx) => {
      await this.requireActive(tx, scope, customerId);
      const method = await this.lockPaymentMethod(tx, scope, paymentMethodId);
      if (method.customer === customerId) return toApiPaymentMethod(method);
      if (method.customer !== null)
        throw ApiError.invalid(
          'payment_method_already_attached',
          'This payment method is attached to another customer: detach it first.',
          'customer',
        );
      const [row] = await tx<PaymentMethodRow[]>`
        UPDATE payment_methods SET customer = ${customerId} WHERE id = ${paymentMethodId} RETURNING *`;
      const attached = toApiPaymentMethod(row);
      await this.emit(tx, scope, 'payment_method.attached', attached, requestId);
      return attached;
    });
  }

  async detach(scope: Scope, paymentMethodId: string, requestId: string | null): Promise<PaymentMethod> {
    return inScope(this.sql, scope, async (tx) => {
      const method = await this.lockPaymentMethod(tx, scope, paymentMethodId);
      if (method.customer === null)
        throw ApiError.invalid(
          'payment_method_unattached',
          'This payment method is not attached to a customer.',
          'payment_method',
        );
      const [row] = await tx<PaymentMethodRow[]>`
        UPDATE payment_methods SET customer = NULL WHERE id = ${paymentMethodId} RETURNING *`;
      await tx`
        UPDATE customers SET default_payment_method = NULL, updated_at = ${this.now()}
        WHERE id = ${method.customer} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
          AND default_payment_method = ${paymentMethodId}`;
      const detached = toApiPaymentMethod(row);
      await this.emit(tx, scope, 'payment_method.detached', detached, requestId);
      return detached;
    });
  }

  async paymentMethods(scope: Scope, customerId: string, params: ListParams) {
    return inPageScope(this.sql, scope, async (tx) => {
      await this.find(tx, scope, customerId);
      const page = await listPage<PaymentMethodRow>(tx, 'payment_methods', scope, params, [
        tx`AND customer = ${customerId}`,
      ]);
      return { data: page.rows.map(toApiPaymentMethod), has_more: page.hasMore };
    });
  }

  /**
   * Pseudonymises a customer's personal data wherever it is stored: the customer, its payments
   * (description and metadata), their refunds' metadata and disputes' evidence, and the events
   * that carried any of them. Amounts, currencies, statuses and the ledger are not touched.
   */
  async erase(scope: Scope, id: string, context: AuditContext): Promise<Customer> {
    return inScope(this.sql, scope, async (tx) => {
      const [current] = await tx<CustomerRow[]>`
        SELECT * FROM customers WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        FOR UPDATE`;
      if (!current) throw ApiError.notFound('customer', id);
      const customer = toApiCustomer(await erasePersonalData(tx, scope, current));
      await this.emit(tx, scope, 'customer.updated', customer, context.requestId);
      await recordAudit(tx, {
        scope,
        context,
        action: 'customer.erased',
        target: { type: 'customer', id },
        after: customer,
      });
      return customer;
    });
  }

  private async find(tx: Tx, scope: Scope, id: string, lock = false): Promise<CustomerRow> {
    const [row] = await tx<CustomerRow[]>`
      SELECT * FROM customers
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
      ${lock ? tx`FOR UPDATE` : tx``}`;
    if (!row) throw ApiError.notFound('customer', id);
    return row;
  }

  private async lockPaymentMethod(tx: Tx, scope: Scope, id: string): Promise<PaymentMethodRow> {
    const [row] = await tx<PaymentMethodRow[]>`
      SELECT * FROM payment_methods
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} FOR UPDATE`;
    if (!row) throw ApiError.notFound('payment_method', id);
    return row;
  }

  private async requireAttached(tx: Tx, scope: Scope, paymentMethodId: string, customerId: string) {
    const [row] = await tx`
      SELECT 1 FROM payment_methods
      WHERE id = ${paymentMethodId} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        AND customer = ${customerId}`;
    if (!row)
      throw ApiError.invalid(
        'payment_method_not_attached',
        `The payment method ${safeEcho(paymentMethodId)} is not attached to this customer: attach it first.`,
        'default_payment_method',
      );
  }

  private async emit(tx: Tx, scope: Scope, type: EventType, object: { id: string }, requestId: string | null) {
    await insertRows(tx, 'events', EVENT_COLUMNS, [newEvent(scope, type, object, requestId, this.now())]);
  }
}
