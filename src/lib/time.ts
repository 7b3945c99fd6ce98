/** A timestamp as the API shows it: whole seconds since the Unix epoch. */
export const unixSeconds = (date: Date | string) => Math.floor(new Date(date).getTime() / 1000);

/** A SQL date (as postgres.js may return it, a Date at UTC midnight) or a Date, as YYYY-MM-DD in UTC. */
export const isoDate = (value: string | Date) => (typeof value === 'string' ? value : value.toISOString().slice(0, 10));

/**
 * The time a service stamps on what it records (rows, events, ledger lines, deadlines). The system clock in the
 * platform; the demo seeder passes one that replays past days, so its history goes through the same services.
 */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();
