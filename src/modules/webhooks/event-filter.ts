import { isValidEventFilter } from '../events/catalog.js';

/**
 * The one place that decides whether an `enabled_events` entry names something the platform can emit: `*`, a
 * catalogued type (GET /v1/event_types), or a prefix such as `payment.*` that matches one.
 */
export function eventPatternRefusal(pattern: string): string | null {
  if (isValidEventFilter(pattern)) return null;
  return `'${pattern.slice(0, 100)}' is not an event type (see GET /v1/event_types), a prefix such as 'payment.*', or '*'`;
}
