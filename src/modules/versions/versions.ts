import { Type } from 'typebox';
import { isoDate, unixSeconds } from '../../lib/time.js';

type ApiObject = Record<string, unknown>;
/** Rewrites one API object (a copy: never the caller's) from one version's shape into its neighbour's. */
type Transform = (object: ApiObject) => void;

interface VersionChange {
  summary: string;
  /** Per object type (the `object` field): from the previous version's shape into this version's. */
  upgrade: Record<string, Transform>;
  /** The reverse, for a caller pinned to an earlier version. */
  downgrade: Record<string, Transform>;
}

export interface ApiVersion {
  version: string;
  changes: VersionChange[];
}

const dayToSeconds = (field: string) => (object: ApiObject) => {
  if (typeof object[field] === 'string') object[field] = unixSeconds(`${object[field] as string}T00:00:00Z`);
};
const secondsToDay = (field: string) => (object: ApiObject) => {
  if (typeof object[field] === 'number') object[field] = isoDate(new Date((object[field] as number) * 1000));
};

/**
 * Every API version, oldest first, dated like Stripe's. A tenant is pinned to the latest at creation and keeps
 * its shapes until it asks for another (the `PayForward-Version` header per request, or its pinned default). The
 * code builds objects in the latest shape; older versions are reached through each change's `downgrade`.
 */
export const API_VERSIONS: readonly ApiVersion[] = [
  { version: '2026-11-01', changes: [] },
  {
    version: '2026-12-01',
    changes: [
      {
        summary:
          'Every date is a Unix timestamp: `settlement.settlement_date` and `reconciliation_report.report_date` ' +
          'are the start of their UTC day in seconds (they were `YYYY-MM-DD` strings), like `payout.arrival_date`.',
        upgrade: {
          settlement: dayToSeconds('settlement_date'),
          reconciliation_report: dayToSeconds('report_date'),
        },
        downgrade: {
          settlement: secondsToDay('settlement_date'),
          reconciliation_report: secondsToDay('report_date'),
        },
      },
    ],
  },
];

export const LATEST_API_VERSION = API_VERSIONS[API_VERSIONS.length - 1].version;
export const API_VERSION_NAMES = API_VERSIONS.map((v) => v.version);
export const API_VERSION_HEADER = 'payforward-version';

export const isApiVersion = (value: unknown): value is string =>
  typeof value === 'string' && API_VERSION_NAMES.includes(value);

const indexOf = (version: string) => {
  const index = API_VERSION_NAMES.indexOf(version);
  if (index < 0) throw new Error(`unknown API version ${version}`);
  return index;
};

/** A handler's answer, built in the latest version's shape, in the shape of the version its request asked for. */
export const inRequestedVersion = <T>(payload: T, requested: string | undefined): T =>
  requested && requested !== LATEST_API_VERSION ? convertVersion(payload, LATEST_API_VERSION, requested) : payload;

/**
 * `value` (an API object, a list, an event: anything JSON) written in version `from`, in the shape of version `to`.
 * Objects are found by their `object` field at any depth (list items, expanded objects, an event's
 * `data.object`); an event also states the version it is now in. The input is never modified; with nothing to
 * change it is returned as it is.
 */
export function convertVersion<T>(value: T, from: string, to: string): T {
  const start = indexOf(from);
  const end = indexOf(to);
  if (start === end) return value;
  const steps: Array<Record<string, Transform>> =
    end > start
      ? API_VERSIONS.slice(start + 1, end + 1).flatMap((v) => v.changes.map((c) => c.upgrade))
      : API_VERSIONS.slice(end + 1, start + 1)
          .reverse()
          .flatMap((v) => v.changes.map((c) => c.downgrade));
  return walk(value, steps, to) as T;
}

function walk(value: unknown, steps: Array<Record<string, Transform>>, version: string): unknown {
  if (Array.isArray(value)) return value.map((item) => walk(item, steps, version));
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const copy: ApiObject = {};
  for (const [key, field] of Object.entries(value)) copy[key] = walk(field, steps, version);
  const type = copy.object;
  if (typeof type === 'string') {
    for (const step of steps) step[type]?.(copy);
    if (type === 'event' && 'api_version' in copy) copy.api_version = version;
  }
  return copy;
}

/** A calendar day: Unix seconds at its UTC start since 2026-12-01, a `YYYY-MM-DD` string before. */
export const VersionedDay = (description: string) =>
  Type.Union([Type.Integer(), Type.String({ format: 'date' })], {
    description: `${description} Unix seconds at the start of that UTC day (a \`YYYY-MM-DD\` string in API versions before 2026-12-01).`,
  });
