import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, type TestApp } from './helpers.js';
import { NO_SCOPE } from '../src/http/route-auth.js';

/**
 * The routes anyone may call without a credential. Adding a public route means adding it here, on
 * purpose: the walk below fails for any route that is public without being listed.
 */
const PUBLIC_ROUTES = [
  'GET /health',
  'GET /ready',
  'GET /openapi.json',
  'GET /docs',
  'GET /docs/',
  'GET /docs/js/scalar.js',
  'GET /docs/openapi.json',
  'GET /docs/openapi.yaml',
  'GET /3ds/:token',
  'POST /3ds/:token/complete',
  // payforward.js and its frames, and the hosted checkout page (reached by a signed link): see src/modules/elements.
  'GET /js/payforward.js',
  'GET /elements/card',
  'GET /elements/card.js',
  'GET /elements/authenticated',
  'GET /elements/authenticated.js',
  'GET /elements/hosted-checkout.js',
  'GET /elements/three-d-secure.js',
  'GET /checkout/:token',
  'POST /checkout/:token/complete',
  'POST /v1/oauth/token',
  'GET /v1/api_versions',
  // Signing in and accepting an invitation: the credential is in the body (see src/modules/sessions).
  'POST /v1/sessions',
  'POST /v1/sessions/mfa',
  'POST /v1/invitations/:token/accept',
  // The dashboard's static files and the invitation link that leads into it; its data comes from the API, with the
  // session cookie (see src/modules/dashboard).
  'GET /dashboard',
  'GET /dashboard/*',
  'GET /invitations/:token',
].sort();

let t: TestApp;
const routes: Array<{ method: string; url: string; auth: unknown }> = [];

beforeAll(async () => {
  t = await bootApp({}, undefined, {
    beforeRoutes: (app) =>
      app.addHook('onRoute', (route: RouteOptions) => {
        for (const method of [route.method].flat()) routes.push({ method, url: route.url, auth: route.config?.auth });
      }),
  });
});
afterAll(() => t.close());

const fill = (url: string) => url.replace(/:(\w+)/g, (_, name: string) => `${name}_probe123`);

function expectUnauthenticated(response: Awaited<ReturnType<typeof call>>, what: string) {
  expect(response.statusCode, `${what}: ${response.body}`).toBe(401);
  if (response.body === '') return; // HEAD
  const { error } = response.json();
  expect(error, what).toMatchObject({ type: 'authentication_error', param: null });
  expect(typeof error.code).toBe('string');
  expect(error.request_id).toBe(response.headers['request-id']);
}

describe('default-deny routing', () => {
  it('every route without a credential answers 401 with the envelope, except the listed public ones', async () => {
    expect(routes.length).toBeGreaterThan(40);
    const publicRoutes = routes
      .filter((route) => route.auth === 'none' && route.method !== 'HEAD')
      .map((route) => `${route.method} ${route.url}`)
      .sort();
    expect(publicRoutes).toEqual(PUBLIC_ROUTES);
    for (const route of routes) {
      const name = `${route.method} ${route.url}`;
      expect(route.auth, name).toBeDefined();
      if (route.auth === 'none') continue;
      const method = route.method as 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD' | 'PATCH';
      expectUnauthenticated(await t.app.inject({ method, url: fill(route.url) }), name);
      // A body does not get anyone past authentication either.
      if (method === 'POST' || method === 'PUT')
        expectUnauthenticated(await t.app.inject({ method, url: fill(route.url), payload: {} }), `${name} + body`);
    }
  });

  it('a percent-encoded path reaches its route with the route’s own requirement', async () => {
    for (const url of ['/%761/payments/pay_x', '/%76%31/payments/pay_x', '/v%31/payments']) {
      expectUnauthenticated(await t.app.inject({ method: 'GET', url }), url);
    }
    const tenant = await createTenant(t.app);
    const found = await call(t.app, tenant.testKey, 'GET', '/%761/payments/pay_x');
    expect(found.statusCode, found.body).toBe(404);
    expect(found.json().error.code).toBe('resource_missing');
  });

  it('a request matching no route must authenticate before it learns so', async () => {
    expectUnauthenticated(await t.app.inject({ method: 'GET', url: '/admin' }), 'GET /admin');
    expectUnauthenticated(await t.app.inject({ method: 'DELETE', url: '/v1/payments' }), 'DELETE /v1/payments');
  });
});

describe('the app refuses to start', () => {
  it('with a route that declares no authentication, naming it', async () => {
    await expect(
      bootApp({}, undefined, {
        extraRoutes: async (app) => {
          app.get('/v1/undeclared', async () => ({}));
        },
      }),
    ).rejects.toThrow(/Route GET \/v1\/undeclared declares no authentication/);
  });

  it("with a plugin's route that declares none", async () => {
    await expect(
      bootApp({}, undefined, {
        beforeRoutes: (app) =>
          void app.register(async (plugin) => {
            plugin.post('/v1/plugin_thing', async () => ({}));
          }),
      }),
    ).rejects.toThrow(/Route POST \/v1\/plugin_thing declares no authentication/);
  });

  it('with a tenant route that names no scope, unless it says NO_SCOPE', async () => {
    await expect(
      bootApp({}, undefined, {
        extraRoutes: async (app) => {
          app.get('/v1/unscoped', { config: { auth: 'tenant' } }, async () => ({}));
        },
      }),
    ).rejects.toThrow(/Route GET \/v1\/unscoped \(auth 'tenant'\) declares no scope/);
    const explicit = await bootApp({}, undefined, {
      extraRoutes: async (app) => {
        app.get('/v1/any_key', { config: { auth: 'tenant', scope: NO_SCOPE } }, async () => ({ ok: true }));
      },
    });
    try {
      expectUnauthenticated(await explicit.app.inject({ method: 'GET', url: '/v1/any_key' }), 'GET /v1/any_key');
      const tenant = await createTenant(explicit.app);
      const reader = await call(explicit.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'] });
      const response = await call(explicit.app, reader.json().secret, 'GET', '/v1/any_key');
      expect(response.statusCode, response.body).toBe(200);
    } finally {
      await explicit.close();
    }
  });
});
