import { SignJWT, jwtVerify } from 'jose';
import { inPageScope, inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { listPage } from '../../db/list.js';
import { insertRows } from '../../db/unnest.js';
import type { ClientSecrets } from '../../http/client-secret.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import type { ApiKeyService } from '../api-keys/service.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import type { PaymentService } from '../payments/service.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import type { Payment } from '../payments/schemas.js';
import {
  DEFAULT_EXPIRY_SECONDS,
  type CheckoutSession,
  type CheckoutSessionListQuery,
  type CreateCheckoutSessionBody,
} from './schemas.js';

interface SessionRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  status: 'open' | 'complete' | 'expired';
  payment_id: string;
  amount: string;
  currency: string;
  customer: string | null;
  success_url: string;
  cancel_url: string;
  metadata: Record<string, string>;
  expires_at: Date;
  completed_at: Date | null;
  created_at: Date;
}

const seconds = (date: Date) => Math.floor(new Date(date).getTime() / 1000);

/** What the hosted page needs to take the payment. */
export interface CheckoutPage {
  session: CheckoutSession;
  publishableKey: string;
  clientSecret: string;
}

type SessionRef = { id: string; tenant_id: string; livemode: boolean };

/** Payment states a session can still be expired from: nothing is in flight with a processor. */
const CANCELABLE = ['requires_payment_method', 'requires_confirmation', 'requires_action'];

/**
 * Hosted checkout sessions. A session owns one payment, created with it through the payments module (which owns the
 * payment's state); the session completes once that payment has succeeded and expires (canceling the payment) after
 * its `expires_at`. Both transitions are compare-and-set on the session's status, each with its event in the same
 * transaction, so a page's completion, a retrieve and an expiry racing each other settle on one outcome, once.
 *
 * The page's URL carries a signed token naming the tenant, mode and session: the buyer has no key, and the
 * token lets the unauthenticated page find the session without a lookup across tenants.
 */
export class CheckoutService {
  private readonly key: Uint8Array;

  constructor(
    private readonly sql: Sql,
    private readonly payments: PaymentService,
    private readonly apiKeys: ApiKeyService,
    private readonly clientSecrets: ClientSecrets,
    secret: string,
    private readonly publicUrl: string,
    private readonly workerSql: Sql,
    private readonly now: () => number = Date.now,
  ) {
    this.key = new TextEncoder().encode(`checkout:${secret}`);
    payments.onSucceeded((scope, payment) => this.paymentSucceeded(scope, payment));
  }

  /**
   * A session's payment succeeded: the session completes now, with its event, whether or not the buyer's page reports
   * back. Failing (the database away, the process stopping), it is left to the worker's sweep (settleDue).
   */
  private paymentSucceeded(scope: Scope, payment: Payment): void {
    const id = payment.metadata.checkout_session;
    if (typeof id !== 'string' || !id.startsWith('cs_')) return;
    this.find(scope, id)
      .then((row) => (row.payment_id === payment.id ? this.settle(scope, row, null, payment) : row))
      .catch(() => {});
  }

  async create(scope: Scope, body: CreateCheckoutSessionBody, requestId: string | null): Promise<CheckoutSession> {
    const id = newId('cs');
    const payment = await this.payments.create(
      scope,
      {
        amount: body.amount,
        currency: body.currency,
        customer: body.customer,
        description: body.description,
        metadata: { checkout_session: id },
      },
      requestId,
    );
    // One reading of the clock for both: read twice, a second could tick between them and the session would last
    // a second less than asked (expires_at - created one short).
    const createdAt = this.now();
    const expiresAt = new Date(createdAt + (body.expires_in ?? DEFAULT_EXPIRY_SECONDS) * 1000);
    try {
      const row = await inScope(this.sql, scope, async (tx) => {
        const [inserted] = await tx<SessionRow[]>`
          INSERT INTO checkout_sessions (id, tenant_id, livemode, status, payment_id, amount, currency, customer,
            success_url, cancel_url, metadata, expires_at, created_at)
          VALUES (${id}, ${scope.tenantId}, ${scope.livemode}, 'open', ${payment.id}, ${payment.amount},
            ${payment.currency}, ${body.customer ?? null}, ${body.success_url}, ${body.cancel_url},
            ${tx.json(body.metadata ?? {})}, ${expiresAt}, ${new Date(createdAt)})
          RETURNING *`;
        return inserted;
      });
      return this.toApi(row);
    } catch (error) {
      // Without its session nobody can reach the payment: it is canceled rather than left waiting forever.
      await this.payments.cancel(scope, payment.id, { cancellation_reason: 'abandoned' }, requestId).catch(() => {});
      throw error;
    }
  }

