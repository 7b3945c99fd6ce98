import { currencyExponent } from '../../lib/currencies.js';

/** "€49.00"-style display of an amount in minor units, with the currency's own number of decimals. */
export function formatAmount(amount: number, currency: string): string {
  const exponent = currencyExponent(currency.toLowerCase()) ?? 2;
  const value = amount / 10 ** exponent;
  try {
    return new Intl.NumberFormat('en', {
      style: 'currency',
      currency: currency.toUpperCase(),
      minimumFractionDigits: exponent,
      maximumFractionDigits: exponent,
    }).format(value);
  } catch {
    return `${value.toFixed(exponent)} ${currency.toUpperCase()}`;
  }
}
