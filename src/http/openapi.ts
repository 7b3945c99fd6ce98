import { LATEST_API_VERSION } from '../modules/versions/versions.js';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifyApiReferenceOptions } from '@scalar/fastify-api-reference';
import type { FastifyRequest } from 'fastify';
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config.js';

const TEST_CARDS = `
| Card number | Behaviour |
|---|---|
| 4242 4242 4242 4242 | Succeeds |
| 4000 0000 0000 0002 | Declined: \`card_declined\` (\`generic_decline\`) |
| 4000 0000 0000 9995 | Declined: \`insufficient_funds\` |
| 4000 0000 0000 0127 | Declined: \`incorrect_cvc\` |
| 4000 0000 0000 0069 | Declined: \`expired_card\` |
| 4000 0000 0000 0119 | \`processing_error\` on the primary processor; succeeds after failover to the secondary |
| 4000 0000 0000 3220 | Requires 3-D Secure: \`next_action.redirect_to_url\` opens our simulated challenge page |
| 4000 0000 0000 0259 | Succeeds, then is disputed |
| 4100 0000 0000 0019 | Always blocked as fraudulent |

Use any future expiry date and any CVC (3 digits; 4 for American Express). Live mode refuses every documented test card
(these and the country and funding cards) with \`402 card_error\`, \`card_declined\`, \`decline_code: test_mode_live_card\`.`;

const DESCRIPTION = `
PayForward's REST API: JSON in, JSON out, resource paths under \`/v1\`, prefixed ids (\`pay_\`, \`pm_\`, \`re_\`, \`evt_\`).
Amounts are integers in the currency's minor unit (\`1000\` = $10.00 USD, ¥1000 JPY, 1.000 KWD).

## Authentication
Send your secret key as a bearer token: \`Authorization: Bearer sk_test_…\`. Test keys (\`sk_test_\`) only see test-mode
objects and live keys (\`sk_live_\`) only live ones. Restricted keys (\`rk_…\`) carry scopes such as \`payments:write\`.
\`POST /v1/oauth/token\` exchanges a secret key for a 15-minute JWT access token, accepted wherever a key is.
The platform operator authenticates with the platform key to create tenants.

## Idempotency
Send \`Idempotency-Key\` on any POST. Keys belong to the API key that sent them (and its scopes) and are kept 24 hours.
Retrying with the same key and the same body returns the first response with \`Idempotent-Replayed: true\`; the same
key with a different body is refused with \`409 idempotency_error\`. A request that answered a 5xx (such as \`503\`
when a processor's answer was lost) is resumed, not repeated, by a retry with the same key: it answers with the real
outcome.

## Errors
Every error is \`{"error": {"type", "code", "message", "param", "decline_code"?, "request_id"}}\` with types
\`invalid_request_error\`, \`authentication_error\`, \`permission_error\`, \`card_error\`, \`idempotency_error\`,
\`rate_limit_error\`, \`api_error\`.

## Pagination
Lists take \`limit\` (1–100, default 10), \`starting_after\` / \`ending_before\` (an object id) and \`created[gte|gt|lte|lt]\`
(Unix seconds), and return \`{object: "list", data, has_more}\`, newest first.

## Versions
Send \`PayForward-Version: ${LATEST_API_VERSION}\` to pick an API version; without it a request uses the tenant's pinned version (the
latest when the tenant was created). Every response names its version in the same header, and every event in
\`api_version\`. \`GET /v1/api_versions\` is the changelog.

## Rate limits
Per key and per tenant. Each response carries \`RateLimit-Limit\`, \`RateLimit-Remaining\`, \`RateLimit-Reset\`; a 429 also
carries \`Retry-After\`. Tokenizing cards (\`POST /v1/payment_methods\`, and card details inline in a payment) has a lower limit
of its own per key and per tenant.

## Test cards
${TEST_CARDS}`;