  /** A session as it stands now: one whose payment succeeded is completed, one past its expiry expired. */
  async retrieve(scope: Scope, id: string, requestId: string | null): Promise<CheckoutSession> {
    return this.toApi(await this.settle(scope, await this.find(scope, id), requestId));
  }

  async list(scope: Scope, params: CheckoutSessionListQuery) {
    return inPageScope(this.sql, scope, async (tx) => {
      const page = await listPage<SessionRow>(
        tx,
        'checkout_sessions',
        scope,
        params,
        params.status ? [tx`AND status = ${params.status}`] : [],
      );
      return { data: await Promise.all(page.rows.map((row) => this.toApi(row))), has_more: page.hasMore };
    });
  }

  /** Expires an open session now (Stripe's "expire"): its payment is canceled and the page stops taking cards. */
  async expire(scope: Scope, id: string, requestId: string | null): Promise<CheckoutSession> {
    const row = await this.settle(scope, await this.find(scope, id), requestId);
    if (row.status !== 'open')
      throw ApiError.invalid(
        'checkout_session_not_open',
        `This checkout session is already ${row.status}: only an open session can be expired.`,
        'id',
      );
    return this.toApi(await this.expireNow(scope, row, requestId));
  }

  /**
   * The worker's sweep: settles open sessions nobody reads, those past their expiry and those whose payment succeeded
   * while neither the page nor the payment's own notice (paymentSucceeded) completed them, so each gets its event. It
   * looks at the payment of every open session; a session whose payment is in flight waits for the next pass.
   */
  async settleDue(limit = 100, items: ItemRunner = separately('checkout sessions')): Promise<number> {
    return this.settleSessions(
      await this.workerSql<SessionRef[]>`
        SELECT * FROM worker_checkout_sessions_to_settle(${new Date(this.now())}, ${limit + items.waiting})`,
      items,
    );
  }

  /** The worker's frequent pass: open sessions past their expiry only, found by an index range. */
  async settleExpired(limit = 100, items: ItemRunner = separately('checkout sessions')): Promise<number> {
    return this.settleSessions(
      await this.workerSql<SessionRef[]>`
        SELECT * FROM worker_checkout_sessions_expired(${new Date(this.now())}, ${limit + items.waiting})`,
      items,
    );
  }

  private settleSessions(due: SessionRef[], items: ItemRunner): Promise<number> {
    return items.each(
      due,
      (session) => session.id,
      async (session) => {
        const scope = { tenantId: session.tenant_id, livemode: session.livemode };
        const row = await this.settle(scope, await this.find(scope, session.id), null);
        return row.status !== 'open';
      },
    );
  }

  /** The hosted page's data for its URL's token; a session no longer open answers 404 (the page says so). */
  async page(token: string): Promise<CheckoutPage> {
    const { scope, id } = await this.verify(token);
    const row = await this.settle(scope, await this.find(scope, id), null);
    if (row.status !== 'open') throw pageGone(row.status);
    const [session, publishable] = await Promise.all([this.toApi(row), this.apiKeys.publishableKey(scope)]);
    return {
      session,
      publishableKey: publishable.key,
      clientSecret: this.clientSecrets.for(scope, row.payment_id),
    };
  }

  /**
   * Called by the page once payforward.js reports the payment succeeded. The payment's own status decides, never
   * the caller: an unpaid session stays open.
   */
  async completeFromPage(token: string): Promise<{ redirect_url: string }> {
    const { scope, id } = await this.verify(token);
    const row = await this.settle(scope, await this.find(scope, id), null);
    if (row.status === 'complete') return { redirect_url: row.success_url };
    if (row.status === 'expired') throw pageGone('expired');
    throw ApiError.invalid(
      'checkout_session_unpaid',
      'The payment of this checkout session has not succeeded yet.',
      null,
    );
  }

