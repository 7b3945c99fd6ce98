import { userInfo } from 'node:os';
import type { Scope, Tx } from '../../db/index.js';
import { maskCardNumbers } from '../../http/logging.js';
import { newId } from '../../lib/ids.js';
import { insertRows, type Columns } from '../../db/unnest.js';

/** The platform's own chain (operator actions that belong to no tenant), as the idempotency layer names it. */
export const PLATFORM_CHAIN = '__platform__';
export const PLATFORM_AUDIT_SCOPE: Scope = { tenantId: PLATFORM_CHAIN, livemode: false };

/**
 * Every audited action and the only fields of its target that its entry may hold, before and after. Anything not
 * listed is dropped, so a secret, a card number or a hash can reach an entry only by being named here: review each
 * addition for that. Another module's action is added to this map with its fields.
 */
export const AUDITED_FIELDS = {
  'tenant.created': ['name', 'processors', 'settlement_schedule'],
  'tenant.renamed': ['name'],
  'tenant.routing_updated': ['processors'],
  'tenant.settlement_schedule_updated': ['settlement_schedule'],
  'tenant.api_version_updated': ['api_version'],
  'tenant.suspended': ['status', 'suspended_at', 'suspension_reason'],
  'tenant.reactivated': ['status', 'suspended_at', 'suspension_reason'],
  'pricing_plan.updated': ['version', 'plan'],
  'api_key.created': ['type', 'name', 'redacted', 'scopes', 'expires_at'],
  'api_key.rolled': ['rolled_to', 'expires_at'],
  'api_key.revoked': ['revoked'],
  'publishable_key.rolled': ['key', 'rolled_to', 'expires_at'],
  'bank_account.created': [
    'account_holder_name',
    'country',
    'currency',
    'routing_number',
    'last4',
    'status',
    'default_for_currency',
    'metadata',
  ],
  'bank_account.updated': ['default_for_currency', 'metadata'],
  'bank_account.verified': ['status'],
  'bank_account.verification_failed': ['status', 'attempts_left'],
  'bank_account.deleted': ['currency', 'last4', 'deleted'],
  'payout.created': ['amount', 'currency', 'destination', 'method', 'status'],
  'refund.created': ['amount', 'currency', 'payment', 'reason', 'status'],
  'dispute.updated': ['status', 'evidence', 'metadata'],
  'dispute.closed': ['status'],
  'vault.keys_rotated': ['active_kek', 'rotated', 'responses', 'unreadable'],
  'audit_log.exported': ['format', 'filters', 'tenant', 'livemode'],
  'webhook_endpoint.created': ['url', 'enabled_events', 'description', 'metadata', 'status'],
  'webhook_endpoint.updated': ['url', 'enabled_events', 'description', 'metadata', 'status', 'disabled_reason'],
  'webhook_endpoint.deleted': ['url', 'enabled_events'],
  'webhook_endpoint.secret_rotated': ['url'],
  'fraud_rule.created': ['name', 'expression', 'action', 'priority', 'enabled', 'shadow'],
  'fraud_rule.updated': ['name', 'expression', 'action', 'priority', 'enabled', 'shadow'],
  'fraud_rule.deleted': ['name', 'expression', 'action'],
  'fraud_list.created': ['name', 'item_type', 'kind'],
  'fraud_list.deleted': ['name', 'item_type', 'kind'],
  'fraud_list_item.added': ['list', 'value'],
  'fraud_list_item.removed': ['list', 'value'],
  'customer.erased': ['erased'],
  'payment_method.card_data_erased': ['card_data_erased', 'retention_days'],
  'report.downloaded': ['type', 'format', 'parameters', 'row_count'],
  'case.filing_exported': ['status', 'kind', 'transactions'],
  'user.login_succeeded': ['method'],
  'user.login_failed': ['reason'],
  'user.mfa_enrolled': ['method'],
  'user.mfa_failed': ['method'],
  'user.locked_out': ['locked_until'],
  'user.invited': ['role'],
  'user.invitation_resent': ['invitation_expires_at'],
  'user.role_changed': ['role'],
  'user.deactivated': ['status'],
  'user.password_changed': ['password'],
} as const satisfies Record<string, readonly string[]>;

export type AuditAction = keyof typeof AUDITED_FIELDS;

/**
 * Who acted. An API key or an access token is named by its key's id, the operator by the credential it used, a
 * command-line run by the operating-system user that ran it.
 */
export interface AuditActor {
  type: 'api_key' | 'access_token' | 'operator' | 'user' | 'system';
  id: string;
  ip: string | null;
  user_agent: string | null;
}

/** Who is acting and in which request: built once per request (see http/audit-context.ts) and passed to services. */
export interface AuditContext {
  actor: AuditActor;
  requestId: string | null;
}

export interface AuditRecord {
  /** Whose chain the entry joins and the mode it is shown in; PLATFORM_AUDIT_SCOPE for the platform's own. */
  scope: Scope;
  context: AuditContext;
  action: AuditAction;
  target: { type: string; id: string };
  /** The target's state before and after, as API objects; only AUDITED_FIELDS[action] are kept. */
  before?: object | null;
  after?: object | null;
  /** When the entry says it happened (tests move it); the append order is the chain's sequence number. */
  at?: Date;
}

const MAX_TEXT = 512;

