import { parseAmount } from './format.ts';

/** A value inside single quotes of the search language (`\` escapes). */
export const quote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Unix seconds of the start of a YYYY-MM-DD day in the browser's time zone, or null. */
export function dayStart(day: string): number | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) return null;
  return Math.floor(new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime() / 1000);
}

export interface RangeFilters {
  from: string;
  to: string;
}

/** `created` clauses for a from/to day range (both days included). */
export function createdClauses({ from, to }: RangeFilters): string[] {
  const clauses: string[] = [];
  const start = dayStart(from);
  if (start !== null) clauses.push(`created>=${start}`);
  const end = dayStart(to);
  if (end !== null) clauses.push(`created<${end + 86_400}`);
  return clauses;
}

/** `metadata['key']:'value'` from a "key=value" filter. */
export function metadataClause(pair: string): string | null {
  const at = pair.indexOf('=');
  if (at <= 0) return null;
  return `metadata[${quote(pair.slice(0, at).trim())}]:${quote(pair.slice(at + 1).trim())}`;
}

/** Amount bounds typed as decimals ("12.50") in the currency's minor units (two digits when none is chosen). */
export function amountClauses(min: string, max: string, currency: string): { clauses: string[]; invalid: boolean } {
  const clauses: string[] = [];
  let invalid = false;
  for (const [text, operator] of [
    [min, '>='],
    [max, '<='],
  ] as const) {
    if (!text) continue;
    const minor = parseAmount(text, currency || 'usd');
    if (minor === null) invalid = true;
    else clauses.push(`amount${operator}${minor}`);
  }
  return { clauses, invalid };
}