  private async verify(token: string): Promise<{ scope: Scope; id: string }> {
    try {
      const { payload } = await jwtVerify(token, this.key, { audience: 'payforward-checkout', algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.t !== 'string' || typeof payload.l !== 'boolean')
        throw new Error('malformed');
      return { scope: { tenantId: payload.t, livemode: payload.l }, id: payload.sub };
    } catch {
      throw pageGone('invalid');
    }
  }

  private async url(row: SessionRow): Promise<string> {
    const token = await new SignJWT({ t: row.tenant_id, l: row.livemode })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(row.id)
      .setAudience('payforward-checkout')
      .sign(this.key);
    return `${this.publicUrl}/checkout/${token}`;
  }

  private async find(scope: Scope, id: string): Promise<SessionRow> {
    const [row] = await inScope(
      this.sql,
      scope,
      (tx) => tx<SessionRow[]>`
        SELECT * FROM checkout_sessions WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`,
    );
    if (!row) throw ApiError.notFound('checkout session', id);
    return row;
  }

  private async settle(scope: Scope, row: SessionRow, requestId: string | null, known?: Payment): Promise<SessionRow> {
    if (row.status !== 'open') return row;
    const payment = known ?? (await this.payments.retrieve(scope, row.payment_id));
    if (payment.status === 'succeeded') return this.transition(scope, row, 'complete', requestId);
    if (this.now() >= new Date(row.expires_at).getTime() && CANCELABLE.includes(payment.status))
      return this.expireNow(scope, row, requestId, payment);
    return row;
  }

  private async expireNow(scope: Scope, row: SessionRow, requestId: string | null, known?: Payment) {
    const payment = known ?? (await this.payments.retrieve(scope, row.payment_id));
    if (payment.status === 'succeeded') return this.transition(scope, row, 'complete', requestId);
    if (!CANCELABLE.includes(payment.status))
      throw ApiError.invalid(
        'checkout_session_in_progress',
        `The session's payment is ${payment.status}; it cannot be expired now.`,
        'id',
      );
    try {
      await this.payments.cancel(scope, row.payment_id, { cancellation_reason: 'abandoned' }, requestId);
    } catch (error) {
      // The buyer paid in the meantime: the session completes instead.
      const now = await this.payments.retrieve(scope, row.payment_id);
      if (now.status === 'succeeded') return this.transition(scope, row, 'complete', requestId);
      throw error;
    }
    return this.transition(scope, row, 'expired', requestId);
  }

  private async transition(
    scope: Scope,
    row: SessionRow,
    status: 'complete' | 'expired',
    requestId: string | null,
  ): Promise<SessionRow> {
    return inScope(this.sql, scope, async (tx: Tx) => {
      const at = new Date(this.now());
      const [updated] = await tx<SessionRow[]>`
        UPDATE checkout_sessions SET status = ${status},
          completed_at = ${status === 'complete' ? at : null}, expired_at = ${status === 'expired' ? at : null}
        WHERE id = ${row.id} AND status = 'open' RETURNING *`;
      // Someone else settled it first: their outcome stands, and their event is the only one.
      if (!updated) {
        const [current] = await tx<SessionRow[]>`SELECT * FROM checkout_sessions WHERE id = ${row.id}`;
        return current;
      }
      const type = status === 'complete' ? 'checkout.session.completed' : 'checkout.session.expired';
      await insertRows(tx, 'events', EVENT_COLUMNS, [newEvent(scope, type, await this.toApi(updated), requestId)]);
      return updated;
    });
  }

  private async toApi(row: SessionRow): Promise<CheckoutSession> {
    return {
      id: row.id,
      object: 'checkout.session',
      status: row.status,
      payment_status: row.status === 'complete' ? 'paid' : 'unpaid',
      url: row.status === 'open' ? await this.url(row) : null,
      payment: row.payment_id,
      amount: Number(row.amount),
      currency: row.currency,
      customer: row.customer,
      success_url: row.success_url,
      cancel_url: row.cancel_url,
      metadata: row.metadata,
      expires_at: seconds(row.expires_at),
      completed_at: row.completed_at ? seconds(row.completed_at) : null,
      created: seconds(row.created_at),
      livemode: row.livemode,
    };
  }
}

const pageGone = (status: string) =>
  new ApiError(
    'invalid_request_error',
    'resource_missing',
    status === 'invalid'
      ? 'This checkout link is invalid.'
      : `This checkout session is ${status === 'complete' ? 'already paid' : 'expired'}.`,
    null,
    404,
  );
