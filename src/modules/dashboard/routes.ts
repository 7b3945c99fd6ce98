import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../../http/errors.js';
import { StrictObject } from '../../http/schemas.js';
import { newNonce } from '../elements/security-headers.js';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** The nonce Mantine puts on the <style> elements it writes; index.html names it in this meta tag. */
export const NONCE_PLACEHOLDER = '__CSP_NONCE__';

function filesUnder(root: string, folder = root): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(root, join(folder, entry.name)) : [relative(root, join(folder, entry.name))],
  );
}

/**
 * The dashboard: a single-page app that calls the public API with the session cookie, nothing else. Its built files
 * are read into memory at start (a few hundred kilobytes; Vite names them by content hash, so they are cached for a
 * year), which also means no request path ever reaches the file system. Every other path under /dashboard answers
 * index.html, where the client-side router takes over.
 */
export const dashboardRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const root = app.platform.config.dashboardDir;
  const built = existsSync(join(root, 'index.html'));
  const assets = new Map<string, { type: string; body: Buffer }>();
  if (built)
    for (const file of filesUnder(root).filter((name) => name !== 'index.html'))
      assets.set(file.split('\\').join('/'), {
        type: TYPES[extname(file)] ?? 'application/octet-stream',
        body: readFileSync(join(root, file)),
      });
  const indexHtml = built ? readFileSync(join(root, 'index.html'), 'utf8') : '';
  if (!built)
    app.log.warn({ dashboardDir: root }, 'the dashboard is not built (npm run build): /dashboard answers 503');

  app.get('/dashboard', { schema: { hide: true }, config: { auth: 'none' } }, async (_request, reply) =>
    reply.redirect('/dashboard/', 302),
  );

  // The invitation email links to PUBLIC_URL/invitations/<token>; the dashboard's page for it accepts the invitation.
  app.get(
    '/invitations/:token',
    {
      schema: { hide: true, params: StrictObject({ token: Type.String({ minLength: 1, maxLength: 200 }) }) },
      config: { auth: 'none' },
    },
    async (request, reply) => reply.redirect(`/dashboard/invitations/${encodeURIComponent(request.params.token)}`, 302),
  );

  app.get('/dashboard/*', { schema: { hide: true }, config: { auth: 'none' } }, async (request, reply) => {
    const path = (request.params as { '*': string })['*'];
    const asset = assets.get(path);
    if (asset)
      return reply
        .type(asset.type)
        .header('x-content-type-options', 'nosniff')
        .header('cross-origin-resource-policy', 'same-origin')
        .header('cache-control', path.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache')
        .send(asset.body);
    // A missing asset must not turn into the HTML page: the browser would report a MIME error, not a 404.
    if (path.startsWith('assets/'))
      throw new ApiError('invalid_request_error', 'resource_missing', 'No such dashboard file.', null, 404);
    if (!built)
      throw new ApiError(
        'api_error',
        'dashboard_not_built',
        'The dashboard is not built: run npm run build.',
        null,
        503,
      );
    const nonce = newNonce();
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', dashboardPolicy(nonce))
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .send(indexHtml.replaceAll(NONCE_PLACEHOLDER, nonce));
  });
};

/**
 * Scripts only from files of this origin; styles from files and the <style> elements Mantine writes with the page's
 * nonce (React sets style properties through the CSSOM, which CSP does not govern); the API of this origin only;
 * no framing (clickjacking), no forms posted elsewhere.
 */
export function dashboardPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}
