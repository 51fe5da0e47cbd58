import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  chainHash,
  chainHashWithPayloadText,
  GENESIS_HASH,
  type HashedEventContent,
  storableCanonicalJson,
  toStorableJson,
} from '../src/canonical.js';

const samples: unknown[] = [
  null,
  undefined,
  0,
  -1.5e-7,
  Number.NaN,
  'plain',
  'nul\u0000inside',
  '\u2028 and "quotes" \\ ',
  [1, undefined, () => 1, null, { b: 1, a: [{}] }],
  { z: 1, a: undefined, m: { y: 'x', b: [true, false] }, '': 'empty key', 'k\u0000': 'nul key' },
  { when: new Date(0), nested: { toJSON: () => ({ replaced: true }) } },
  {
    jsonrpc: '2.0',
    id: 7,
    result: { content: [{ type: 'text', text: 'héllo 👋' }], structuredContent: { n: 1 }, isError: false },
  },
];

describe('one-pass canonical storable JSON', () => {
  it.each(samples.map((sample, i) => [i, sample]))(
    'sample %i: the same text as canonical(toStorable(x))',
    (_, sample) => {
      expect(storableCanonicalJson(sample)).toBe(canonicalJson(toStorableJson(sample)));
    },
  );

  it('hashes the same bytes as chainHash over the parsed payload', () => {
    for (const sample of samples) {
      const payloadText = storableCanonicalJson(sample);
      const content: Omit<HashedEventContent, 'payload'> = {
        sessionId: 's-1',
        seq: 3,
        occurredAt: new Date(1_700_000_000_000).toISOString(),
        direction: 'to_agent',
        kind: 'response',
        method: 'tools/call',
        rpcId: '"abc"',
        upstream: null,
        sizeBytes: Buffer.byteLength(payloadText),
        latencyMs: 1.25,
      };
      expect(chainHashWithPayloadText(GENESIS_HASH, content, payloadText)).toBe(
        chainHash(GENESIS_HASH, { ...content, payload: JSON.parse(payloadText) }),
      );
    }
  });
});
