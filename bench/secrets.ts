import { randomBytes } from 'node:crypto';
import { PRODUCTION_SECRETS } from '../src/bootstrap.js';

/**
 * A fresh strong value for every secret a production-mode API refuses to start without, derived
 * from the same list the API checks, so a secret added later cannot break the bench unnoticed.
 * `keep` wins for the ones the caller must know (the platform key) or that an existing database
 * role already holds (its password).
 */
export function productionSecrets(keep: Record<string, string | undefined> = {}): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const { name, kind } of PRODUCTION_SECRETS) {
    secrets[name] = keep[name] || randomBytes(32).toString(kind === 'text' ? 'base64url' : 'base64');
  }
  return secrets;
}
