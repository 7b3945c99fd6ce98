import type { Reads } from '../../db/replica.js';
import type { Scope } from '../../db/index.js';
import { findOwned, listPage } from '../../db/list.js';
import type { RequestLogRow } from './recorder.js';
import type { RequestLog, RequestLogListParams } from './schemas.js';

export class RequestLogService {
  constructor(private readonly reads: Reads) {}

  async retrieve(scope: Scope, id: string): Promise<RequestLog> {
    const row = await this.reads.inScope(scope, (tx) =>
      findOwned<RequestLogRow>(tx, 'request_logs', scope, id, 'request_log'),
    );
    return toApi(row);
  }

  async list(scope: Scope, params: RequestLogListParams) {
    return this.reads.inScope(scope, async (tx) => {
      const status = params.status;
      const statusFilter = !status
        ? tx``
        : status.endsWith('xx')
          ? tx`AND status >= ${Number(status[0]) * 100} AND status < ${Number(status[0]) * 100 + 100}`
          : tx`AND status = ${Number(status)}`;
      // The prefix is the caller's text: its LIKE wildcards (and the escape character) match literally.
      const prefix = (text: string) => text.replace(/[\\%_]/g, '\\$&') + '%';
      const page = await listPage<RequestLogRow>(tx, 'request_logs', scope, params, [
        statusFilter,
        params.method ? tx`AND method = ${params.method}` : tx``,
        params.path ? tx`AND path LIKE ${prefix(params.path)}` : tx``,
        params.api_key ? tx`AND api_key_id = ${params.api_key}` : tx``,
        params.error_code ? tx`AND error_code = ${params.error_code}` : tx``,
      ]);
      return { data: page.rows.map(toApi), has_more: page.hasMore };
    });
  }
}

function toApi(row: RequestLogRow): RequestLog {
  return {
    id: row.id,
    object: 'request_log',
    livemode: row.livemode,
    method: row.method,
    path: row.path,
    route: row.route,
    status: row.status,
    api_key: row.api_key_id,
    idempotency_key: row.idempotency_key,
    idempotent_replayed: row.idempotent_replayed,
    error: row.error_type || row.error_code ? { type: row.error_type, code: row.error_code } : null,
    latency_ms: row.latency_ms,
    source_ip: row.source_ip,
    created: Math.floor(new Date(row.created_at).getTime() / 1000),
  };
}
