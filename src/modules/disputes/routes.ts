import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, listRoute, ref, retrieveRoute } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { CloseDisputeBody, DisputeListQuery, UpdateDisputeBody } from './schemas.js';

const tags = ['Disputes'];

export const disputeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { disputes } = app.platform;

  app.get(
    '/v1/disputes',
    listRoute(
      { auth: 'tenant', scope: 'disputes:read' },
      { tags, summary: 'List disputes' },
      DisputeListQuery,
      'Dispute',
      '/v1/disputes',
    ),
    async (request) => ({
      object: 'list',
      url: '/v1/disputes',
      ...(await disputes.list(tenantScope(request), request.query)),
    }),
  );

  app.get(
    '/v1/disputes/:id',
    retrieveRoute({ auth: 'tenant', scope: 'disputes:read' }, { tags, summary: 'Retrieve a dispute' }, 'Dispute'),
    async (request) => disputes.retrieve(tenantScope(request), request.params.id),
  );

  app.post(
    '/v1/disputes/:id',
    {
      config: { auth: 'tenant', scope: 'disputes:write' },
      schema: {
        tags,
        summary: 'Update a dispute',
        description:
          'Adds evidence and metadata. Unless `submit` is `false`, the evidence is submitted at once and the dispute goes to `under_review`; evidence can only be given while the status is `needs_response` and before `evidence_details.due_by`.',
        params: IdParam,
        body: {
          ...UpdateDisputeBody,
          examples: [
            {
              evidence: {
                product_description: 'Annual plan, used daily since purchase.',
                uncategorized_text: 'winning_evidence',
              },
            },
          ],
        },
        response: { 200: ref('Dispute'), ...errors },
      },
    },
    async (request) =>
      disputes.update(tenantScope(request), request.params.id, request.body ?? {}, auditContext(request)),
  );

  app.post(
    '/v1/disputes/:id/close',
    {
      config: { auth: 'tenant', scope: 'disputes:write' },
      schema: {
        tags,
        summary: 'Close a dispute',
        description:
          'Accepts the loss of a dispute that needs a response: it becomes `lost` and the withheld amount goes back to the cardholder. Irreversible.',
        params: IdParam,
        body: CloseDisputeBody,
        response: { 200: ref('Dispute'), ...errors },
      },
    },
    async (request) => disputes.close(tenantScope(request), request.params.id, auditContext(request)),
  );
};
