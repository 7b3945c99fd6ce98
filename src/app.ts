import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifyError,
} from 'fastify';
import swagger from '@fastify/swagger';
import scalar from '@scalar/fastify-api-reference';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { isFormBody, parseFormBody, routeTakesForms } from './http/form-body.js';
import { requestIdGenerator } from './http/request-id.js';
import { logListenRetries } from './http/notification-listener.js';
import { redisReady, type Platform } from './platform.js';
import { byPublishableKey, requireScope, type Auth } from './http/auth.js';
import { declaredPlugin, requireRouteAuth, type AuthRequirement, type PublishableAccess } from './http/route-auth.js';
import { checkClientSecret } from './http/client-secret.js';
import { countAuthFailure, throttleAddress, throttleTenant } from './http/throttle.js';
import { startMetricsServer } from './modules/health/metrics-server.js';
import { ApiError, safeEcho } from './http/errors.js';
import { answerClientError, refuseConnect } from './http/client-errors.js';
import { tenantScope } from './http/tenant-scope.js';
import { KeyClaimLost, type HeldKey } from './http/idempotency.js';
import { loggerOptions, maskCardNumbers, requestLoggerFactory } from './http/logging.js';
import { preSerializationStep } from './http/sync-hooks.js';
import { docsPageOptions, openApiDocument, openApiOptions } from './http/openapi.js';
import { rejectRepeatedQueryParameters, rejectUnstorableText, validationError } from './http/validation.js';
import { registerSharedSchemas } from './http/route-schemas.js';
import { lazySerializerFactory } from './http/lazy-serializers.js';
import { explainOtherMode } from './http/other-mode.js';
import { healthRoutes } from './modules/health/routes.js';
import { tenantRoutes } from './modules/tenants/routes.js';
import { apiKeyRoutes } from './modules/api-keys/routes.js';
import { oauthRoutes } from './modules/oauth/routes.js';
import { paymentMethodRoutes } from './modules/payment-methods/routes.js';
import { paymentRoutes } from './modules/payments/routes.js';
import { refundRoutes } from './modules/refunds/routes.js';
import { disputeRoutes } from './modules/disputes/routes.js';
import { eventRoutes } from './modules/events/routes.js';
import { pricingRoutes } from './modules/pricing/routes.js';
import { ledgerRoutes } from './modules/ledger/routes.js';
import { settlementRoutes } from './modules/settlements/routes.js';
import { payoutRoutes } from './modules/payouts/routes.js';
import { bankAccountRoutes } from './modules/bank-accounts/routes.js';
import { reconciliationRoutes } from './modules/reconciliation/routes.js';
import { analyticsRoutes } from './modules/analytics/routes.js';
import { reportRoutes } from './modules/reports/routes.js';
import { caseRoutes } from './modules/cases/routes.js';
import { customerRoutes } from './modules/customers/routes.js';
import { searchRoutes } from './modules/search/routes.js';
import { threeDSecureRoutes } from './modules/three-d-secure/routes.js';
import { elementsRoutes } from './modules/elements/routes.js';
import { dashboardRoutes } from './modules/dashboard/routes.js';
import { checkoutRoutes } from './modules/checkout/routes.js';
import { requestLogRoutes } from './modules/request-logs/routes.js';
import { apiVersionRoutes } from './modules/versions/routes.js';
import {
  API_VERSION_HEADER,
  API_VERSION_NAMES,
  inRequestedVersion,
  isApiVersion,
  LATEST_API_VERSION,
} from './modules/versions/versions.js';
import { userRoutes } from './modules/users/routes.js';
import { sessionRoutes } from './modules/sessions/routes.js';
import { authenticateSession, sessionCookie } from './modules/sessions/auth.js';
import { webhookRoutes } from './modules/webhooks/routes.js';
import { fraudRoutes } from './modules/fraud/routes.js';
import { auditRoutes } from './modules/audit/routes.js';
import type { DestinationStream } from 'pino';
import { isDatabaseUnavailable } from './db/index.js';
import { formatLsn, parseLsn, type ReadRouter } from './db/replica.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthRequirement;
    scope?: string;
    publishable?: PublishableAccess;
    /** Takes form bodies without an Authorization header (see the form parser): OAuth's token endpoint. */
    formsWithoutAuthorization?: boolean;
    /**
     * `claimed_in_write`: the handler's first write claims the Idempotency-Key (HeldKey.claimedInWrite); when the key
     * turns out to be taken (KeyClaimLost), the request claims it as others do and is answered from that claim.
     */
    idempotency?: 'claimed_in_write';
  }
  interface FastifyRequest {
    auth?: Auth;
    /** The Idempotency-Key this request holds; its `key` is qualified by the caller's principal. */
    idempotency?: HeldKey;
    /** The API version the answer is shaped in (authenticated requests). */
    apiVersion?: string;
  }
  interface FastifyInstance {
    platform: Platform;
  }
}