// Strings are cut and card-number-shaped runs masked: a field on the allow-list can still hold text a client typed.
function clean(value: unknown): unknown {
  if (typeof value === 'string') return maskCardNumbers(value.slice(0, MAX_TEXT));
  if (Array.isArray(value)) return value.map(clean);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clean(v)]));
  return value;
}

function allowed(action: AuditAction, state: object | null | undefined): Record<string, unknown> | null {
  if (!state) return null;
  const fields: readonly string[] = AUDITED_FIELDS[action];
  return Object.fromEntries(
    Object.entries(state)
      .filter(([field, value]) => fields.includes(field) && value !== undefined)
      .map(([field, value]) => [field, clean(value)]),
  );
}

/** Of an update's fields, only those that changed; a creation or removal keeps every allowed field. */
function changes(action: AuditAction, before: object | null | undefined, after: object | null | undefined) {
  const b = allowed(action, before);
  const a = allowed(action, after);
  if (!b || !a) return { before: b, after: a };
  const changed = Object.keys({ ...b, ...a }).filter((f) => JSON.stringify(b[f]) !== JSON.stringify(a[f]));
  const pick = (state: Record<string, unknown>) => Object.fromEntries(changed.map((f) => [f, state[f] ?? null]));
  return { before: pick(b), after: pick(a) };
}

/** The content an entry's hash covers, exactly as stored; audit:verify compares the columns beside it with this. */
export interface AuditContent {
  id: string;
  tenant_id: string;
  livemode: boolean;
  action: string;
  actor: AuditActor;
  target: { type: string; id: string };
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  request_id: string | null;
  created_at: string;
}

/**
 * Appends one entry to its chain, inside the caller's transaction, so that it commits (or not) with the change it
 * records. `tx` must be scoped to `record.scope` (inScope / scopedStatement). One INSERT: the database numbers and
 * links it (020_audit.sql), holding the chain's head row until the transaction ends, so call it last in the
 * transaction to keep that hold short.
 */
export async function recordAudit(tx: Tx, record: AuditRecord): Promise<string> {
  const entry = auditEntry(record);
  await insertRows(tx, 'audit_entries', AUDIT_ENTRY_COLUMNS, [entry]);
  return entry.id;
}

/** An audit_entries row as recordAudit inserts it; the database fills seq, prev_hash and hash. */
export interface AuditEntryRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  seq: number;
  action: string;
  actor_type: string;
  actor_id: string;
  target_type: string;
  target_id: string;
  request_id: string | null;
  content: string;
  prev_hash: Buffer;
  hash: Buffer;
  created_at: string;
}

export const AUDIT_ENTRY_COLUMNS: Columns<AuditEntryRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['seq', 'bigint'],
  ['action', 'text'],
  ['actor_type', 'text'],
  ['actor_id', 'text'],
  ['target_type', 'text'],
  ['target_id', 'text'],
  ['request_id', 'text'],
  ['content', 'text'],
  ['prev_hash', 'bytea'],
  ['hash', 'bytea'],
  ['created_at', 'timestamptz'],
];

const UNCHAINED = Buffer.alloc(0);

/**
 * The row of one entry, for a caller that inserts it within a larger statement (a CTE that writes the change it
 * records). Insert it last in the transaction, as recordAudit says, and only as part of the change it records.
 */
export function auditEntry(record: AuditRecord): AuditEntryRow {
  const { actor, requestId } = record.context;
  const content: AuditContent = {
    id: newId('aud'),
    tenant_id: record.scope.tenantId,
    livemode: record.scope.livemode,
    action: record.action,
    actor: {
      type: actor.type,
      id: actor.id,
      ip: actor.ip,
      user_agent: actor.user_agent === null ? null : maskCardNumbers(actor.user_agent.slice(0, MAX_TEXT)),
    },
    target: record.target,
    ...changes(record.action, record.before, record.after),
    request_id: requestId,
    created_at: (record.at ?? new Date()).toISOString(),
  };
  return {
    id: content.id,
    tenant_id: content.tenant_id,
    livemode: content.livemode,
    seq: 0,
    action: content.action,
    actor_type: content.actor.type,
    actor_id: content.actor.id,
    target_type: content.target.type,
    target_id: content.target.id,
    request_id: content.request_id,
    content: JSON.stringify(content),
    prev_hash: UNCHAINED,
    hash: UNCHAINED,
    created_at: content.created_at,
  };
}

/** `recordAudit` in the shape the services call it: the target by its type and id, its API object before and after. */
export function auditChange(
  tx: Tx,
  scope: Scope,
  context: AuditContext,
  action: AuditAction,
  type: string,
  id: string,
  before: object | null,
  after: object | null,
): Promise<string> {
  return recordAudit(tx, { scope, context, action, target: { type, id }, before, after });
}

/** The actor of work no request asked for: a command-line run or a start-up step, named by what it is. */
export function systemContext(name: string): AuditContext {
  return { actor: { type: 'system', id: name, ip: null, user_agent: null }, requestId: null };
}

/** An operator running a command (`rotate-keys`) on a server: named by the operating-system user that ran it. */
export function commandLineContext(command: string): AuditContext {
  return {
    actor: { type: 'operator', id: `cli:${userInfo().username}`, ip: null, user_agent: `payforward ${command}` },
    requestId: null,
  };
}
