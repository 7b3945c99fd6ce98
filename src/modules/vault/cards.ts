export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'jcb' | 'diners' | 'unionpay' | 'unknown';

export function luhnValid(pan: string): boolean {
  if (!/^\d{12,19}$/.test(pan)) return false;
  let sum = 0;
  let double = false;
  for (let i = pan.length - 1; i >= 0; i--) {
    let digit = pan.charCodeAt(i) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

export function cardBrand(pan: string): CardBrand {
  const two = Number(pan.slice(0, 2));
  const four = Number(pan.slice(0, 4));
  const three = Number(pan.slice(0, 3));
  if (pan.startsWith('4')) return 'visa';
  if ((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720)) return 'mastercard';
  if (two === 34 || two === 37) return 'amex';
  if (pan.startsWith('6011') || pan.startsWith('65') || (three >= 644 && three <= 649)) return 'discover';
  if (four >= 3528 && four <= 3589) return 'jcb';
  if (two === 36 || two === 38 || (three >= 300 && three <= 305)) return 'diners';
  if (two === 62) return 'unionpay';
  return 'unknown';
}

/** A card expires at the end of its expiry month. */
export function isExpired(expMonth: number, expYear: number, now = new Date()): boolean {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth() + 1;
  return expYear < year || (expYear === year && expMonth < month);
}

export function cvcLooksValid(cvc: string, brand: CardBrand): boolean {
  return brand === 'amex' ? /^\d{4}$/.test(cvc) : /^\d{3}$/.test(cvc);
}

// Stripe's country and funding test cards; any other number is a US credit card. A live issuer
// lookup (a BIN table) would slot in here.
type Issuer = { country: string; funding: 'credit' | 'debit' | 'prepaid' };
// A Map: 16-digit keys on a plain object are integer-like and slow to look up.
const TEST_ISSUERS = new Map<string, Issuer>([
  ['4000056655665556', { country: 'US', funding: 'debit' }],
  ['5200828282828210', { country: 'US', funding: 'debit' }],
  ['5105105105105100', { country: 'US', funding: 'prepaid' }],
  ['4000008260000000', { country: 'GB', funding: 'credit' }],
  ['4000002760000016', { country: 'DE', funding: 'credit' }],
  ['4000000760000002', { country: 'BR', funding: 'credit' }],
]);
const US_CREDIT: Issuer = { country: 'US', funding: 'credit' };

/** Issuing country and funding of a card, which pricing depends on. */
export function cardIssuer(pan: string): Issuer {
  return TEST_ISSUERS.get(pan) ?? US_CREDIT;
}

/**
 * Every card number the documentation gives for test mode (the behaviour cards and the country and
 * funding ones). Live mode refuses them all, as Stripe does, so a live integration can never be
 * exercised, or a live charge faked, with a published number.
 */
export const DOCUMENTED_TEST_CARDS: ReadonlySet<string> = new Set([
  '4242424242424242',
  '4000000000000002',
  '4000000000009995',
  '4000000000000127',
  '4000000000000069',
  '4000000000000119',
  '4000000000003220',
  '4000000000000259',
  '4100000000000019',
  // Risk test cards (issue 11): an elevated and a highest risk score in test mode.
  '4000000000009235',
  '4000000000004954',
  ...TEST_ISSUERS.keys(),
]);

/**
 * The first six digits, only for numbers of 15 digits or more: with a BIN and last4 shown, a 12 to
 * 14 digit number keeps just 2 to 4 unknown digits (fewer after the Luhn check), which anyone who
 * can tokenize could try against the fingerprint.
 */
export function displayableBin(pan: string): string | null {
  return pan.length >= 15 ? pan.slice(0, 6) : null;
}
