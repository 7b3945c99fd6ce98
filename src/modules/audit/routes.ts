import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { stringify } from 'csv-stringify';
import { auditContext } from '../../http/audit-context.js';
import { errors, listOf } from '../../http/route-schemas.js';
import { AuditLogExportQuery, AuditLogListQuery, type AuditLog } from './schemas.js';

const tags = ['Audit logs'];
const config = { auth: 'any', scope: 'audit_logs:read' } as const;
const security: Record<string, string[]>[] = [{ secretKey: [] }, { platformKey: [] }];

const CSV_COLUMNS = [
  'id',
  'sequence',
  'created',
  'action',
  'actor_type',
  'actor_id',
  'actor_ip',
  'actor_user_agent',
  'target_type',
  'target_id',
  'before',
  'after',
  'request_id',
  'hash',
  'livemode',
];

const csvRecord = (entry: AuditLog) => [
  entry.id,
  entry.sequence,
  new Date(entry.created * 1000).toISOString(),
  entry.action,
  entry.actor.type,
  entry.actor.id,
  entry.actor.ip,
  entry.actor.user_agent,
  entry.target.type,
  entry.target.id,
  entry.changes.before && JSON.stringify(entry.changes.before),
  entry.changes.after && JSON.stringify(entry.changes.after),
  entry.request_id,
  entry.hash,
  entry.livemode,
];

export const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { audit } = app.platform;

  app.get(
    '/v1/audit_logs',
    {
      config,
      schema: {
        tags,
        security,
        summary: 'List audit log entries',
        description:
          "Administrative and security actions, newest first: who (key, token, user or operator, with address and user agent), what, on which object, the fields before and after, and the request id. Each entry is a link of its tenant's hash chain; `npm run audit:verify` checks the chains and their signed checkpoints.",
        querystring: AuditLogListQuery,
        response: { 200: listOf('AuditLog', '/v1/audit_logs'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/audit_logs',
      ...(await audit.list(audit.scopeFor(request.auth!, request.query), request.query)),
    }),
  );

  app.get(
    '/v1/audit_logs/export',
    {
      config,
      schema: {
        tags,
        security,
        summary: 'Export audit log entries as CSV',
        description:
          'Every entry matching the filters, oldest first, streamed. The export is itself recorded (`audit_log.exported`).',
        querystring: AuditLogExportQuery,
        response: {
          200: {
            description: 'The entries as CSV, with a header line; `before` and `after` as JSON.',
            content: { 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const scope = audit.scopeFor(request.auth!, request.query);
      const entries = audit.export(scope, request.query, auditContext(request));
      // The first entry is awaited before answering: a database failure is then still a proper error response.
      const first = await entries.next();
      async function* records() {
        if (first.done) return;
        yield csvRecord(first.value);
        for await (const entry of entries) yield csvRecord(entry);
      }
      const mode = scope.livemode ? 'live' : 'test';
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="audit-log-${scope.tenantId}-${mode}.csv"`)
        .send(Readable.from(records()).pipe(stringify({ header: true, columns: CSV_COLUMNS })));
    },
  );
};
