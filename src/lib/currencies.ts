import { ApiError } from '../http/errors.js';

// ISO 4217 active currency codes with their minor-unit exponent. Amounts in the API are integers
// in the currency's minor unit: 1000 JPY is ¥1000, 1000 USD is $10.00, 1000 KWD is 1.000 KD.
const ZERO_DECIMAL = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF';
const THREE_DECIMAL = 'BHD IQD JOD KWD LYD OMR TND';
const FOUR_DECIMAL = 'CLF UYW';
const TWO_DECIMAL =
  'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD ' +
  'CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD ' +
  'GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA ' +
  'MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR ' +
  'RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD ' +
  'TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG';

const EXPONENTS = new Map<string, number>();
for (const [codes, exponent] of [
  [ZERO_DECIMAL, 0],
  [TWO_DECIMAL, 2],
  [THREE_DECIMAL, 3],
  [FOUR_DECIMAL, 4],
] as const) {
  for (const code of codes.split(' ')) EXPONENTS.set(code.toLowerCase(), exponent);
}

/** Exponent of a lower-case ISO 4217 code, or undefined when the code is not a currency. */
export function currencyExponent(currency: string): number | undefined {
  return EXPONENTS.get(currency);
}

/** Largest amount accepted for one payment: 99,999,999 major units' worth in minor units, capped at 10^12. */
export function maxAmount(currency: string): number {
  const exponent = EXPONENTS.get(currency) ?? 2;
  return Math.min(99_999_999 * 10 ** exponent, 1_000_000_000_000);
}

/**
 * A requested amount's currency, lower-cased, once both are checked: a known ISO 4217 code and an
 * amount within maxAmount. The one check of every endpoint that takes an amount to move.
 */
export function requestedCurrency(request: { amount: number; currency: string }): string {
  const currency = knownCurrency(request.currency);
  if (request.amount > maxAmount(currency))
    throw ApiError.invalid(
      'amount_too_large',
      `Amount must be no more than ${maxAmount(currency)} in ${currency}.`,
      'amount',
    );
  return currency;
}

/** A requested currency code, lower-cased, once it is checked to be a known ISO 4217 code. */
export function knownCurrency(code: string): string {
  const currency = code.toLowerCase();
  if (currencyExponent(currency) === undefined)
    throw ApiError.invalid(
      'invalid_currency',
      `'${code.slice(0, 3)}' is not a supported ISO 4217 currency.`,
      'currency',
    );
  return currency;
}