const PLATFORM_SCOPE_ID = '__platform__';
// Long enough for a connection on a loaded machine, short enough that a Redis outage barely delays a start.
const REDIS_START_WAIT_MS = 3000;
/** Read-your-writes across API processes: a write's answer carries it, a read that presents it waits for it. */
export const READ_AFTER_HEADER = 'payforward-read-after';
const READ_ONLY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface BuildOptions {
  logStream?: DestinationStream;
  logLevel?: string;
  /** Called before any route is registered (tests use it to see every route). */
  beforeRoutes?: (app: FastifyInstance) => void;
  /** More routes, registered after the built-in modules under the same rules (tests add probes). */
  extraRoutes?: FastifyPluginAsync;
}

export async function buildApp(platform: Platform, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { config } = platform;
  const logger = {
    ...loggerOptions(options.logLevel ?? config.logLevel),
    ...(options.logStream ? { stream: options.logStream } : {}),
  };
  const app = Fastify({
    logger,
    bodyLimit: config.bodyLimitBytes,
    // 3-D Secure challenge links carry a signed token (~300 characters) as a path parameter; the
    // default limit of 100 answered them with 414.
    routerOptions: { maxParamLength: 2048 },
    genReqId: requestIdGenerator(config.requestIdHeader),
    childLoggerFactory: requestLoggerFactory,
    // Per-request access lines only at debug: at thousands of payments a second they would cost more than the work.
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace',
    }),
    // The shutdown refusal below answers in our envelope; fastify's own would not.
    return503OnClosing: false,
    forceCloseConnections: false,
    frameworkErrors: answerFrameworkError,
    trustProxy: config.trustProxy,
    clientErrorHandler: answerClientError,
    // In production every response serializer is compiled at start, so a schema fast-json-stringify refuses stops
    // the start and no first request pays for one. Elsewhere (development, the tests' many boots) each one is
    // compiled when its route first answers: compiling them all was most of a start (lazySerializerFactory).
    ...(config.production
      ? {}
      : { schemaController: { compilersFactory: { buildSerializer: lazySerializerFactory() } } }),
  });
  app.server.on('connect', refuseConnect);
  app.decorate('platform', platform);

  // During a graceful shutdown the requests in flight finish, but one that arrives meanwhile (on a
  // kept-alive connection) is refused at once: first of all hooks, so it costs no rate-limit,
  // authentication or database work, and its connection closes so the client retries elsewhere.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Hooks that do nothing on most requests take fastify's callback form, and a phase's steps share one async hook:
  // each async hook is a promise and a turn of the microtask queue for every request.
  app.addHook('onRequest', (request, reply, done) => {
    if (!closing) return done();
    reply.header('request-id', request.id);
    done(
      new ApiError(
        'api_error',
        'shutting_down',
        'This server is shutting down; retry the request (with the same Idempotency-Key) on a new connection.',
        null,
        503,
      ),
    );
  });
  // Default-deny: every route, plugins' included, declares who may call it, or the app does not start.
  app.addHook('onRoute', requireRouteAuth);
  // The OpenAPI document lists forms beside JSON wherever the form parser (below) takes them.
  app.addHook('onRoute', (route) => {
    if (!route.schema?.body || route.schema.consumes) return;
    if (!routeTakesForms(route.config ?? {})) return;
    route.schema = { ...route.schema, consumes: ['application/json', 'application/x-www-form-urlencoded'] };
  });
  // A handler that ended without its write claiming the key (the key was taken: KeyClaimLost; or it answered a 4xx
  // before writing) claims it as any other request does before its handler: a retry of a stored answer is answered
  // from it, and a key in use or reused is refused. A lost claim that now holds (the key's owner stopped) runs the
  // handler again; a 4xx answered before the write is this request's answer, stored with the claim. A 5xx (the
  // database away, a write's commit unanswered) keeps the claim it may have written: the answer abandons it, and the
  // client's retry takes it over at once, as for any claim.
  app.addHook('onRoute', (route) => {
    if (route.config?.idempotency !== 'claimed_in_write') return;
    const handler = route.handler;
    route.handler = async function claimingInWrite(request, reply) {
      try {
        return await handler.call(this, request, reply);
      } catch (error) {
        const held = request.idempotency;
        if (!held?.claimedInWrite || held.written) throw error;
        const answeredBeforeWrite = error instanceof ApiError && error.statusCode < 500;
        if (!(error instanceof KeyClaimLost) && !answeredBeforeWrite) throw error;
        platform.idempotency.released(held);
        request.idempotency = undefined;
        if (await claimIdempotencyKey(request, reply, false)) return reply;
        if (error instanceof KeyClaimLost) return handler.call(this, request, reply);
        throw error;
      }
    };
  });
  options.beforeRoutes?.(app);

  // JSON bodies are strict: no type coercion ("100" is not an amount), no silently dropped fields.
  // Query strings and form bodies are text by nature, so there numbers and booleans are coerced.
  const ajv = (coerceTypes: boolean) => {
    const instance = new Ajv({
      coerceTypes,
      useDefaults: true,
      removeAdditional: false,
      allErrors: false,
      strict: false,
    });
    addFormats.default(instance);
    return instance;
  };
  const bodyAjv = ajv(false);
  const textAjv = ajv(true);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body'
      ? bodyValidator(bodyAjv.compile(schema), () => textAjv.compile(schema))
      : textAjv.compile(schema),
  );
  app.setSchemaErrorFormatter((errors, dataVar) => validationError(errors, dataVar));

  app.removeContentTypeParser('text/plain');
  // Stripe's API takes its parameters form-encoded (`curl -d amount=2000 -d "metadata[order]=6735"`), as its clients
  // send them; the same routes and schemas serve both.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => {
    try {
      const route = request.routeOptions.config;
      const withKey = request.headers.authorization !== undefined || route.formsWithoutAuthorization === true;
      if (!routeTakesForms(route) || !withKey)
        throw new ApiError(
          'invalid_request_error',
          'unsupported_media_type',
          routeTakesForms(route)
            ? 'Form bodies are taken with an API key in the Authorization header; send this request as application/json.'
            : 'This endpoint takes application/json only.',
          null,
          415,
        );
      done(null, parseFormBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  registerSharedSchemas(app);
  await app.register(swagger, openApiOptions(config.publicUrl));
  await app.register(declaredPlugin({ auth: 'none' }, scalar), docsPageOptions());
  app.get('/openapi.json', { schema: { hide: true }, config: { auth: 'none' } }, async (request) =>
    openApiDocument(app.swagger(), config, request),
  );

  app.addHook('onRequest', async (request, reply) => {
    reply.header('request-id', request.id);
    await throttleAddress(platform.rateLimiter, config, request, reply);
    // Only the route's own declaration decides, never the URL's text (which the router decodes:
    // /%761/payments is /v1/payments). A request matching no route has none, and must authenticate.
    const requirement: AuthRequirement = request.routeOptions.config.auth ?? 'any';
    if (requirement === 'none') return;
    if (requirement === 'metrics') {
      if (!platform.authenticator.isMetricsToken(request.headers.authorization))
        throw new ApiError(
          'authentication_error',
          'invalid_metrics_token',
          'Send "Authorization: Bearer <METRICS_TOKEN>"; without METRICS_TOKEN set, metrics are served only on METRICS_PORT.',
          null,
          401,
        );
      return;
    }
    // The dashboard calls the same routes with its session cookie; an Authorization header wins.
    const cookie = request.headers.authorization === undefined ? sessionCookie(request) : undefined;
    const auth =
      cookie !== undefined
        ? await authenticateSession(platform.users, request, cookie)
        : await platform.authenticator.authenticate(request.headers.authorization);
    // A key carries its tenant's status (checked in authenticate); a session is checked here. Reading the session
    // (for its CSRF token) and signing out stay possible, so a suspended tenant's member can end it cleanly.
    if (auth.kind === 'tenant' && auth.via === 'session' && !isOwnSession(request))
      await platform.authenticator.checkTenantActive(auth.tenantId);
    if (requirement === 'tenant' && auth.kind !== 'tenant') {
      throw new ApiError(
        'permission_error',
        'tenant_key_required',
        'This endpoint acts on a tenant: use a tenant secret key (sk_test_… or sk_live_…).',
        null,
        403,
      );
    }
    if (requirement === 'platform' && auth.kind !== 'platform') {
      throw new ApiError(
        'permission_error',
        'platform_key_required',
        'This endpoint is for the platform operator.',
        null,
        403,
      );
    }
    request.auth = auth;
    const { scope, publishable } = request.routeOptions.config;
    if (byPublishableKey(auth)) {
      // A publishable key is public: it passes only where a route declares it may (route-auth.ts), never by scope.
      if (!publishable)
        throw new ApiError(
          'permission_error',
          'publishable_key_not_allowed',
          'A publishable key (pk_…) can only tokenize cards and confirm or retrieve a payment with its ' +
            'client_secret; use a secret key (sk_…) from your server for anything else.',
          null,
          403,
        );
    } else if (scope) requireScope(auth, scope);
    request.apiVersion = await requestedApiVersion(request, auth);
    reply.header(API_VERSION_HEADER, request.apiVersion);
    await throttleTenant(platform.rateLimiter, config, auth, reply);
    readAfter(request);
  });

  /** A tenant's PayForward-Read-After: its stale-tolerant reads wait until the replica has that write. */
  function readAfter(request: FastifyRequest) {
    const header = request.headers[READ_AFTER_HEADER];
    if (header === undefined || request.auth?.kind !== 'tenant') return;
    const lsn = parseLsn(Array.isArray(header) ? header[0] : header);
    if (lsn === undefined)
      throw ApiError.invalid(
        'read_after_invalid',
        'PayForward-Read-After must be the value a write answered with (such as 0/3A5F2C8).',
        'PayForward-Read-After',
      );
    platform.readRouter?.readAfter(tenantScope(request), lsn);
  }

  // After a tenant's (or the operator's) write, its stale-tolerant reads wait until the replica has it.
  // Only with a replica: without one every read is the primary's, and there is no position to wait for.
  const readRouter = platform.readRouter;
  async function answerReadAfter(request: FastifyRequest, reply: FastifyReply, auth: Auth, router: ReadRouter) {
    const lsn = await router.wrote(auth.kind === 'tenant' ? tenantScope(request) : 'operator');
    if (lsn !== undefined) reply.header(READ_AFTER_HEADER, formatLsn(lsn));
  }

  // Every refused credential (a bad or revoked key, a wrong operator key or metrics token, a failed
  // OAuth exchange) counts against its address's auth-failure budget, checked in onRequest above.
  // A request that presented none guessed nothing (a browser's /favicon.ico), so it does not count.
  async function countRefusedCredential(request: FastifyRequest) {
    const body = request.body as { client_secret?: unknown; password?: unknown; login_token?: unknown } | undefined;
    const presented =
      request.headers.authorization !== undefined ||
      typeof body?.client_secret === 'string' ||
      // A sign-in's password or second factor: guessing across many accounts from one address is throttled too.
      typeof body?.password === 'string' ||
      typeof body?.login_token === 'string';
    if (presented) await countAuthFailure(platform.rateLimiter, config, request);
  }

  const { redis } = platform;
  if (redis)
    app.addHook('onReady', async () => {
      if (!(await redisReady(redis, REDIS_START_WAIT_MS)))
        app.log.warn({ redis: redis.status }, 'Redis is not answering: limits are counted in this process until it is');
    });
  // Revocations made by other API processes reach this one's key cache by notification.
  app.addHook('onReady', () => platform.authenticator.listen(logListenRetries(app.log, 'API key changes')));
  if (config.metricsPort !== undefined) {
    const metricsPort = config.metricsPort;
    let metricsServer: FastifyInstance | undefined;
    // onReady, not onListen: listen() waits for it, so a taken port stops the start instead of being logged.
    app.addHook('onReady', async () => {
      metricsServer = await startMetricsServer(platform.metrics, config.metricsHost, metricsPort);
    });
    app.addHook('onClose', async () => metricsServer?.close());
  }

  // Handlers build objects in the latest version's shape; a caller pinned to an earlier one gets them converted.
  app.addHook(
    'preSerialization',
    preSerializationStep((request, _reply, payload) => inRequestedVersion(payload, request.apiVersion)),
  );

  function isOwnSession(request: FastifyRequest) {
    return (
      (request.method === 'GET' || request.method === 'DELETE') && request.routeOptions.url === '/v1/sessions/current'
    );
  }

  /** The PayForward-Version header, else the tenant's pinned version (the operator's requests: the latest). */
  async function requestedApiVersion(request: FastifyRequest, auth: Auth): Promise<string> {
    const header = request.headers[API_VERSION_HEADER];
    if (header === undefined)
      return auth.kind === 'tenant' ? platform.tenants.apiVersionFor(auth.tenantId) : LATEST_API_VERSION;
    const version = Array.isArray(header) ? header[0] : header;
    if (!isApiVersion(version))
      throw ApiError.invalid(
        'api_version_invalid',
        `Unknown API version '${safeEcho(version)}'; versions are ${API_VERSION_NAMES.join(', ')}.`,
        'PayForward-Version',
      );
    return version;
  }

  app.addHook('preValidation', async (request) => {
    rejectUnstorableText(request.params, 'params');
    rejectRepeatedQueryParameters(request.query);
    rejectUnstorableText(request.query, 'querystring');
    rejectUnstorableText(request.body, 'body');
  });

  app.addHook('preHandler', async (request, reply) => {
    checkPublishable(request);
    // A replay is answered here: the claim resolves once its reply is sent, and the handler is skipped.
    if (request.method === 'POST' && (await claimIdempotencyKey(request, reply))) return reply;
  });

  // Before the Idempotency-Key is claimed: a wrong client_secret must not become the stored answer to a key.
  function checkPublishable(request: FastifyRequest) {
    if (!byPublishableKey(request.auth)) return;
    if (request.routeOptions.config.publishable === 'with_client_secret')
      checkClientSecret(request, platform.clientSecrets, tenantScope(request));
    // A buyer's browser sees only the fields payforward.js needs: expanding would load objects it may not see.
    if ((request.query as Record<string, unknown> | undefined)?.['expand[]'] !== undefined)
      throw new ApiError(
        'permission_error',
        'publishable_key_not_allowed',
        'A publishable key cannot expand related objects; retrieve them from your server with a secret key.',
        'expand[]',
        403,
      );
  }

  // Idempotency: every authenticated POST may carry Idempotency-Key; the claim happens after
  // validation so a malformed request never takes a key.
  /** Claims the request's Idempotency-Key, if it has one; true when the claim answered (a replay). */
  async function claimIdempotencyKey(
    request: FastifyRequest,
    reply: FastifyReply,
    inWrite = request.routeOptions.config.idempotency === 'claimed_in_write',
  ): Promise<boolean> {
    // An unknown URL does nothing worth replaying, and its raw path (which may hold anything a
    // client typed, even a card number) must not be stored as the key's request_path.
    if (!request.auth || !request.routeOptions.url) return false;
    const header = request.headers['idempotency-key'];
    if (header === undefined) return false;
    const key = Array.isArray(header) ? header[0] : header;
    if (!key || key.length > 255)
      throw ApiError.invalid(
        'idempotency_key_invalid',
        'Idempotency-Key must be 1 to 255 characters.',
        'Idempotency-Key',
      );
    const scope =
      request.auth.kind === 'tenant' ? tenantScope(request) : { tenantId: PLATFORM_SCOPE_ID, livemode: false };
    const claim = await platform.idempotency.claim({
      scope,
      auth: request.auth,
      key,
      method: request.method,
      route: request.routeOptions.url,
      url: request.url,
      body: request.body,
      inWrite,
    });
    if (claim.kind === 'replay') {
      reply.header('idempotent-replayed', 'true');
      reply.code(claim.response.status).send(claim.response.body);
      return true;
    }
    request.idempotency = claim.held;
    return false;
  }

  async function completeIdempotencyKey(
    request: FastifyRequest,
    reply: FastifyReply,
    idempotency: HeldKey,
    payload: unknown,
  ) {
    request.idempotency = undefined;
    // Its answer is on the key already, stored by the write that decided it.
    if (idempotency.answeredInWrite !== undefined) return platform.idempotency.released(idempotency);
    try {
      if (reply.statusCode >= 500) await platform.idempotency.abandon(idempotency);
      else await platform.idempotency.complete(idempotency, reply.statusCode, String(payload));
    } catch (error) {
      // The database went away after the answer was decided: the client still gets that answer, and
      // the unsettled claim is taken over by a retry once its owner stops heartbeating.
      if (!isDatabaseUnavailable(error)) throw error;
      request.log.warn({ err: error }, 'idempotency key left claimed: database unavailable');
    }
  }

  // Each step awaited only when it has work: an await is a turn of the microtask queue even for nothing.
  app.addHook('onSend', async (request, reply, payload) => {
    const { auth, idempotency } = request;
    if (readRouter && auth && !READ_ONLY_METHODS.has(request.method))
      await answerReadAfter(request, reply, auth, readRouter);
    if (reply.statusCode === 401) await countRefusedCredential(request);
    if (idempotency) await completeIdempotencyKey(request, reply, idempotency, payload);
    // During a graceful shutdown, the requests still in flight finish, but their keep-alive
    // connections must then close: an idle client socket would hold close() open until it timed out.
    if (closing) reply.header('connection', 'close');
    // Last: the status and body are final (a replay's included).
    platform.requestLogRecorder.record(request, reply, payload);
    return payload;
  });

  app.addHook('onResponse', (request, reply, done) => {
    platform.metrics.httpDuration.observe(
      { route: request.routeOptions.url ?? 'unmatched', method: request.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const apiError = await explainOtherMode(platform.sql, request, toApiError(error));
    if (apiError.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    // 429, and 503 (the database away, or a processor's outcome unknown): the same request again, shortly.
    if ((apiError.statusCode === 429 || apiError.statusCode === 503) && !reply.hasHeader('retry-after'))
      reply.header('retry-after', '1');
    return reply.code(apiError.statusCode).send({ error: apiError.toBody(request.id) });
  });

  app.setNotFoundHandler((request, reply) => {
    const path = maskCardNumbers(request.url.split('?')[0]).slice(0, 200);
    reply.code(404).send({
      error: new ApiError(
        'invalid_request_error',
        'resource_missing',
        `Unrecognized request URL (${request.method}: ${path}).`,
        null,
        404,
      ).toBody(request.id),
    });
  });

  await app.register(healthRoutes);
  await app.register(apiVersionRoutes);
  await app.register(threeDSecureRoutes);
  await app.register(elementsRoutes);
  await app.register(dashboardRoutes);
  await app.register(checkoutRoutes);
  await app.register(tenantRoutes);
  await app.register(apiKeyRoutes);
  await app.register(oauthRoutes);
  await app.register(paymentMethodRoutes);
  await app.register(paymentRoutes);
  await app.register(refundRoutes);
  await app.register(disputeRoutes);
  await app.register(eventRoutes);
  await app.register(pricingRoutes);
  await app.register(ledgerRoutes);
  await app.register(settlementRoutes);
  await app.register(payoutRoutes);
  await app.register(bankAccountRoutes);
  await app.register(customerRoutes);
  await app.register(searchRoutes);
  await app.register(reconciliationRoutes);
  await app.register(requestLogRoutes);
  await app.register(reportRoutes);
  await app.register(caseRoutes);
  await app.register(userRoutes);
  await app.register(sessionRoutes);
  await app.register(webhookRoutes);
  await app.register(fraudRoutes);
  await app.register(auditRoutes);
  await app.register(analyticsRoutes);
  if (options.extraRoutes) await app.register(options.extraRoutes);
  return app;
}

// A URL with broken percent-encoding, or a path segment over maxParamLength, is refused before
// any hook runs; it still gets the request-id and the error envelope, and the URL (which may hold
// card data) is not echoed.
function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const apiError =
    error.code === 'FST_ERR_BAD_URL'
      ? ApiError.invalid('invalid_url', 'The request URL is not valid: check its percent-encoding.')
      : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new ApiError('invalid_request_error', 'url_too_long', 'A path segment of the URL is too long.', null, 414)
        : toApiError(error);
  reply
    .header('request-id', request.id)
    .code(apiError.statusCode)
    .send({ error: apiError.toBody(request.id) });
}

function toApiError(error: FastifyError): ApiError {
  if (error instanceof ApiError) return error;
  if (isDatabaseUnavailable(error))
    return new ApiError(
      'api_error',
      'database_unavailable',
      'The database is unavailable for a moment; retry shortly with the same Idempotency-Key.',
      null,
      503,
    );
  if (error.validation) return validationError(error.validation, error.validationContext ?? 'body');
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('invalid_request_error', 'body_too_large', 'The request body is too large.', null, 413);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        'invalid_request_error',
        'unsupported_media_type',
        'Send request bodies as application/json or application/x-www-form-urlencoded.',
        null,
        415,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return ApiError.invalid(
        'invalid_json',
        'The body is empty but Content-Type is application/json; send {} or no Content-Type.',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return ApiError.invalid('invalid_json', 'The request body is not valid JSON.');
  }
  if (error instanceof SyntaxError || error.statusCode === 400)
    return ApiError.invalid('invalid_json', 'The request body is not valid JSON.');
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(
      'invalid_request_error',
      'invalid_request',
      'The request could not be processed.',
      null,
      error.statusCode,
    );
  }
  return new ApiError(
    'api_error',
    'internal_error',
    'Something went wrong on our side; the request can be retried safely with the same Idempotency-Key.',
    null,
    500,
  );
}

/**
 * A body's validation: strict for JSON, coercing for a form's texts (compiled on the first form body, so that a
 * platform whose clients send JSON alone never compiles it). Fastify reads the errors off the function it was given.
 */
function bodyValidator(strict: ValidateFunction, coercing: () => ValidateFunction) {
  let forForms: ValidateFunction | undefined;
  const validate = (data: unknown) => {
    const validator = isFormBody(data) ? (forForms ??= coercing()) : strict;
    const valid = validator(data);
    validate.errors = validator.errors;
    return valid;
  };
  validate.errors = null as ValidateFunction['errors'];
  return validate;
}
