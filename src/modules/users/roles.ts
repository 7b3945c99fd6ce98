import { SCOPES } from '../api-keys/service.js';

/**
 * The one permission model: a team member's role is a set of the scopes API keys carry, and every
 * route checks a session exactly as it checks a key. Rules name resources (the part of a scope
 * before the colon), so a scope added to SCOPES later lands in the roles its resource names, and a
 * resource no rule names is readable by the roles that read "everything else" and writable by
 * owner and admin only.
 */
export const TENANT_ROLES = ['owner', 'admin', 'developer', 'analyst', 'compliance', 'support', 'view_only'] as const;
export const OPERATOR_ROLES = ['operator_admin', 'operator_support'] as const;
export const ROLES = [...TENANT_ROLES, ...OPERATOR_ROLES] as const;
export type TenantRole = (typeof TENANT_ROLES)[number];
export type OperatorRole = (typeof OPERATOR_ROLES)[number];
export type Role = (typeof ROLES)[number];

/** Resources a rule grants: every one, every one but those listed, or just those listed. */
type Resources = 'all' | { except: readonly string[] } | readonly string[];

interface RoleRule {
  read: Resources;
  write: Resources;
}

/** Who is on the team and what each may do: only owners and admins see or change it. */
const TEAM = ['users'];
/** Credentials that act for the tenant (keys, webhook signing secrets). */
const CREDENTIALS = ['api_keys', 'webhook_endpoints'];
/** The compliance function's own records. */
const COMPLIANCE_RECORDS = ['audit_logs', 'cases'];

const RULES: Record<TenantRole, RoleRule> = {
  owner: { read: 'all', write: 'all' },
  admin: { read: 'all', write: 'all' },
  // Builds the integration: payments and their objects, keys and webhooks; not the team, not compliance.
  developer: {
    read: { except: [...TEAM, ...COMPLIANCE_RECORDS] },
    write: ['payments', 'payment_methods', 'refunds', 'customers', ...CREDENTIALS],
  },
  // Reads the business and runs reports.
  analyst: { read: { except: [...TEAM, ...CREDENTIALS, ...COMPLIANCE_RECORDS] }, write: ['reports'] },
  // Reports, the audit log, cases and fraud rules (PCI DSS 10, AML case work).
  compliance: {
    read: { except: [...TEAM, ...CREDENTIALS] },
    write: ['reports', 'cases', 'fraud', 'fraud_rules', 'reviews'],
  },
  // Answers customers: looks payments up, refunds, responds to disputes.
  support: {
    read: ['payments', 'payment_methods', 'refunds', 'disputes', 'customers', 'events', 'balance'],
    write: ['refunds', 'disputes'],
  },
  view_only: { read: { except: [...TEAM, ...CREDENTIALS, ...COMPLIANCE_RECORDS] }, write: [] },
};

function grants(resources: Resources, resource: string): boolean {
  if (resources === 'all') return true;
  if ('except' in resources) return !resources.except.includes(resource);
  return resources.includes(resource);
}

/** The scopes a tenant role holds, from SCOPES as it stands (so new scopes are placed by resource). */
export function scopesOfRole(role: TenantRole, scopes: readonly string[] = SCOPES): string[] {
  const rule = RULES[role];
  return scopes.filter((scope) => {
    const [resource, access] = scope.split(':');
    return grants(access === 'read' ? rule.read : rule.write, resource);
  });
}

export const isTenantRole = (role: string): role is TenantRole => (TENANT_ROLES as readonly string[]).includes(role);
export const isOperatorRole = (role: string): role is OperatorRole =>
  (OPERATOR_ROLES as readonly string[]).includes(role);
