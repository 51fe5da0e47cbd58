import { createHmac, randomBytes } from 'node:crypto';

export const REDACTION_ACTIONS = ['mask', 'partial', 'hash', 'drop'] as const;
export type RedactionAction = (typeof REDACTION_ACTIONS)[number];

/** How strongly an action hides a value; when several rules disagree, the strongest wins. */
export const ACTION_STRENGTH: Readonly<Record<RedactionAction, number>> = { partial: 1, hash: 2, mask: 3, drop: 4 };

export function strongerAction(a: RedactionAction, b: RedactionAction): RedactionAction {
  return ACTION_STRENGTH[a] >= ACTION_STRENGTH[b] ? a : b;
}

/** Values shorter than this (in letters and digits) are masked instead of partially shown. */
const PARTIAL_MIN_LENGTH = 8;

/**
 * Renders redacted values. Strings stay strings and numbers stay numbers, so a redacted field keeps
 * its JSON type:
 * - mask:    `[REDACTED:<type>]`; number → 0; boolean → false
 * - partial: `[REDACTED:<type>:****1234]` (last 4 letters/digits, separators ignored; values with
 *            fewer than 8 are masked); number → its last 4 digits; boolean → false
 * - hash:    `[HASH:<type>:<16 hex>]`, the first 64 bits of HMAC-SHA256(key, value), so equal values
 *            correlate without being revealed; number → the first 31 bits of the same HMAC; boolean → false
 * - drop:    '' inside text (the surrounding text stays); fields are removed by the caller
 */
export class ValueRenderer {
  readonly #key: Uint8Array;

  constructor(hashKey?: string | Uint8Array) {
    this.#key =
      hashKey === undefined ? randomBytes(32) : typeof hashKey === 'string' ? Buffer.from(hashKey, 'utf8') : hashKey;
    if (this.#key.length < 16) throw new Error('redaction hash key must be at least 16 bytes');
  }

  hmacHex(value: string): string {
    return createHmac('sha256', this.#key).update(value, 'utf8').digest('hex');
  }

  text(action: RedactionAction, type: string, value: string): string {
    switch (action) {
      case 'mask':
        return `[REDACTED:${type}]`;
      case 'partial': {
        const alnum = value.replace(/[^\p{L}\p{N}]/gu, '');
        if (alnum.length < PARTIAL_MIN_LENGTH) return `[REDACTED:${type}]`;
        return `[REDACTED:${type}:****${alnum.slice(-4)}]`;
      }
      case 'hash':
        return `[HASH:${type}:${this.hmacHex(value).slice(0, 16)}]`;
      case 'drop':
        return '';
    }
  }

  number(action: RedactionAction, value: number): number {
    switch (action) {
      case 'partial': {
        const digits = String(Math.trunc(Math.abs(value)));
        return digits.length < PARTIAL_MIN_LENGTH ? 0 : Number(digits.slice(-4));
      }
      case 'hash':
        return Number.parseInt(this.hmacHex(String(value)).slice(0, 8), 16) & 0x7fffffff;
      default:
        return 0;
    }
  }
}
