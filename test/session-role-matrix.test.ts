import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, createTenant, PLATFORM_KEY, TestClock, type TestApp } from './helpers.js';
import { asMember, newMember, type Member } from './team.js';
import { hasScope } from '../src/http/auth.js';
import { NO_SCOPE } from '../src/http/route-auth.js';
import { ROLES, isOperatorRole, scopesOfRole, type Role } from '../src/modules/users/roles.js';

/**
 * Every registered route, called with a session of every role: each is either let through (any
 * answer but 401/403: the probe ids make most of them 404s or 400s) or refused with 403, exactly
 * as the role's scopes say, the same check a key with those scopes gets.
 */
const clock = new TestClock();
clock.freeze(Date.UTC(2026, 10, 29, 15, 0, 0));
let t: TestApp;
const members = new Map<Role, Member>();
const routes: Array<{ method: string; url: string; auth: string; scope?: string }> = [];
/** Routes that end the session calling them: covered in src/modules/sessions/sessions.test.ts. */
const SESSION_ENDING = new Set(['DELETE /v1/sessions/current']);
// An allowed request to the event stream never ends; its scope (events:read) is checked in test/event-stream.test.ts.
const NEVER_ENDING = new Set(['GET /v1/events/stream']);
const SELF_SERVICE = /^\/v1\/(sessions\/current|users\/me)(\/|$)/;

beforeAll(async () => {
  t = await bootApp({}, undefined, {
    clock,
    beforeRoutes: (app) =>
      app.addHook('onRoute', (route: RouteOptions) => {
        for (const method of [route.method].flat())
          routes.push({ method, url: route.url, auth: route.config!.auth!, scope: route.config?.scope });
      }),
  });
  const tenant = await createTenant(t.app);
  for (const role of ROLES)
    members.set(role, await newMember(t.app, clock, isOperatorRole(role) ? PLATFORM_KEY : tenant.liveKey, role));
}, 120_000);
afterAll(() => t.close());

function expected(role: Role, route: (typeof routes)[number]): 'allowed' | 403 | 401 {
  if (route.auth === 'metrics') return 401;
  const safe = route.method === 'GET' || SELF_SERVICE.test(route.url);
  if (isOperatorRole(role)) {
    if (route.auth === 'tenant') return 403;
    return role === 'operator_admin' || safe ? 'allowed' : 403;
  }
  if (route.auth === 'platform') return 403;
  return route.scope === NO_SCOPE || hasScope(scopesOfRole(role), route.scope!) ? 'allowed' : 403;
}

const fill = (url: string) => url.replace(/:(\w+)/g, (_, name: string) => `${name}_probe123`);

describe('role × route matrix for session auth', () => {
  it('walks every registered route for every role', async () => {
    const walked = routes.filter(
      (r) =>
        r.auth !== 'none' &&
        r.method !== 'HEAD' &&
        !SESSION_ENDING.has(`${r.method} ${r.url}`) &&
        !NEVER_ENDING.has(`${r.method} ${r.url}`),
    );
    expect(walked.length).toBeGreaterThan(50);
    const mismatches: string[] = [];
    for (const route of walked) {
      for (const role of ROLES) {
        const method = route.method as 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
        const body = method === 'POST' || method === 'PUT' || method === 'PATCH' ? {} : undefined;
        const response = await asMember(t.app, members.get(role)!, method, fill(route.url), body);
        const want = expected(role, route);
        const got = response.statusCode === 401 || response.statusCode === 403 ? response.statusCode : 'allowed';
        if (got !== want)
          mismatches.push(
            `${role} ${route.method} ${route.url}: want ${want}, got ${response.statusCode} ${response.body.slice(0, 120)}`,
          );
        if (got === 403) expect(response.json().error.type).toBe('permission_error');
      }
    }
    expect(mismatches).toEqual([]);
  }, 300_000);

  it('the matrix is not trivial: each tenant role is refused somewhere and allowed somewhere', () => {
    for (const role of ROLES.filter((r) => !isOperatorRole(r))) {
      const outcomes = new Set(routes.filter((r) => r.auth === 'tenant').map((r) => expected(role, r)));
      if (role === 'owner' || role === 'admin') expect(outcomes, role).toEqual(new Set(['allowed']));
      else expect(outcomes, role).toEqual(new Set(['allowed', 403]));
    }
  });
});
