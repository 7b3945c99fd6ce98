import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { primaryReads, type Reads } from '../../db/replica.js';
import { createdRange, joinConditions, listPage, type ListParams } from '../../db/list.js';
import { ApiError } from '../../http/errors.js';
import type { Auth } from '../../http/auth.js';
import { PLATFORM_AUDIT_SCOPE, recordAudit, type AuditContent, type AuditContext } from './record.js';
import type { AuditLog, AuditLogExportQuery, AuditLogListQuery } from './schemas.js';

interface AuditEntryRow {
  id: string;
  seq: number;
  livemode: boolean;
  content: string;
  hash: Buffer;
  created_at: Date;
}

function toAuditLog(row: AuditEntryRow): AuditLog {
  const content = JSON.parse(row.content) as AuditContent;
  return {
    id: row.id,
    object: 'audit_log',
    action: content.action,
    actor: content.actor,
    target: content.target,
    changes: { before: content.before, after: content.after },
    request_id: content.request_id,
    sequence: row.seq,
    hash: row.hash.toString('hex'),
    created: Math.floor(row.created_at.getTime() / 1000),
    livemode: row.livemode,
  };
}

type Filters = Pick<AuditLogListQuery, 'actor' | 'action' | 'object'>;

const EXPORT_PAGE = 1000;

export class AuditService {
  /** The primary's: the log is read where it is written, never from a replica. */
  private readonly reads: Reads;

  constructor(private readonly sql: Sql) {
    this.reads = primaryReads(sql);
  }

  /**
   * Whose entries a caller reads: a tenant's key its own tenant and mode; the operator the platform's chain, or with
   * `tenant` any tenant's. `tenant` and `livemode` from a tenant's key are refused rather than ignored.
   */
  scopeFor(auth: Auth, query: { tenant?: string; livemode?: boolean }): Scope {
    if (auth.kind === 'platform')
      return query.tenant ? { tenantId: query.tenant, livemode: query.livemode ?? false } : PLATFORM_AUDIT_SCOPE;
    const param = query.tenant !== undefined ? 'tenant' : query.livemode !== undefined ? 'livemode' : undefined;
    if (param)
      throw ApiError.invalid(
        'parameter_unknown',
        `${param} is for the platform operator: a key reads its own tenant's entries in its own mode.`,
        param,
      );
    return { tenantId: auth.tenantId, livemode: auth.livemode };
  }

  private filters(tx: Tx, params: Filters) {
    const action = params.action;
    return [
      params.actor ? tx`AND actor_id = ${params.actor}` : tx``,
      action
        ? action.endsWith('.*')
          ? tx`AND starts_with(action, ${action.slice(0, -1)})`
          : tx`AND action = ${action}`
        : tx``,
      params.object ? tx`AND target_id = ${params.object}` : tx``,
    ];
  }

  async list(scope: Scope, params: ListParams & Filters) {
    // An actor's or an object's entries too are a walk of an index in list order (migration 053).
    return this.reads.page(scope, async (tx) => {
      const page = await listPage<AuditEntryRow>(tx, 'audit_entries', scope, params, this.filters(tx, params));
      return { data: page.rows.map(toAuditLog), has_more: page.hasMore };
    });
  }

  /**
   * The export is itself audited (a data export, in the chain it reads) before its first row is read; then the
   * entries, oldest first, a page per transaction, so a chain of any length streams in bounded memory.
   */
  async *export(scope: Scope, params: AuditLogExportQuery, context: AuditContext): AsyncGenerator<AuditLog> {
    const { tenant: _tenant, livemode: _livemode, ...filters } = params;
    await inScope(this.sql, scope, (tx) =>
      recordAudit(tx, {
        scope,
        context,
        action: 'audit_log.exported',
        target: { type: 'audit_log', id: scope.tenantId },
        after: { format: 'csv', filters, tenant: scope.tenantId, livemode: scope.livemode },
      }),
    );
    let after = '';
    for (;;) {
      const rows = await inScope(this.sql, scope, async (tx) => {
        const where = joinConditions(tx, [...createdRange(tx, params), ...this.filters(tx, filters)]);
        return tx<AuditEntryRow[]>`
          SELECT id, seq, livemode, content, hash, created_at FROM audit_entries
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND id > ${after} ${where}
          ORDER BY id LIMIT ${EXPORT_PAGE}`;
      });
      for (const row of rows) yield toAuditLog(row);
      if (rows.length < EXPORT_PAGE) return;
      after = rows.at(-1)!.id;
    }
  }
}
