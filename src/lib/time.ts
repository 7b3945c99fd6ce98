/** A timestamp as the API shows it: whole seconds since the Unix epoch. */
export const unixSeconds = (date: Date | string) => Math.floor(new Date(date).getTime() / 1000);

/** A SQL date (as postgres.js may return it, a Date at UTC midnight) or a Date, as YYYY-MM-DD in UTC. */
export const isoDate = (value: string | Date) => (typeof value === 'string' ? value : value.toISOString().slice(0, 10));
