import { randomBytes } from 'node:crypto';
import { recordAudit, type AuditAction, type AuditContext } from '../audit/record.js';
import { inPageScope, inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { findOwned, listPage, type ListParams } from '../../db/list.js';
import { insertRows } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { idRangeFrom, idRangeUntil, newId } from '../../lib/ids.js';
import { unixSeconds } from '../../lib/time.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import type { CardVault } from '../vault/vault.js';
import { eventPatternRefusal } from './event-filter.js';
import type {
  CreateWebhookEndpointBody,
  ReplayBody,
  UpdateWebhookEndpointBody,
  WebhookDelivery,
  WebhookEndpoint,
} from './schemas.js';
import { resolveAllowed, RefusedAddress, type Cidr, type Resolver } from './ssrf.js';

interface EndpointRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  url: string;
  description: string | null;
  enabled_events: string[];
  metadata: Record<string, string>;
  status: 'enabled' | 'disabled';
  disabled_reason: string | null;
  failing_since: Date | null;
  created_at: Date;
}

interface DeliveryRow {
  id: string;
  livemode: boolean;
  event_id: string;
  endpoint_id: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: Date;
  created_at: Date;
}

interface AttemptRow {
  id: string;
  delivery_id: string;
  outcome: 'succeeded' | 'failed';
  status_code: number | null;
  latency_ms: number;
  response_body: string | null;
  error: string | null;
  attempted_at: Date;
}

export interface SealedSecretRow {
  id: string;
  endpoint_id: string;
  kek_id: string;
  wrapped_dek: Buffer;
  secret_ciphertext: Buffer;
}

export type DisabledReason = 'disabled_by_user' | 'gone' | 'failing';

export interface WebhookSettings {
  allowPrivate: readonly Cidr[];
  rotationGraceSeconds: number;
  resolver: Resolver;
}