export function openApiOptions(publicUrl: string): FastifyDynamicSwaggerOptions {
  return {
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (object) =>
      'openapiObject' in object
        ? (shareBodySchemas(object.openapiObject as Document) as typeof object.openapiObject)
        : object.swaggerObject,
    openapi: {
      openapi: '3.1.0',
      info: { title: 'PayForward API', version: '2026-11-26', description: DESCRIPTION },
      servers: [{ url: publicUrl }],
      components: {
        securitySchemes: {
          secretKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'A tenant secret key (sk_test_…, sk_live_…), a restricted key, or an access token. A key may also be ' +
              'sent as the username of HTTP Basic auth with no password (`curl -u sk_test_…:`).',
          },
          platformKey: { type: 'http', scheme: 'bearer', description: 'The platform operator key (PLATFORM_API_KEY).' },
          publishableKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'A publishable key (pk_test_…, pk_live_…), safe in a web page: it can only tokenize cards and confirm or ' +
              "retrieve a payment with that payment's client_secret (see payforward.js).",
          },
          sessionCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: 'pf_session',
            description: 'A signed-in team member (POST /v1/sessions); state changes need the X-CSRF-Token header.',
          },
        },
      },
      security: [{ secretKey: [] }],
      tags: [
        { name: 'Payments', description: 'Create, confirm, capture, cancel and list payments.' },
        {
          name: 'Payment methods',
          description:
            'Tokenize and verify cards. Card numbers are encrypted; only brand, BIN (numbers of 15 digits or more), last4, expiry and fingerprint are readable.',
        },
        { name: 'Refunds', description: 'Full and partial refunds of captured payments.' },
        {
          name: 'Checkout',
          description:
            'Hosted checkout: a payment page on the platform (card fields, 3-D Secure) that sends the buyer back to your site.',
        },
        { name: 'Events', description: 'Every state change, written in the same transaction as the change.' },
        { name: 'Pricing', description: "The tenant's versioned pricing plan and exact fee quotes before charging." },
        { name: 'Balance', description: 'Available, pending and reserved funds, from the double-entry ledger.' },
        {
          name: 'Reconciliation',
          description: "Each processor's daily settlement report matched line by line with the ledger.",
        },
        {
          name: 'Bank accounts',
          description:
            'Where payouts go: registered, verified with two micro-deposits, account numbers encrypted (last4 shown).',
        },
        { name: 'API keys', description: 'Secret and restricted keys; rolling and revoking.' },
        {
          name: 'Team users',
          description: 'Team members and operator staff: invitations, roles (the scopes keys use), passwords, MFA.',
        },
        { name: 'Sessions', description: 'Sign-in with password and a second factor; the session cookie and CSRF.' },
        { name: 'Platform', description: 'Operator endpoints: tenants.' },
        { name: 'Authentication', description: 'Access tokens.' },
        { name: 'Health', description: 'Liveness, readiness and metrics.' },
      ],
    },
  };
}

/**
 * The docs page serves Scalar's bundled script from our own origin and turns off every feature
 * that talks to Scalar's cloud: the AI agent, MCP, the developer toolbar (share, deploy, upload
 * the document), the hosted API client, its request proxy, telemetry and the fonts it would load
 * from its CDN. `test/browser.test.ts` records every request the page makes.
 */
export function docsPageOptions(): FastifyApiReferenceOptions {
  return {
    routePrefix: '/docs',
    configuration: {
      url: '/openapi.json',
      pageTitle: 'PayForward API reference',
      theme: 'purple',
      agent: { disabled: true },
      // Read by Scalar releases with an MCP feature (the pinned 1.44 has none): kept so an upgrade stays offline.
      mcp: { disabled: true },
      showDeveloperTools: 'never',
      hideClientButton: true,
      withDefaultFonts: false,
      telemetry: false,
      // "Try it" sends requests straight from the browser to our API, never through Scalar's proxy.
      proxyUrl: '',
    } as FastifyApiReferenceOptions['configuration'],
  };
}

