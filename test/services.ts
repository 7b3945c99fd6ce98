/**
 * Whether a suite that needs an external service can run. Without the service it is skipped on
 * a developer's bare machine, but under CI=true a missing service fails the run instead: CI must
 * never pass by skipping.
 */
export function serviceUrl(name: 'REDIS_URL' | 'AMQP_URL'): string | undefined {
  const url = process.env[name];
  if (!url && process.env.CI === 'true') throw new Error(`${name} is not set: CI must run this suite against the real service`);
  return url;
}
