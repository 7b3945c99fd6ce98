import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { DiscrepancyListQuery, ReconciliationItemListQuery, ReconciliationReportListQuery } from './schemas.js';

const tags = ['Reconciliation'];
const config = { auth: 'tenant', scope: 'reconciliation:read' } as const;
const reportList = listOf('ReconciliationReport', '/v1/reconciliation_reports');
// The items list's url names its report, so it is not one constant.
const itemList = {
  ...reportList,
  properties: {
    ...reportList.properties,
    url: { type: 'string' },
    data: { type: 'array', items: ref('ReconciliationItem') },
  },
};

export const reconciliationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { reconciliation } = app.platform;

  app.get(
    '/v1/reconciliation_reports',
    {
      config,
      schema: {
        tags,
        summary: 'List reconciliation reports',
        description:
          'One per processor, UTC day and currency, newest first: each processor’s settlement report for the day matched line by line with your ledger’s captures and refunds, with totals per outcome. The job runs daily for the previous day.',
        querystring: ReconciliationReportListQuery,
        response: { 200: reportList, ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/reconciliation_reports',
      ...(await reconciliation.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/platform/reconciliation_discrepancies',
    {
      config: { auth: 'platform' },
      schema: {
        tags,
        summary: 'List reconciliation discrepancies across tenants (operator)',
        description:
          'Every tenant’s reconciliation items that did not match (missing on one side, or amounts that differ) in ' +
          'their latest reconciliation, newest first: a rerun that matches them removes them. Amounts are signed ' +
          'minor units, as in the ledger. The platform operator only.',
        querystring: DiscrepancyListQuery,
        response: {
          200: listOf('ReconciliationDiscrepancy', '/v1/platform/reconciliation_discrepancies'),
          ...errors,
        },
      },
    },
    async (request) => ({
      object: 'list' as const,
      url: '/v1/platform/reconciliation_discrepancies' as const,
      ...(await reconciliation.discrepancies(request.query)),
    }),
  );

  app.get(
    '/v1/reconciliation_reports/:id',
    retrieveRoute(config, { tags, summary: 'Retrieve a reconciliation report' }, 'ReconciliationReport'),
    async (request) => reconciliation.retrieve(tenantScope(request), request.params.id),
  );

  app.get(
    '/v1/reconciliation_reports/:id/items',
    {
      config,
      schema: {
        tags,
        summary: 'List the items of a reconciliation report',
        description:
          'One per line of either side: `matched`, `missing_in_ledger`, `missing_in_report` or `amount_mismatch`; discrepancies come first.',
        params: IdParam,
        querystring: ReconciliationItemListQuery,
        response: { 200: itemList, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      return {
        object: 'list',
        url: `/v1/reconciliation_reports/${id}/items`,
        ...(await reconciliation.listItems(tenantScope(request), id, request.query)),
      };
    },
  );

  app.get(
    '/v1/reconciliation_reports/:id/csv',
    {
      config,
      schema: {
        tags,
        summary: 'Download a reconciliation report as CSV',
        description: 'Every item of the report, one line each, in the order the items list gives them.',
        params: IdParam,
        response: {
          200: {
            description: 'The items as CSV, with a header line.',
            content: { 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { filename, body } = await reconciliation.itemsCsv(tenantScope(request), request.params.id);
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${filename}"`)
        .send(body);
    },
  );
};
