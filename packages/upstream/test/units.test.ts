import { describe, expect, it } from 'vitest';
import { backoffDelay, EraVerdictCache } from '../src/index.js';
import { httpSpec, stdioSpec } from './support/peers.js';

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the ceiling, jittered into [50 %, 100 %]', () => {
    for (let failures = 1; failures <= 12; failures++) {
      const base = Math.min(30_000, 250 * 2 ** (failures - 1));
      const delay = backoffDelay(failures);
      expect(delay).toBeGreaterThanOrEqual(base / 2);
      expect(delay).toBeLessThanOrEqual(base);
    }
  });
});

describe('EraVerdictCache', () => {
  it('keys verdicts by upstream and target, and expires them', () => {
    let now = 0;
    const cache = new EraVerdictCache({ ttlMs: 1_000, now: () => now });
    const spec = httpSpec('remote', 'http://127.0.0.1:1/mcp');
    cache.set(spec, { kind: 'legacy' });
    expect(cache.get(spec)).toEqual({ kind: 'legacy' });
    expect(cache.get(httpSpec('remote', 'http://127.0.0.1:2/mcp'))).toBeUndefined();
    now = 1_000;
    expect(cache.get(spec)).toBeUndefined();
    cache.set(stdioSpec('local'), { kind: 'legacy' });
    cache.deleteUpstream('local');
    expect(cache.size).toBe(0);
  });
});
