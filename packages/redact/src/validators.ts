/** Checksums and range rules the built-in detectors (and custom detectors, by name) validate matches with. */

/** Luhn (mod 10) over the digits of `value`; other characters are ignored. */
export function luhnValid(value: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = value.length - 1; i >= 0; i--) {
    const code = value.charCodeAt(i);
    if (code < 48 || code > 57) continue;
    let digit = code - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
    digits++;
  }
  return digits > 1 && sum % 10 === 0;
}

/** Issuer prefixes of the major card networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro). */
export function cardPrefixValid(digits: string): boolean {
  const len = digits.length;
  const d1 = digits.charCodeAt(0) - 48;
  const two = Number(digits.slice(0, 2));
  const four = Number(digits.slice(0, 4));
  const three = Number(digits.slice(0, 3));
  if (d1 === 4) return len === 13 || len === 16 || len === 19; // Visa
  if (two >= 51 && two <= 55) return len === 16; // Mastercard
  if (four >= 2221 && four <= 2720) return len === 16; // Mastercard 2-series
  if (two === 34 || two === 37) return len === 15; // Amex
  if (four === 6011 || two === 65 || (three >= 644 && three <= 649)) return len >= 16 && len <= 19; // Discover
  if (four >= 3528 && four <= 3589) return len >= 16 && len <= 19; // JCB
  if (two === 36 || two === 38 || two === 39 || (three >= 300 && three <= 305)) return len >= 14 && len <= 19; // Diners
  if (two === 62) return len >= 16 && len <= 19; // UnionPay
  if (two === 50 || (two >= 56 && two <= 69)) return len >= 12 && len <= 19; // Maestro and others
  return false;
}

/**
 * US SSN range rules: area 000, 666 and 900–999 were never issued, nor group 00 or serial 0000;
 * a few numbers published in advertising (078-05-1120, 219-09-9999) are treated as not sensitive.
 */
export function ssnValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  if (a === 0 || a === 666 || a >= 900) return false;
  if (group === '00' || serial === '0000') return false;
  const whole = `${area}${group}${serial}`;
  if (whole === '078051120' || whole === '219099999' || whole === '123456789') return false;
  return true;
}

/** IBAN lengths per country (ISO 13616 registry). */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BI: 27,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DJ: 27,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FK: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MN: 20,
  MR: 27,
  MT: 31,
  MU: 30,
  NI: 28,
  NL: 18,
  NO: 15,
  OM: 23,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  RU: 33,
  SA: 24,
  SC: 31,
  SD: 18,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  SO: 23,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
  YE: 30,
};

/** ISO 7064 mod 97-10 over an IBAN (spaces ignored): the country's length and a remainder of 1. */
export function ibanValid(value: string): boolean {
  const iban = value.replace(/ /g, '').toUpperCase();
  const expected = IBAN_LENGTHS[iban.slice(0, 2)];
  if (expected === undefined || iban.length !== expected) return false;
  return mod97(iban) === 1;
}

/** The mod-97 remainder of an alphanumeric string after moving its first four characters to the end. */
export function mod97(value: string): number {
  const rearranged = value.slice(4) + value.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const code = rearranged.charCodeAt(i);
    if (code >= 48 && code <= 57) {
      remainder = (remainder * 10 + (code - 48)) % 97;
    } else if (code >= 65 && code <= 90) {
      remainder = (remainder * 100 + (code - 55)) % 97;
    } else {
      return -1;
    }
  }
  return remainder;
}

/** Shannon entropy of a string, in bits per character. */
export function shannonEntropy(value: string): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    counts.set(code, (counts.get(code) ?? 0) + 1);
  }
  let entropy = 0;
  for (const count of counts.values()) {
    const p = count / value.length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

/** Named validators a custom detector in a policy document can ask for. */
export const NAMED_VALIDATORS = {
  luhn: (match: string) => luhnValid(match),
  iban: (match: string) => ibanValid(match),
  mod97: (match: string) => mod97(match.replace(/[^A-Za-z0-9]/g, '').toUpperCase()) === 1,
} as const satisfies Record<string, (match: string) => boolean>;

export type NamedValidator = keyof typeof NAMED_VALIDATORS;
