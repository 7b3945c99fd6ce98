import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { auditContext } from '../../http/audit-context.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import {
  CreateReportBody,
  CreateScheduleBody,
  ReportListQuery,
  ScheduleListQuery,
  UpdateScheduleBody,
} from './schemas.js';

const tags = ['Reports'];
const read = { auth: 'tenant', scope: 'reports:read' } as const;
const write = { auth: 'tenant', scope: 'reports:write' } as const;

export const reportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { reports } = app.platform;

  app.post(
    '/v1/reports',
    {
      config: write,
      schema: {
        tags,
        summary: 'Queue a report',
        description:
          'The worker produces it (`pending → succeeded | failed`) and emits `report.ready`; then download `GET /v1/reports/{id}/file`. Types, their parameters and formats are listed in the README.',
        body: CreateReportBody,
        response: { 200: ref('Report'), ...errors },
      },
    },
    async (request) => reports.create(tenantScope(request), request.body),
  );

  app.get(
    '/v1/reports',
    listRoute(read, { tags, summary: 'List reports' }, ReportListQuery, 'Report', '/v1/reports'),
    async (request) => ({
      object: 'list',
      url: '/v1/reports',
      ...(await reports.list(tenantScope(request), request.query)),
    }),
  );

  app.get('/v1/reports/:id', retrieveRoute(read, { tags, summary: 'Retrieve a report' }, 'Report'), async (request) =>
    reports.retrieve(tenantScope(request), request.params.id),
  );

  app.get(
    '/v1/reports/:id/file',
    {
      config: read,
      schema: {
        tags,
        summary: 'Download a report’s file',
        description:
          'Streams the file of a succeeded report (`400 report_not_ready` otherwise). Each download is recorded.',
        params: IdParam,
        response: {
          200: {
            description: 'The file, in the report’s format.',
            content: {
              'text/csv': { schema: { type: 'string' } },
              'application/json': { schema: { type: 'string' } },
              'application/pdf': { schema: { type: 'string', format: 'binary' } },
              'application/xml': { schema: { type: 'string' } },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { report, body } = await reports.file(tenantScope(request), request.params.id, auditContext(request));
      return reply
        .header('content-type', report.content_type)
        .header('content-disposition', `attachment; filename="${report.filename}"`)
        .send(body);
    },
  );

  app.post(
    '/v1/report_schedules',
    {
      config: write,
      schema: {
        tags,
        summary: 'Schedule a report',
        description:
          'Queues the report daily (at 00:00 UTC, for the day before), weekly (Mondays, for the 7 days before) or monthly (on the 1st, for the month before). Leave the period parameters out: each run sets them.',
        body: CreateScheduleBody,
        response: { 200: ref('ReportSchedule'), ...errors },
      },
    },
    async (request) => reports.createSchedule(tenantScope(request), request.body),
  );

  app.get(
    '/v1/report_schedules',
    listRoute(
      read,
      { tags, summary: 'List report schedules' },
      ScheduleListQuery,
      'ReportSchedule',
      '/v1/report_schedules',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/report_schedules',
      ...(await reports.listSchedules(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/report_schedules/:id',
    retrieveRoute(read, { tags, summary: 'Retrieve a report schedule' }, 'ReportSchedule'),
    async (request) => reports.retrieveSchedule(tenantScope(request), request.params.id),
  );

  app.post(
    '/v1/report_schedules/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Update a report schedule',
        params: IdParam,
        body: UpdateScheduleBody,
        response: { 200: ref('ReportSchedule'), ...errors },
      },
    },
    async (request) => reports.updateSchedule(tenantScope(request), request.params.id, request.body),
  );

  app.delete(
    '/v1/report_schedules/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a report schedule',
        params: IdParam,
        response: {
          200: {
            type: 'object',
            properties: { id: { type: 'string' }, object: { type: 'string' }, deleted: { type: 'boolean' } },
          },
          ...errors,
        },
      },
    },
    async (request) => reports.deleteSchedule(tenantScope(request), request.params.id),
  );
};
