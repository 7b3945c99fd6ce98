import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import { errors, ref } from '../../http/route-schemas.js';
import { IdParam } from '../../http/schemas.js';
import { FeePreviewBody, PricingQuery, SetPricingBody } from './schemas.js';

const tags = ['Pricing'];

export const pricingRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { pricing } = app.platform;

  app.put(
    '/v1/tenants/:id/pricing',
    {
      config: { auth: 'platform' },
      schema: {
        tags: ['Platform'],
        security: [{ platformKey: [] }],
        summary: "Set a tenant's pricing plan",
        description:
          'Creates a new immutable version of the plan for one mode (`livemode`, default test); earlier versions stay readable.',
        params: IdParam,
        body: {
          ...SetPricingBody,
          examples: [
            {
              livemode: false,
              type: 'blended',
              processing: { percent_bps: 250, fixed: 25, currencies: { jpy: { percent_bps: 360, fixed: 0 } } },
              international_bps: 150,
              currency_conversion_bps: 100,
              instant_settlement_bps: 100,
              refund_fee: { fixed: 0 },
              dispute_fee: { fixed: 1500 },
            },
          ],
        },
        response: { 200: ref('PricingPlan'), ...errors },
      },
    },
    async (request) => pricing.setPlan(request.params.id, request.body, auditContext(request)),
  );

  app.get(
    '/v1/pricing',
    {
      config: { auth: 'tenant', scope: 'pricing:read' },
      schema: {
        tags,
        summary: 'Retrieve your pricing plan',
        description:
          'The plan in force for this mode (version 0 is the default plan, until the operator sets one), or an earlier `version`.',
        querystring: PricingQuery,
        response: { 200: ref('PricingPlan'), ...errors },
      },
    },
    async (request) => pricing.retrieve(tenantScope(request), request.query.version),
  );

  app.post(
    '/v1/fees/preview',
    {
      config: { auth: 'tenant', scope: 'pricing:read' },
      schema: {
        tags,
        summary: 'Preview the fee on a charge',
        description:
          'The exact fee breakdown the current plan gives a charge, before charging: each line rounded half up on its own, `fee` their sum, `net = amount - fee`.',
        body: { ...FeePreviewBody, examples: [{ amount: 1000, currency: 'usd', card_country: 'GB' }] },
        response: { 200: ref('FeePreview'), ...errors },
      },
    },
    async (request) => pricing.preview(tenantScope(request), request.body),
  );
};