/**
 * The OpenAPI document with its servers entry (and every code sample) pointing at PUBLIC_URL, or
 * when that is not set at the host the request came to, so "try it" works behind another name.
 */
export function openApiDocument(document: object, config: Config, request: FastifyRequest) {
  const serverUrl = config.publicUrlConfigured ? config.publicUrl : `${request.protocol}://${request.host}`;
  const copy = structuredClone(document) as Parameters<typeof withCodeSamples>[0];
  return { ...withCodeSamples(copy, serverUrl), servers: [{ url: serverUrl }] };
}

interface Operation {
  parameters?: Array<{ in: string; name: string; required?: boolean; schema?: unknown }>;
  requestBody?: { content?: Record<string, { schema?: unknown; example?: unknown }> };
  'x-codeSamples'?: Array<{ lang: string; label: string; source: string }>;
  security?: Array<Record<string, unknown>>;
}

interface Document {
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

/**
 * A route that takes forms has one body schema under two media types, which @fastify/swagger writes out twice: it
 * goes to the shared schemas once, named after the operation (`POST /v1/payments/{id}/capture` →
 * `PostPaymentsIdCaptureBody`), and both media types refer to it. The document is an eighth smaller for it, and says
 * that the two bodies are one.
 */
export function shareBodySchemas(document: Document): Document {
  const schemas = ((document.components ??= {}).schemas ??= {});
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      const media = Object.values(operation?.requestBody?.content ?? {});
      if (media.length < 2 || media.some((m) => !m.schema || !isDeepStrictEqual(m.schema, media[0].schema))) continue;
      const name = `${[method, ...path.split(/[^A-Za-z0-9]+/).filter((word) => word && word !== 'v1')]
        .map((word) => word[0].toUpperCase() + word.slice(1))
        .join('')}Body`;
      if (name in schemas) throw new Error(`OpenAPI: two schemas named ${name}`);
      schemas[name] = media[0].schema;
      for (const m of media) m.schema = { $ref: `#/components/schemas/${name}` };
    }
  }
  return document;
}

// A request example per operation in curl, Node, the TypeScript SDK and Python, built from the
// operation's own example body so the samples can never drift from the schema.
export function withCodeSamples(document: Document, publicUrl: string) {
  const shared = document.components?.schemas ?? {};
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      if (typeof operation !== 'object' || operation === null) continue;
      const content = operation.requestBody?.content?.['application/json'];
      const example = content?.example ?? exampleFromSchema(content?.schema, shared);
      const url = publicUrl + path.replace(/\{(\w+)\}/g, (_, name) => `${name}_123`);
      const upper = method.toUpperCase();
      const platform = operation.security?.some((s) => 'platformKey' in s);
      const key = platform ? '$PLATFORM_API_KEY' : '$PAYFORWARD_SECRET_KEY';
      const envKey = platform ? 'PLATFORM_API_KEY' : 'PAYFORWARD_SECRET_KEY';
      const body = example === undefined ? undefined : JSON.stringify(example, null, 2);
      const idempotency = upper === 'POST';
      operation['x-codeSamples'] = [
        {
          lang: 'Shell',
          label: 'curl',
          source: [
            `curl -X ${upper} ${url}`,
            `  -H "Authorization: Bearer ${key}"`,
            ...(idempotency ? [`  -H "Idempotency-Key: $(uuidgen)"`] : []),
            ...(body ? [`  -H "Content-Type: application/json"`, `  -d '${body}'`] : []),
          ].join(' \\\n'),
        },
        {
          lang: 'JavaScript',
          label: 'Node',
          source: `const response = await fetch('${url}', {
  method: '${upper}',
  headers: {
    Authorization: \`Bearer \${process.env.${envKey}}\`,${idempotency ? `\n    'Idempotency-Key': crypto.randomUUID(),` : ''}${body ? `\n    'Content-Type': 'application/json',` : ''}
  },${body ? `\n  body: JSON.stringify(${body.replace(/\n/g, '\n  ')}),` : ''}
});
console.log(response.status, await response.json());`,
        },
        {
          lang: 'TypeScript',
          label: 'SDK',
          source: sdkSample(operation, method, path, publicUrl, envKey, example),
        },
        {
          lang: 'Python',
          label: 'Python',
          source: `import os, uuid, requests

response = requests.${method.toLowerCase()}(
    "${url}",
    headers={"Authorization": f"Bearer {os.environ['${envKey}']}"${idempotency ? `, "Idempotency-Key": str(uuid.uuid4())` : ''}},${body ? `\n    json=${toPython(example)},` : ''}
)
print(response.status_code, response.json())`,
        },
      ];
    }
  }
  return document;
}

