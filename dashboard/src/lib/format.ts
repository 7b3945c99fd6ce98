const digitsCache = new Map<string, number>();

/** Minor units per major unit of a currency (2 for EUR, 0 for JPY, 3 for KWD), as Intl knows it. */
export function currencyDigits(currency: string): number {
  const code = currency.toUpperCase();
  let digits = digitsCache.get(code);
  if (digits === undefined) {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions()
      .maximumFractionDigits!;
    digitsCache.set(code, digits);
  }
  return digits;
}

/** An amount in minor units, shown in its currency; the integer is divided only for display. */
export function formatMoney(amount: number, currency: string): string {
  const code = currency.toUpperCase();
  return new Intl.NumberFormat('en', { style: 'currency', currency: code }).format(amount / 10 ** currencyDigits(code));
}

/** A decimal amount typed by a person ("12.50") in minor units, or null when it is not one. */
export function parseAmount(text: string, currency: string): number | null {
  const digits = currencyDigits(currency);
  const match = /^(\d+)(?:[.,](\d*))?$/.exec(text.trim());
  if (!match || (match[2] ?? '').length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? '').padEnd(digits, '0') || '0');
}

export const formatTime = (unixSeconds: number) =>
  new Date(unixSeconds * 1000).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });

export const formatPercent = (ratio: number) => `${(ratio * 100).toFixed(1)} %`;
