import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { auditContext } from '../../http/audit-context.js';
import { tenantScope } from '../../http/tenant-scope.js';
import { errors, listOf, listRoute, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import {
  AttachBody,
  CreateCustomerBody,
  CustomerListQuery,
  CustomerRetrieveQuery,
  DeletedCustomerSchema,
  UpdateCustomerBody,
} from './schemas.js';

const tags = ['Customers'];
const read = { auth: 'tenant', scope: 'customers:read' } as const;
const write = { auth: 'tenant', scope: 'customers:write' } as const;
const cardList = listOf('PaymentMethod', '/v1/payment_methods');
// The saved-cards list's url names its customer, so it is not one constant.
const savedCardList = { ...cardList, properties: { ...cardList.properties, url: { type: 'string' } } };
// Attaching and detaching change what a card may be charged for: the card's own permission.
const cardWrite = { auth: 'tenant', scope: 'payment_methods:write' } as const;

export const customerRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { customers, expander } = app.platform;

  app.post(
    '/v1/customers',
    {
      config: write,
      schema: {
        tags,
        summary: 'Create a customer',
        description: 'A customer groups payments and saved cards. Emits `customer.created`.',
        body: { ...CreateCustomerBody, examples: [{ email: 'jenny.rosen@example.com', name: 'Jenny Rosen' }] },
        response: { 200: ref('Customer'), ...errors },
      },
    },
    async (request) => customers.create(tenantScope(request), request.body ?? null, request.id),
  );

  app.get(
    '/v1/customers',
    listRoute(
      read,
      {
        tags,
        summary: 'List customers',
        description:
          'Newest first; deleted customers are left out. `expand[]=data.default_payment_method` returns the card.',
      },
      CustomerListQuery,
      'Customer',
      '/v1/customers',
    ),
    async (request) =>
      expander.list(tenantScope(request), 'customer', request.query['expand[]'], async () => ({
        object: 'list',
        url: '/v1/customers',
        ...(await customers.list(tenantScope(request), request.query)),
      })),
  );

  app.get(
    '/v1/customers/:id',
    {
      config: read,
      schema: {
        tags,
        summary: 'Retrieve a customer',
        description: '`expand[]=default_payment_method` returns the card.',
        params: IdParam,
        querystring: CustomerRetrieveQuery,
        response: { 200: ref('Customer'), ...errors },
      },
    },
    async (request) =>
      expander.one(tenantScope(request), 'customer', request.query['expand[]'], () =>
        customers.retrieve(tenantScope(request), request.params.id),
      ),
  );

  app.post(
    '/v1/customers/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Update a customer',
        description:
          'Sets `email`, `name`, `phone` (`""` clears one), merges `metadata` (`""` removes a key) and sets `default_payment_method` to one of its attached cards. Emits `customer.updated`.',
        params: IdParam,
        body: UpdateCustomerBody,
        response: { 200: ref('Customer'), ...errors },
      },
    },
    async (request) => customers.update(tenantScope(request), request.params.id, request.body ?? null, request.id),
  );

  app.delete(
    '/v1/customers/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a customer',
        description:
          'Its payments keep naming it; its saved cards stay attached to it, so nobody else can be charged with them. Emits `customer.deleted`.',
        params: IdParam,
        response: { 200: DeletedCustomerSchema, ...errors },
      },
    },
    async (request) => customers.remove(tenantScope(request), request.params.id, request.id),
  );

  app.post(
    '/v1/customers/:id/erase',
    {
      config: write,
      schema: {
        tags,
        summary: "Erase a customer's personal data",
        description:
          'Pseudonymises the customer: email, name and phone are cleared, and they (and any metadata value under a key naming an email, phone, IP address or a person’s name) are replaced by `[erased]` in its payments’ descriptions and metadata, their refunds’ metadata, disputes’ evidence and every event about them. Amounts, the ledger and the customer id stay. Also for a deleted customer.',
        params: IdParam,
        response: { 200: ref('Customer'), ...errors },
      },
    },
    async (request) => customers.erase(tenantScope(request), request.params.id, auditContext(request)),
  );

  app.get(
    '/v1/customers/:id/payment_methods',
    {
      config: read,
      schema: {
        tags,
        summary: "List a customer's saved cards",
        params: IdParam,
        querystring: StrictObject(ListQuery),
        response: { 200: savedCardList, ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: `/v1/customers/${request.params.id}/payment_methods`,
      ...(await customers.paymentMethods(tenantScope(request), request.params.id, request.query)),
    }),
  );

  app.post(
    '/v1/payment_methods/:id/attach',
    {
      config: cardWrite,
      schema: {
        tags: ['Payment methods'],
        summary: 'Attach a card to a customer',
        description:
          'From then on the card is charged only for that customer. A card attached to another customer must be detached first (`400 payment_method_already_attached`). Emits `payment_method.attached`.',
        params: IdParam,
        body: AttachBody,
        response: { 200: ref('PaymentMethod'), ...errors },
      },
    },
    async (request) => customers.attach(tenantScope(request), request.params.id, request.body.customer, request.id),
  );

  app.post(
    '/v1/payment_methods/:id/detach',
    {
      config: cardWrite,
      schema: {
        tags: ['Payment methods'],
        summary: 'Detach a card from its customer',
        description: 'The card is no longer the customer’s (nor its default). Emits `payment_method.detached`.',
        params: IdParam,
        response: { 200: ref('PaymentMethod'), ...errors },
      },
    },
    async (request) => customers.detach(tenantScope(request), request.params.id, request.id),
  );
};