const toApiEndpoint = (row: EndpointRow): WebhookEndpoint => ({
  id: row.id,
  object: 'webhook_endpoint',
  url: row.url,
  description: row.description,
  enabled_events: row.enabled_events,
  metadata: row.metadata ?? {},
  status: row.status,
  disabled_reason: row.disabled_reason,
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

/** Standard Webhooks secret: `whsec_` and the base64 of the HMAC key (32 random bytes). */
const newSecret = () => 'whsec_' + randomBytes(32).toString('base64');

/**
 * The tenant's webhook endpoints, their signing secrets and the delivery log. Deliveries are made
 * by the worker (src/workers/webhook-delivery.ts); this service is what the API and the worker
 * share: URL checks, sealed secrets, and disabling an endpoint with its event.
 */
export class WebhookService {
  constructor(
    private readonly sql: Sql,
    private readonly vault: CardVault,
    readonly settings: WebhookSettings,
  ) {}

  /** Registration-time URL rules; the worker checks the resolved address again at every delivery. */
  private async checkUrl(url: string, livemode: boolean): Promise<string> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw ApiError.invalid('url_invalid', 'The url is not a valid absolute URL.', 'url');
    }
    const schemes = livemode ? ['https:'] : ['https:', 'http:'];
    if (!schemes.includes(parsed.protocol))
      throw ApiError.invalid(
        'url_invalid',
        livemode ? 'Live-mode endpoints must use https.' : 'The url must use https (or http in test mode).',
        'url',
      );
    if (parsed.username || parsed.password)
      throw ApiError.invalid('url_invalid', 'The url must not carry credentials.', 'url');
    try {
      await resolveAllowed(parsed.hostname, this.settings.allowPrivate, this.settings.resolver);
    } catch (error) {
      const reason = error instanceof RefusedAddress ? error.message : `${parsed.hostname} does not resolve`;
      throw ApiError.invalid('url_not_allowed', `Webhooks cannot be sent there: ${reason}.`, 'url');
    }
    return parsed.toString();
  }

  private checkEvents(patterns: string[]): string[] {
    for (const pattern of patterns) {
      const refusal = eventPatternRefusal(pattern);
      if (refusal) throw ApiError.invalid('event_type_invalid', refusal, 'enabled_events');
    }
    return [...new Set(patterns)];
  }

  private async addSecret(tx: Tx, scope: Scope, endpointId: string): Promise<string> {
    const secret = newSecret();
    const id = newId('whsec');
    const sealed = this.vault.sealRecord(secret, id);
    await tx`
      INSERT INTO webhook_endpoint_secrets (id, tenant_id, livemode, endpoint_id, kek_id, wrapped_dek, secret_ciphertext)
      VALUES (${id}, ${scope.tenantId}, ${scope.livemode}, ${endpointId}, ${sealed.kekId}, ${sealed.wrappedDek},
        ${sealed.ciphertext})`;
    return secret;
  }

  async create(scope: Scope, body: CreateWebhookEndpointBody, context: AuditContext): Promise<WebhookEndpoint> {
    const url = await this.checkUrl(body.url, scope.livemode);
    const events = this.checkEvents(body.enabled_events);
    const id = newId('we');
    return inScope(this.sql, scope, async (tx) => {
      const [row] = await tx<EndpointRow[]>`
        INSERT INTO webhook_endpoints (id, tenant_id, livemode, url, description, enabled_events, metadata, status)
        VALUES (${id}, ${scope.tenantId}, ${scope.livemode}, ${url}, ${body.description ?? null}, ${events},
          ${tx.json(body.metadata ?? {})}, 'enabled')
        RETURNING *`;
      const secret = await this.addSecret(tx, scope, id);
      await this.audit(tx, scope, context, 'webhook_endpoint.created', null, row);
      return { ...toApiEndpoint(row), secret };
    });
  }

  private async audit(
    tx: Tx,
    scope: Scope,
    context: AuditContext,
    action: AuditAction,
    before: EndpointRow | null,
    after: EndpointRow | null,
  ) {
    const id = (after ?? before)!.id;
    await recordAudit(tx, {
      scope,
      context,
      action,
      target: { type: 'webhook_endpoint', id },
      before: before && toApiEndpoint(before),
      after: after && toApiEndpoint(after),
    });
  }

  private async find(tx: Tx, scope: Scope, id: string, lock = false): Promise<EndpointRow> {
    const [row] = await tx<EndpointRow[]>`
      SELECT * FROM webhook_endpoints
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
      ${lock ? tx`FOR UPDATE` : tx``}`;
    if (!row) throw ApiError.notFound('webhook_endpoint', id);
    return row;
  }

  async retrieve(scope: Scope, id: string): Promise<WebhookEndpoint> {
    return toApiEndpoint(await inScope(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  async list(scope: Scope, params: ListParams) {
    return inScope(this.sql, scope, async (tx) => {
      const page = await listPage<EndpointRow>(tx, 'webhook_endpoints', scope, params, [tx`AND deleted_at IS NULL`]);
      return { data: page.rows.map(toApiEndpoint), has_more: page.hasMore };
    });
  }

  async update(
    scope: Scope,
    id: string,
    body: UpdateWebhookEndpointBody,
    context: AuditContext,
  ): Promise<WebhookEndpoint> {
    const url = body?.url !== undefined ? await this.checkUrl(body.url, scope.livemode) : undefined;
    const events = body?.enabled_events ? this.checkEvents(body.enabled_events) : undefined;
    return inScope(this.sql, scope, async (tx) => {
      const row = await this.find(tx, scope, id, true);
      const disabled = body?.disabled;
      const [updated] = await tx<EndpointRow[]>`
        UPDATE webhook_endpoints SET
          url = ${url ?? row.url},
          enabled_events = ${events ?? row.enabled_events},
          description = ${body?.description !== undefined ? body.description : row.description},
          metadata = ${tx.json({ ...row.metadata, ...(body?.metadata ?? {}) })},
          status = ${disabled === undefined ? row.status : disabled ? 'disabled' : 'enabled'},
          disabled_reason = ${disabled === undefined ? row.disabled_reason : disabled ? 'disabled_by_user' : null},
          failing_since = ${disabled === false ? null : row.failing_since},
          updated_at = now()
        WHERE id = ${id}
        RETURNING *`;
      await this.audit(tx, scope, context, 'webhook_endpoint.updated', row, updated);
      return toApiEndpoint(updated);
    });
  }

  async remove(scope: Scope, id: string, context: AuditContext) {
    return inScope(this.sql, scope, async (tx) => {
      const [deleted] = await tx<EndpointRow[]>`
        UPDATE webhook_endpoints SET deleted_at = now(), status = 'disabled', updated_at = now()
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND deleted_at IS NULL
        RETURNING *`;
      if (!deleted) throw ApiError.notFound('webhook_endpoint', id);
      // Nothing more goes to a deleted endpoint; its log stays readable.
      await tx`UPDATE webhook_deliveries SET status = 'failed', updated_at = now()
        WHERE endpoint_id = ${id} AND status = 'pending'`;
      await this.audit(tx, scope, context, 'webhook_endpoint.deleted', deleted, null);
      return { id, object: 'webhook_endpoint' as const, deleted: true as const };
    });
  }

  /** A new secret; the current ones keep signing until `expiresIn` seconds from now. */
  async rotateSecret(scope: Scope, id: string, context: AuditContext, expiresIn?: number): Promise<WebhookEndpoint> {
    const grace = expiresIn ?? this.settings.rotationGraceSeconds;
    return inScope(this.sql, scope, async (tx) => {
      const row = await this.find(tx, scope, id, true);
      await tx`
        UPDATE webhook_endpoint_secrets SET expires_at = now() + ${grace} * interval '1 second'
        WHERE endpoint_id = ${id} AND (expires_at IS NULL OR expires_at > now() + ${grace} * interval '1 second')`;
      const secret = await this.addSecret(tx, scope, id);
      await this.audit(tx, scope, context, 'webhook_endpoint.secret_rotated', null, row);
      return { ...toApiEndpoint(row), secret };
    });
  }

  /** The signing secrets in the clear, by secret id: for the worker only. */
  openSecrets(rows: SealedSecretRow[]): Map<string, string> {
    return new Map(
      rows.map((row) => [
        row.id,
        this.vault.openRecord(
          { kekId: row.kek_id, wrappedDek: row.wrapped_dek, ciphertext: row.secret_ciphertext },
          row.id,
        ),
      ]),
    );
  }

  /**
   * Sends a `webhook_endpoint.test` event to this endpoint alone: the event is written with its one delivery, and
   * the fan-out never queues an event of that type (migration 047), so no other endpoint receives it.
   */
  async sendTest(scope: Scope, id: string, requestId: string | null): Promise<WebhookDelivery> {
    return inScope(this.sql, scope, async (tx) => {
      const row = await this.find(tx, scope, id);
      const event = newEvent(scope, 'webhook_endpoint.test', toApiEndpoint(row), requestId);
      await tx`
        INSERT INTO events (id, tenant_id, livemode, type, object_id, data, request_id, api_version, created_at)
        VALUES (${event.id}, ${event.tenant_id}, ${event.livemode}, ${event.type}, ${event.object_id},
          ${JSON.stringify(event.data)}::json, ${event.request_id}, ${event.api_version}, ${event.created_at})`;
      const [{ id: deliveryId }] = await tx<{ id: string }[]>`
        INSERT INTO webhook_deliveries (id, tenant_id, livemode, event_id, endpoint_id, status, next_attempt_at,
          event_created_at)
        VALUES (webhook_delivery_id(${event.id}, ${id}), ${scope.tenantId}, ${scope.livemode}, ${event.id}, ${id},
          'pending', now(), ${event.created_at})
        RETURNING id`;
      const [delivery] = await this.deliveries(tx, tx`id = ${deliveryId}`);
      return delivery;
    });
  }

  /** Disables an enabled endpoint and writes `webhook_endpoint.disabled` (compare-and-set: once). */
  async disable(scope: Scope, id: string, reason: DisabledReason): Promise<boolean> {
    return inScope(this.sql, scope, async (tx) => {
      const [row] = await tx<EndpointRow[]>`
        UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = ${reason}, updated_at = now()
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND status = 'enabled'
          AND deleted_at IS NULL
        RETURNING *`;
      if (!row) return false;
      await insertRows(tx, 'events', EVENT_COLUMNS, [
        newEvent(scope, 'webhook_endpoint.disabled', toApiEndpoint(row), null),
      ]);
      return true;
    });
  }

  private async deliveries(tx: Tx, where: ReturnType<Tx>): Promise<WebhookDelivery[]> {
    const rows = await tx<DeliveryRow[]>`SELECT * FROM webhook_deliveries WHERE ${where} ORDER BY id DESC`;
    return this.withAttempts(tx, rows);
  }

  private async withAttempts(tx: Tx, rows: DeliveryRow[]): Promise<WebhookDelivery[]> {
    const attempts = rows.length
      ? await tx<AttemptRow[]>`
          SELECT * FROM webhook_delivery_attempts WHERE delivery_id = ANY (${rows.map((r) => r.id)}) ORDER BY id`
      : [];
    return rows.map((row) => ({
      id: row.id,
      object: 'webhook_delivery',
      event: row.event_id,
      webhook_endpoint: row.endpoint_id,
      status: row.status,
      attempt_count: row.attempts,
      next_attempt: row.status === 'pending' ? unixSeconds(row.next_attempt_at) : null,
      attempts: attempts
        .filter((a) => a.delivery_id === row.id)
        .map((a) => ({
          id: a.id,
          created: unixSeconds(a.attempted_at),
          outcome: a.outcome,
          status_code: a.status_code,
          latency_ms: a.latency_ms,
          response_body: a.response_body,
          error: a.error,
        })),
      created: unixSeconds(row.created_at),
      livemode: row.livemode,
    }));
  }

  async endpointDeliveries(scope: Scope, id: string, params: ListParams) {
    return inPageScope(this.sql, scope, async (tx) => {
      await this.find(tx, scope, id);
      const page = await listPage<DeliveryRow>(tx, 'webhook_deliveries', scope, params, [tx`AND endpoint_id = ${id}`]);
      return { data: await this.withAttempts(tx, page.rows), has_more: page.hasMore };
    });
  }

  async eventDeliveries(scope: Scope, eventId: string) {
    return inScope(this.sql, scope, async (tx) => {
      await findOwned(tx, 'events', scope, eventId, 'event');
      return { data: await this.deliveries(tx, tx`event_id = ${eventId}`), has_more: false };
    });
  }

  /** Sends an event again to every endpoint it went to (still enabled), as a fresh series of attempts. */
  async redeliver(scope: Scope, eventId: string) {
    return inScope(this.sql, scope, async (tx) => {
      await findOwned(tx, 'events', scope, eventId, 'event');
      await tx`
        UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), dispatch_until = NULL,
          dispatch_seq = dispatch_seq + 1,
          updated_at = now()
        FROM webhook_endpoints w
        WHERE d.event_id = ${eventId} AND w.id = d.endpoint_id AND w.status = 'enabled' AND w.deleted_at IS NULL`;
      return { data: await this.deliveries(tx, tx`event_id = ${eventId}`), has_more: false };
    });
  }

  /**
   * Schedules the endpoint's events of a time range again: the deliveries it has (or only those
   * that gave up), and, unless only failed ones are asked for, the matching events it never had a
   * delivery for (created before it subscribed, or while it was disabled).
   */
  async replay(scope: Scope, id: string, body: ReplayBody) {
    return inScope(this.sql, scope, async (tx) => {
      const endpoint = await this.find(tx, scope, id);
      if (endpoint.status !== 'enabled')
        throw ApiError.invalid('webhook_endpoint_disabled', 'Enable the endpoint before replaying to it.');
      const since = tx`to_timestamp(${body.since}::bigint)`;
      const until = body.until !== undefined ? tx`to_timestamp(${body.until}::bigint)` : tx`now()`;
      // Event ids begin with their creation time: the range is an id range too, so neither statement walks the
      // endpoint's or the tenant's whole history. An hour's margin either side; the times decide.
      const ids = (column: string) =>
        tx`AND ${tx(column)} >= ${idRangeFrom('evt', new Date(body.since * 1000))} ${
          body.until !== undefined ? tx`AND ${tx(column)} < ${idRangeUntil('evt', new Date(body.until * 1000))}` : tx``
        }`;
      const again = await tx`
        UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), dispatch_until = NULL,
          dispatch_seq = dispatch_seq + 1,
          updated_at = now()
        WHERE endpoint_id = ${id} AND event_created_at >= ${since} AND event_created_at < ${until} ${ids('event_id')}
          AND ${body.only_failed ? tx`status = 'failed'` : tx`status <> 'pending'`}`;
      const added = body.only_failed
        ? { count: 0 }
        : await tx`
            INSERT INTO webhook_deliveries (id, tenant_id, livemode, event_id, endpoint_id, status, next_attempt_at,
              event_created_at)
            SELECT webhook_delivery_id(e.id, ${id}), e.tenant_id, e.livemode, e.id,
              ${id}, 'pending', now(), e.created_at
            FROM events e
            WHERE e.tenant_id = ${scope.tenantId} AND e.livemode = ${scope.livemode}
              AND e.created_at >= ${since} AND e.created_at < ${until} ${ids('id')}
              AND webhook_event_matches(${endpoint.enabled_events}, e.type) AND e.type <> 'webhook_endpoint.test'
            ON CONFLICT (endpoint_id, event_id) DO NOTHING`;
      return { object: 'webhook_replay' as const, webhook_endpoint: id, scheduled: again.count + added.count };
    });
  }
}
