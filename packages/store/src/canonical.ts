import { createHash } from 'node:crypto';

/** The `prev_hash` of a session's first event. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined` members dropped (as
 * JSON does). Two values that are equal as JSON serialise to the same string, whichever order their
 * keys were built in and whichever database returned them.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    if (member === undefined || typeof member === 'function') continue;
    members.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
  }
  return `{${members.join(',')}}`;
}

/**
 * Makes a value storable as jsonb without changing what it means: Postgres rejects the NUL
 * character in jsonb strings, so it is replaced with U+FFFD (in keys and values). Everything else is
 * the plain JSON data model (`toJSON` applied, `undefined` and functions dropped).
 */
export function toStorableJson(value: unknown): unknown {
  const text = JSON.stringify(value ?? null);
  const parsed: unknown = JSON.parse(text);
  return text.includes('\\u0000') ? replaceNul(parsed) : parsed;
}

function replaceNul(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll('\u0000', '\ufffd');
  if (Array.isArray(value)) return value.map(replaceNul);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) out[replaceNul(key) as string] = replaceNul(member);
    return out;
  }
  return value;
}

/** The fields of an event that its hash covers. */
export interface HashedEventContent {
  readonly sessionId: string;
  readonly seq: number;
  readonly occurredAt: string;
  readonly direction: string;
  readonly kind: string;
  readonly method: string | null;
  readonly rpcId: string | null;
  readonly upstream: string | null;
  readonly payload: unknown;
  readonly sizeBytes: number;
  readonly latencyMs: number | null;
}

/** `sha256(prev_hash || canonical(content))`, hex. */
export function chainHash(prevHash: string, content: HashedEventContent): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(content)).digest('hex');
}
