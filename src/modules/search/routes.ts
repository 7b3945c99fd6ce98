import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, ref } from '../../http/route-schemas.js';
import { StrictObject } from '../../http/schemas.js';

const SearchQuery = StrictObject({
  query: Type.String({
    minLength: 1,
    maxLength: 1000,
    description: 'The search query (see the grammar in the README).',
    examples: ["status:'succeeded' AND metadata['order_id']:'1234'"],
  }),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  page: Type.Optional(
    Type.String({ maxLength: 200, description: 'The `next_page` of the previous result: the page after it.' }),
  ),
});

const searchResult = (id: string, url: string) => ({
  type: 'object',
  properties: {
    object: { type: 'string', const: 'search_result' },
    url: { type: 'string', const: url },
    has_more: { type: 'boolean' },
    next_page: { type: ['string', 'null'] },
    data: { type: 'array', items: ref(id) },
  },
  required: ['object', 'url', 'has_more', 'next_page', 'data'],
});

const GRAMMAR =
  "Clauses `field:'value'` (equals), `field>n`, `>=`, `<`, `<=` (numbers), `-field:'value'` (not), joined by `AND` or by `OR` (not both), at most 10. A mistake is `400 invalid_search_query` naming its position.";

export const searchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { search } = app.platform;

  app.get(
    '/v1/payments/search',
    {
      config: { auth: 'tenant', scope: 'payments:read' },
      schema: {
        tags: ['Payments'],
        summary: 'Search payments',
        description: `Fields: \`status\`, \`currency\`, \`amount\`, \`created\` (Unix seconds), \`customer\`, \`email\` (the customer's), \`last4\` (the card's), \`metadata['key']\`. ${GRAMMAR} Newest first.`,
        querystring: SearchQuery,
        response: { 200: searchResult('Payment', '/v1/payments/search'), ...errors },
      },
    },
    async (request) => search.payments(tenantScope(request), request.query),
  );

  app.get(
    '/v1/customers/search',
    {
      config: { auth: 'tenant', scope: 'customers:read' },
      schema: {
        tags: ['Customers'],
        summary: 'Search customers',
        description: `Fields: \`email\`, \`name\` (both case-insensitive), \`phone\`, \`created\` (Unix seconds), \`metadata['key']\`. ${GRAMMAR} Newest first.`,
        querystring: SearchQuery,
        response: { 200: searchResult('Customer', '/v1/customers/search'), ...errors },
      },
    },
    async (request) => search.customers(tenantScope(request), request.query),
  );
};
