import type { FastifyBaseLogger } from 'fastify';
import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { PLATFORM_AUDIT_SCOPE, PLATFORM_CHAIN, recordAudit, type AuditAction } from '../audit/record.js';

/** Who did it, from where: what PCI DSS 10.2 asks of each entry. */
export interface RequestContext {
  actor: { type: 'user' | 'api_key' | 'operator' | 'anonymous'; id: string | null };
  ip: string;
  userAgent: string | null;
  requestId: string;
  log: Pick<FastifyBaseLogger, 'info'>;
}

/**
 * The scope of a transaction on a team's users: both modes of its tenant (a user belongs to the tenant, not a mode),
 * so the audit entry of a change (in live mode, below) joins its chain in the same transaction.
 */
export const teamScope = (tenantId: string) => [
  { tenantId, livemode: false },
  { tenantId, livemode: true },
];

interface Target {
  tenantId: string;
  userId: string;
}

/** A team's entries join its tenant's chain (in live mode, as tenant settings); operator staff, the platform's. */
const chainOf = (tenantId: string | undefined): Scope =>
  !tenantId || tenantId === PLATFORM_CHAIN ? PLATFORM_AUDIT_SCOPE : { tenantId, livemode: true };

/**
 * The security actions of the users module, one method each, called in the transaction of the change where there is
 * one (`tx`, scoped to both modes of the user's tenant): each writes an audit entry (and a log line, never a secret).
 * A refused sign-in changes nothing, so its entry is written in a transaction of its own.
 */
export class SecurityEvents {
  constructor(private readonly sql: Sql) {}

  private async emit(
    tx: Tx | undefined,
    action: AuditAction,
    context: RequestContext,
    target: Partial<Target>,
    details: { before?: object; after?: object } = {},
  ) {
    const { log, ...who } = context;
    log.info({ security_event: action, ...who, target, ...details }, `security event ${action}`);
    const scope = chainOf(target.tenantId);
    const write = (t: Tx) =>
      recordAudit(t, {
        scope,
        context: {
          actor: {
            type: context.actor.type === 'anonymous' ? 'user' : context.actor.type,
            id: context.actor.id ?? 'anonymous',
            ip: context.ip,
            user_agent: context.userAgent,
          },
          requestId: context.requestId,
        },
        action,
        target: { type: 'user', id: target.userId ?? 'unknown' },
        before: details.before ?? null,
        after: details.after ?? null,
      });
    if (tx) await write(tx);
    else await inScope(this.sql, scope, write);
  }

  async loginSucceeded(tx: Tx | undefined, context: RequestContext, target: Target, method: string) {
    await this.emit(tx, 'user.login_succeeded', context, target, { after: { method } });
  }

  async loginFailed(tx: Tx | undefined, context: RequestContext, target: Partial<Target>, reason: string) {
    await this.emit(tx, 'user.login_failed', context, target, { after: { reason } });
  }

  async mfaEnrolled(tx: Tx | undefined, context: RequestContext, target: Target, method: 'totp' | 'passkey') {
    await this.emit(tx, 'user.mfa_enrolled', context, target, { after: { method } });
  }

  async mfaFailed(tx: Tx | undefined, context: RequestContext, target: Target, method: string) {
    await this.emit(tx, 'user.mfa_failed', context, target, { after: { method } });
  }

  async lockedOut(tx: Tx | undefined, context: RequestContext, target: Target, until: Date) {
    await this.emit(tx, 'user.locked_out', context, target, { after: { locked_until: until.toISOString() } });
  }

  async userInvited(tx: Tx | undefined, context: RequestContext, target: Target, role: string) {
    await this.emit(tx, 'user.invited', context, target, { after: { role } });
  }

  async invitationResent(
    tx: Tx | undefined,
    context: RequestContext,
    target: Target,
    before: Date | null,
    after: Date,
  ) {
    await this.emit(tx, 'user.invitation_resent', context, target, {
      before: { invitation_expires_at: before?.toISOString() ?? null },
      after: { invitation_expires_at: after.toISOString() },
    });
  }

  async roleChanged(tx: Tx | undefined, context: RequestContext, target: Target, before: string, after: string) {
    await this.emit(tx, 'user.role_changed', context, target, { before: { role: before }, after: { role: after } });
  }

  async userDeactivated(tx: Tx | undefined, context: RequestContext, target: Target) {
    await this.emit(tx, 'user.deactivated', context, target, { after: { status: 'deactivated' } });
  }

  async passwordChanged(tx: Tx | undefined, context: RequestContext, target: Target) {
    await this.emit(tx, 'user.password_changed', context, target, { after: { password: 'changed' } });
  }
}
