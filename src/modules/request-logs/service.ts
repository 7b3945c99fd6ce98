import type { Reads } from '../../db/replica.js';
import type { Scope } from '../../db/index.js';
import { listPage } from '../../db/list.js';
import { ApiError } from '../../http/errors.js';
import { REQUEST_ID_SKEW_MS } from '../../http/request-id.js';
import { ID_TIME_MARGIN_MS, idTime } from '../../lib/ids.js';
import type { RequestLogRow } from './recorder.js';
import type { RequestLog, RequestLogListParams } from './schemas.js';

export class RequestLogService {
  constructor(private readonly reads: Reads) {}

  async retrieve(scope: Scope, id: string): Promise<RequestLog> {
    // A log is written as its request ends, so no earlier than its id's time (a proxy's id may be ahead of our clock
    // by the skew it is allowed, the clock may have stepped back): the lookup reads the few days' partitions from
    // there on, not every day of the retention period. Any id not of that form was never a request's.
    const since = idTime('req', id);
    const [row] =
      since === undefined
        ? []
        : await this.reads.inScope(
            scope,
            (tx) => tx<RequestLogRow[]>`
              SELECT * FROM request_logs
              WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND id = ${id}
                AND created_at >= ${new Date(Math.max(0, since - REQUEST_ID_SKEW_MS - ID_TIME_MARGIN_MS))}`,
          );
    if (!row) throw ApiError.notFound('request_log', id);
    return toApi(row);
  }

  async list(scope: Scope, params: RequestLogListParams) {
    return this.reads.page(scope, async (tx) => {
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
