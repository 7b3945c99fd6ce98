/**
 * The one place that decides whether an `enabled_events` entry names something the platform can
 * emit. Until the event type catalog (src/modules/events/catalog.ts) exists, a name is checked by
 * its shape: `object.action` in lower case, `object.*`, or `*`.
 */
export function eventPatternRefusal(pattern: string): string | null {
  if (pattern === '*') return null;
  if (/^[a-z][a-z_]*(\.[a-z][a-z_]*)*\.\*$/.test(pattern)) return null;
  if (/^[a-z][a-z_]*(\.[a-z][a-z_]*)+$/.test(pattern)) return null;
  return `'${pattern.slice(0, 100)}' is not an event type, a prefix such as 'payment.*', or '*'`;
}