/**
 * The same call with the TypeScript SDK (sdk/), through its typed client of every operation: the path template and
 * its parameters as the SDK's generated types name them, the example body, and the SDK's own Idempotency-Key.
 */
function sdkSample(
  operation: Operation,
  method: string,
  path: string,
  publicUrl: string,
  envKey: string,
  example: unknown,
) {
  const literal = (value: unknown) =>
    JSON.stringify(value, null, 2)
      .replace(/\n/g, '\n  ')
      .replace(/"([A-Za-z_][A-Za-z0-9_]*)":/g, '$1:');
  const names = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
  const query = (operation.parameters ?? []).filter((p) => p.in === 'query' && p.required);
  const params = [
    ...(names.length ? [`path: { ${names.map((name) => `${name}: '${name}_123'`).join(', ')} }`] : []),
    ...(query.length
      ? [
          `query: { ${query.map((p) => `${JSON.stringify(p.name)}: ${JSON.stringify(exampleFromSchema(p.schema, {}))}`).join(', ')} }`,
        ]
      : []),
  ];
  const options = [
    ...(params.length ? [`params: { ${params.join(', ')} }`] : []),
    ...(example === undefined ? [] : [`body: ${literal(example)}`]),
  ];
  const call = `payforward.api.${method.toUpperCase()}('${path}'${options.length ? `, {\n  ${options.join(',\n  ')},\n}` : ''})`;
  return `import { PayForward } from '@payforward/sdk';

// Retries with the same Idempotency-Key, throws PayForwardError, pins the PayForward-Version.
const payforward = new PayForward({ apiKey: process.env.${envKey}!, baseUrl: '${publicUrl}' });
const { data } = await ${call};
console.log(data);`;
}

function toPython(value: unknown): string {
  return JSON.stringify(value, null, 4)
    .replace(/\n/g, '\n    ')
    .replace(/\btrue\b/g, 'True')
    .replace(/\bfalse\b/g, 'False')
    .replace(/\bnull\b/g, 'None');
}

interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  examples?: unknown[];
  default?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  const?: unknown;
  minimum?: number;
}

/** A minimal valid example: required fields, using each field's example, default or enum. */
function exampleFromSchema(schema: unknown, shared: Record<string, unknown>): unknown {
  const s = schema as JsonSchema | undefined;
  if (!s) return undefined;
  if (s.$ref?.startsWith('#/components/schemas/'))
    return exampleFromSchema(shared[s.$ref.slice('#/components/schemas/'.length)], shared);
  if (s.examples?.length) return s.examples[0];
  if (s.anyOf)
    return exampleFromSchema(
      s.anyOf.find((o) => o.type !== 'null'),
      shared,
    );
  if (s.const !== undefined) return s.const;
  if (s.default !== undefined) return s.default;
  if (s.enum?.length) return s.enum[0];
  if (s.type === 'object' || s.properties) {
    const out: Record<string, unknown> = {};
    for (const name of s.required ?? []) out[name] = exampleFromSchema(s.properties?.[name], shared);
    return out;
  }
  if (s.type === 'integer' || s.type === 'number') return s.minimum ?? 1;
  if (s.type === 'boolean') return true;
  if (s.type === 'string') return 'string';
  return undefined;
}
