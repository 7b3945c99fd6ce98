import type { FastifyBaseLogger } from 'fastify';
import type { Tx } from '../../db/index.js';

/** Who did it, from where: what PCI DSS 10.2 asks of each entry. */
export interface RequestContext {
  actor: { type: 'user' | 'api_key' | 'operator' | 'anonymous'; id: string | null };
  ip: string;
  userAgent: string | null;
  requestId: string;
  log: Pick<FastifyBaseLogger, 'info'>;
}

interface Target {
  tenantId: string;
  userId: string;
}

/**
 * The security actions of the users module, one method each, called in the transaction of the change
 * where there is one (`tx`). Today each writes a structured log line (never a secret); the audit
 * trail hooks in here, one line per method.
 */
export class SecurityEvents {
  private emit(action: string, context: RequestContext, target: Partial<Target>, details: object = {}) {
    const { log, ...who } = context;
    log.info({ security_event: action, ...who, target, ...details }, `security event ${action}`);
  }

  async loginSucceeded(_tx: Tx | undefined, context: RequestContext, target: Target, method: string) {
    this.emit('user.login_succeeded', context, target, { method });
  }

  async loginFailed(_tx: Tx | undefined, context: RequestContext, target: Partial<Target>, reason: string) {
    this.emit('user.login_failed', context, target, { reason });
  }

  async mfaEnrolled(_tx: Tx | undefined, context: RequestContext, target: Target, method: 'totp' | 'passkey') {
    this.emit('user.mfa_enrolled', context, target, { method });
  }

  async mfaFailed(_tx: Tx | undefined, context: RequestContext, target: Target, method: string) {
    this.emit('user.mfa_failed', context, target, { method });
  }

  async lockedOut(_tx: Tx | undefined, context: RequestContext, target: Target, until: Date) {
    this.emit('user.locked_out', context, target, { locked_until: until.toISOString() });
  }

  async userInvited(_tx: Tx | undefined, context: RequestContext, target: Target, role: string) {
    this.emit('user.invited', context, target, { role });
  }

  async roleChanged(_tx: Tx | undefined, context: RequestContext, target: Target, before: string, after: string) {
    this.emit('user.role_changed', context, target, { before: { role: before }, after: { role: after } });
  }

  async userDeactivated(_tx: Tx | undefined, context: RequestContext, target: Target) {
    this.emit('user.deactivated', context, target);
  }

  async passwordChanged(_tx: Tx | undefined, context: RequestContext, target: Target) {
    this.emit('user.password_changed', context, target);
  }
}
