import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyPluginCallback,
  FastifyPluginOptions,
  RouteOptions,
} from 'fastify';

/**
 * Who may call a route. Every route declares one in its options, `config: { auth, scope }`:
 * - `none`: public (health, the docs, the 3-D Secure page, the OAuth token exchange, which checks
 *   its own credentials);
 * - `tenant`: a tenant's key or access token, with `scope` naming the permission it needs;
 * - `platform`: the platform operator's key;
 * - `any`: a tenant (needing `scope`) or the operator;
 * - `metrics`: `Authorization: Bearer $METRICS_TOKEN`.
 * `tenant` and `any` routes must name a scope, or say `scope: NO_SCOPE` when any key of the tenant
 * may call them. A request matching no route must authenticate too (it gets 401 before its 404).
 *
 * A publishable key (`pk_…`) has no scopes and is refused (403) everywhere except on the few `tenant` routes that
 * say `publishable`:
 * - `always`: any caller holding the key (tokenizing a card from a browser);
 * - `with_client_secret`: only with the `client_secret` of the object the route's `:id` names, sent as
 *   `client_secret` in the body or the query string (confirming or reading back one payment).
 */
export type AuthRequirement = 'none' | 'tenant' | 'platform' | 'any' | 'metrics';

/** For a tenant route any of whose keys may call it, whatever their scopes. */
export const NO_SCOPE = 'no_scope_required';

export type PublishableAccess = 'always' | 'with_client_secret';

export interface RouteAuth {
  auth: AuthRequirement;
  scope?: string;
  publishable?: PublishableAccess;
}

const REQUIREMENTS: readonly AuthRequirement[] = ['none', 'tenant', 'platform', 'any', 'metrics'];
const SCOPED: readonly AuthRequirement[] = ['tenant', 'any'];
const pluginDeclaration = Symbol('payforward.routeAuth');

type Declaring = FastifyInstance & { [pluginDeclaration]?: RouteAuth };

/**
 * Registers a third-party plugin whose routes cannot carry our `config` (Scalar's /docs pages),
 * declaring the one requirement all of them get. The declaration lives on the plugin's own
 * encapsulated instance, so it reaches no route outside it.
 */
export function declaredPlugin<Options extends FastifyPluginOptions>(
  declaration: RouteAuth,
  plugin: FastifyPluginAsync<Options> | FastifyPluginCallback<Options>,
): FastifyPluginAsync<Options> {
  return async (instance, opts) => {
    (instance as Declaring)[pluginDeclaration] = declaration;
    await instance.register(plugin as FastifyPluginAsync<Options>, opts);
  };
}

/**
 * The `onRoute` check that makes authentication default-deny: a route without a valid declaration
 * stops the app from starting. Attach with `app.addHook('onRoute', requireRouteAuth)` before any
 * route or plugin is registered.
 */
export function requireRouteAuth(this: FastifyInstance, route: RouteOptions) {
  const inherited = (this as Declaring)[pluginDeclaration];
  if (inherited && route.config?.auth === undefined) route.config = { ...route.config, ...inherited };
  const { auth, scope, publishable } = (route.config ?? {}) as Partial<RouteAuth>;
  const name = `${route.method} ${route.url}`;
  if (!auth || !REQUIREMENTS.includes(auth))
    throw new Error(
      `Route ${name} declares no authentication: add config: { auth: 'none' | 'tenant' | 'platform' | 'any' | ` +
        `'metrics', scope } to its options (see src/http/route-auth.ts).`,
    );
  if (SCOPED.includes(auth) && !scope)
    throw new Error(
      `Route ${name} (auth '${auth}') declares no scope: add config.scope ('<resource>:read' or ` +
        `'<resource>:write'), or scope: NO_SCOPE when any of the tenant's keys may call it.`,
    );
  if (!SCOPED.includes(auth) && scope !== undefined)
    throw new Error(`Route ${name} (auth '${auth}') declares a scope, which only 'tenant' and 'any' routes check.`);
  if (publishable !== undefined && (auth !== 'tenant' || !['always', 'with_client_secret'].includes(publishable)))
    throw new Error(
      `Route ${name}: publishable: 'always' | 'with_client_secret' is declared only on 'tenant' routes (auth '${auth}').`,
    );
  if (publishable === 'with_client_secret' && !route.url.includes('/:id'))
    throw new Error(`Route ${name}: publishable: 'with_client_secret' needs an :id whose client_secret is checked.`);
}
