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

/**
 * The storable form of a value as canonical JSON text, in one pass: what
 * `canonicalJson(toStorableJson(value))` returns (`toJSON` applied, `undefined`/functions dropped,
 * non-finite numbers as `null`, U+0000 replaced with U+FFFD, keys sorted), without the
 * stringify–parse round trip. The text is what the event row stores and what its hash covers.
 */
export function storableCanonicalJson(value: unknown): string {
  return writeStorable(value ?? null) ?? 'null';
}

function writeStorable(input: unknown): string | undefined {
  let value = input;
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.includes('\u0000') ? value.replaceAll('\u0000', '\ufffd') : value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'bigint':
      // As JSON.stringify does.
      throw new TypeError('Do not know how to serialize a BigInt');
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += writeStorable(value[i]) ?? 'null';
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  // Keys are compared after the U+0000 replacement, as the parsed storable form would be.
  const entries: Array<[string, unknown]> = keys.map((key) => [
    key.includes('\u0000') ? key.replaceAll('\u0000', '\ufffd') : key,
    record[key],
  ]);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let out = '{';
  let first = true;
  for (const [key, member] of entries) {
    const text = writeStorable(member);
    if (text === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(key)}:${text}`;
  }
  return `${out}}`;
}

/**
 * `chainHash(prevHash, content)` for content whose payload is already canonical text (from
 * `storableCanonicalJson`): the same bytes are hashed, the payload is not walked again.
 */
export function chainHashWithPayloadText(
  prevHash: string,
  content: Omit<HashedEventContent, 'payload'>,
  payloadText: string,
): string {
  // Members in canonical (sorted) key order; every member is present (null when absent).
  const text =
    `{"direction":${JSON.stringify(content.direction)},"kind":${JSON.stringify(content.kind)}` +
    `,"latencyMs":${canonicalJson(content.latencyMs)},"method":${canonicalJson(content.method)}` +
    `,"occurredAt":${JSON.stringify(content.occurredAt)},"payload":${payloadText}` +
    `,"rpcId":${canonicalJson(content.rpcId)},"seq":${canonicalJson(content.seq)}` +
    `,"sessionId":${JSON.stringify(content.sessionId)},"sizeBytes":${canonicalJson(content.sizeBytes)}` +
    `,"upstream":${canonicalJson(content.upstream)}}`;
  return createHash('sha256').update(prevHash).update(text).digest('hex');
}
