/**
 * The user and password of an `Authorization: Basic …` header (RFC 7617): undefined when the header names another
 * scheme, 'malformed' when it says Basic but is not base64 of "user:password".
 */
export function basicCredentials(
  header: string | undefined,
): { user: string; password: string } | 'malformed' | undefined {
  const match = header && /^Basic(?:\s+(.*))?$/i.exec(header.trim());
  if (!match) return undefined;
  const encoded = match[1] ?? '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return 'malformed';
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
