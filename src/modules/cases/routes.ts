import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { auditContext } from '../../http/audit-context.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { CaseListQuery, CaseNoteBody, CreateCaseBody, UpdateCaseBody } from './schemas.js';

const tags = ['Cases'];
const read = { auth: 'tenant', scope: 'cases:read' } as const;
const write = { auth: 'tenant', scope: 'cases:write' } as const;

export const caseRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { cases } = app.platform;

  app.post(
    '/v1/cases',
    {
      config: write,
      schema: {
        tags,
        summary: 'Open a case by hand',
        description:
          'Alerts (structuring, fraud blocks, list hits) open cases by themselves; this opens one for anything else.',
        body: CreateCaseBody,
        response: { 200: ref('Case'), ...errors },
      },
    },
    async (request) => cases.create(tenantScope(request), request.body),
  );

  app.get(
    '/v1/cases',
    listRoute(read, { tags, summary: 'List cases' }, CaseListQuery, 'Case', '/v1/cases'),
    async (request) => ({
      object: 'list',
      url: '/v1/cases',
      ...(await cases.list(tenantScope(request), request.query)),
    }),
  );

  app.get('/v1/cases/:id', retrieveRoute(read, { tags, summary: 'Retrieve a case' }, 'Case'), async (request) =>
    cases.retrieve(tenantScope(request), request.params.id),
  );

  app.post(
    '/v1/cases/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Update a case',
        description:
          'Status `open → investigating → filed | dismissed` (an open case may also be dismissed); assignee; narrative.',
        params: IdParam,
        body: UpdateCaseBody,
        response: { 200: ref('Case'), ...errors },
      },
    },
    async (request) => cases.update(tenantScope(request), request.params.id, request.body),
  );

  app.post(
    '/v1/cases/:id/notes',
    {
      config: write,
      schema: {
        tags,
        summary: 'Add a note to a case',
        params: IdParam,
        body: CaseNoteBody,
        response: { 200: ref('Case'), ...errors },
      },
    },
    async (request) => cases.addNote(tenantScope(request), request.params.id, request.body),
  );

  app.get(
    '/v1/cases/:id/filing',
    {
      config: read,
      schema: {
        tags,
        summary: 'Export a case as a suspicious activity filing',
        description:
          'JSON modelled on a suspicious activity report: subject, amounts, date range, transactions, narrative.',
        params: IdParam,
        response: { 200: { type: 'object', additionalProperties: true }, ...errors },
      },
    },
    async (request) => cases.filing(tenantScope(request), request.params.id, auditContext(request)),
  );
};
