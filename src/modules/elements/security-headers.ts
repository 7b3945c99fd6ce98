import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';

/**
 * Who may frame a page. The card frame (and the page 3-D Secure returns to) sits inside shops' checkout pages, on
 * any https origin, and the platform's own hosted checkout; in test mode also http://localhost, where integrations
 * are built. The hosted checkout itself may be framed by nobody: a framed payment page invites clickjacking.
 */
export type Framing = { shops: true; testMode: boolean } | { shops: false };

const LOCAL_DEVELOPMENT = ['http://localhost:*', 'http://127.0.0.1:*', 'http://[::1]:*'];

export function frameAncestors(framing: Framing): string {
  if (!framing.shops) return "'none'";
  return ["'self'", 'https:', ...(framing.testMode ? LOCAL_DEVELOPMENT : [])].join(' ');
}

/** A fresh nonce for one page's <style> element; scripts are never inline, only files of our origin. */
export const newNonce = () => randomBytes(16).toString('base64');

/**
 * Headers of every HTML page that collects or shows payment details: a strict Content-Security-Policy (no inline
 * script, nothing loaded from elsewhere, API calls only to this origin), framing rules, no MIME sniffing, no
 * Referer leaving with the page's URL (it names the publishable key and the shop), and no caching.
 */
export function pageHeaders(
  reply: FastifyReply,
  { nonce, framing, frames }: { nonce: string; framing: Framing; frames: boolean },
) {
  const policy = [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    // The hosted checkout frames the card fields and the 3-D Secure page, both of this origin.
    frames ? "frame-src 'self'" : null,
    "base-uri 'none'",
    "form-action 'none'",
    `frame-ancestors ${frameAncestors(framing)}`,
  ].filter((directive) => directive !== null);
  reply
    .type('text/html; charset=utf-8')
    .header('content-security-policy', policy.join('; '))
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store');
  // X-Frame-Options cannot say "any https origin" (ALLOW-FROM is gone from browsers), so the card frame relies on
  // frame-ancestors alone; the pages nobody may frame say DENY for browsers that predate CSP 2.
  if (!framing.shops) reply.header('x-frame-options', 'DENY');
}

export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const PAGE_STYLE = `*{box-sizing:border-box}body{margin:0;font:16px system-ui,-apple-system,sans-serif;color:#1a1f36;background:transparent}
input{font:inherit;border:1px solid #cfd7df;border-radius:6px;padding:10px 12px;min-width:0;outline:none;background:#fff}
input:focus{border-color:#635bff;box-shadow:0 0 0 3px rgba(99,91,255,.2)}
.row{display:flex;gap:8px}#number{flex:1 1 60%}#expiry{flex:0 0 7.5em}#cvc{flex:0 0 5em}
#status{margin:4px 0 0;font-size:13px;color:#df1b41;min-height:0}`;
