import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../http/route-schemas.js';
import { API_VERSIONS, LATEST_API_VERSION } from './versions.js';

const ApiVersionList = Type.Object({
  object: Type.Literal('list'),
  url: Type.Literal('/v1/api_versions'),
  has_more: Type.Boolean(),
  data: Type.Array(
    Type.Object({
      id: Type.String({ examples: [LATEST_API_VERSION] }),
      object: Type.Literal('api_version'),
      latest: Type.Boolean(),
      changes: Type.Array(Type.String(), { description: 'What changed from the version before it.' }),
    }),
  ),
});

export const apiVersionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const changelog = {
    object: 'list' as const,
    url: '/v1/api_versions' as const,
    has_more: false,
    data: [...API_VERSIONS].reverse().map((v) => ({
      id: v.version,
      object: 'api_version' as const,
      latest: v.version === LATEST_API_VERSION,
      changes: v.changes.map((change) => change.summary),
    })),
  };

  // The changelog is public, as Stripe's is: it holds nothing of any tenant.
  app.get(
    '/v1/api_versions',
    {
      config: { auth: 'none' },
      schema: {
        tags: ['API versions'],
        summary: 'List API versions (the changelog)',
        description:
          'Every API version, newest first, with what changed. A request picks one with the `PayForward-Version` ' +
          'header; without it, the tenant’s pinned version applies (the latest when the tenant was created). Every ' +
          'response names the version it was answered in, in the same header, and every event in `api_version`.',
        security: [],
        response: { 200: ApiVersionList, ...errors },
      },
    },
    async () => changelog,
  );
};
