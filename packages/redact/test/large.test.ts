import { describe, expect, it } from 'vitest';
import { CHUNK_SIZE, compileCustomPattern, Redactor, TimeBudget } from '../src/index.js';

const subject = { upstream: 'u', kind: 'tool' as const, name: 't' };
const redactor = new Redactor({ rules: [{ name: 'd', detectors: 'default' }], hashKey: 'large-test-key-0123456789' });

function corpus(bytes: number): string {
  const line = 'the request was processed by upstream service id=12345678 took 123ms v1.2.34 status ok\n';
  return line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes);
}

describe('large results', () => {
  it('redacts a multi-MB text in chunks without blocking the event loop for long', async () => {
    const filler = corpus(6 * 1024 * 1024);
    const pem = `-----BEGIN PRIVATE KEY-----\n${'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n'.repeat(200)}-----END PRIVATE KEY-----`;
    // Secrets at chunk boundaries, a PEM block longer than the chunk overlap straddling one, and at the end.
    const at = (n: number) => n * CHUNK_SIZE - 8;
    const text =
      filler.slice(0, at(1)) +
      ' alice@example.com ' +
      filler.slice(at(1), at(3)) +
      ' 4111 1111 1111 1111 ' +
      filler.slice(at(3), at(5) - 3000) +
      `\n${pem}\n` +
      filler.slice(at(5) - 3000) +
      ' bob@example.org';
    let ticks = 0;
    let longest = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      ticks++;
    }, 1);
    const budget = new TimeBudget(8);
    const { value, summary } = await redactor.redactResult(
      'tools/call',
      { content: [{ type: 'text', text }] },
      subject,
      { budget },
    );
    clearInterval(timer);
    const out = value.content[0]!.text as string;
    expect(summary.byType).toEqual({ email: 2, card: 1, 'pem-private-key': 1 });
    expect(out).not.toContain('alice@');
    expect(out).not.toContain('bob@');
    expect(out).not.toContain('MIIEvQ');
    expect(out.length).toBeLessThan(text.length);
    expect(budget.yields).toBeGreaterThan(2);
    expect(ticks).toBeGreaterThan(2);
    // Generous bound (a slice is 8 ms of work, but CI machines are loaded); the yields above are the real check.
    expect(longest).toBeLessThan(1000);
  });

  it('redacts a multi-MB structuredContent with many leaves, yielding', async () => {
    const rows = Array.from({ length: 40_000 }, (_, i) => ({
      id: i,
      email: `user${i}@example.com`,
      note: 'x'.repeat(40),
    }));
    const budget = new TimeBudget(8);
    const { value, summary } = await redactor.redactResult(
      'tools/call',
      { content: [], structuredContent: { rows } },
      subject,
      {
        budget,
      },
    );
    expect(summary.byType).toEqual({ email: 40_000 });
    expect(summary.entries.length).toBeLessThanOrEqual(500);
    expect(summary.truncated).toBe(true);
    expect((value.structuredContent as { rows: { email: string }[] }).rows[39_999]!.email).toBe('[REDACTED:email]');
    expect(budget.yields).toBeGreaterThan(0);
  });
});

describe('custom patterns cannot hang the gateway', () => {
  it('runs catastrophic-backtracking patterns in linear time (re2js)', async () => {
    const patterns = ['(a+)+$', '(a|aa)+$', '(a|a?)+b', '(x+x+)+y', '([a-z]+)*@'];
    const redactors = patterns.map(
      (pattern, i) =>
        new Redactor({ rules: [{ name: `evil-${i}`, custom: [{ id: 'evil', pattern }] }], hashKey: 'k'.repeat(16) }),
    );
    const text = `${'a'.repeat(20_000)}!${'x'.repeat(20_000)}`;
    for (const r of redactors) {
      const started = performance.now();
      await r.redactResult('tools/call', { content: [{ type: 'text', text }] }, subject);
      expect(performance.now() - started).toBeLessThan(3000);
    }
    // The same input with a backtracking engine would not finish: (a+)+$ on 30 a's and a "!" already takes seconds.
  });

  it('rejects what RE2 cannot run in linear time, and empty-matching patterns', () => {
    expect(() => compileCustomPattern('(a)\\1')).toThrow(/backreferences/);
    expect(() => compileCustomPattern('(?=a)')).toThrow();
    expect(() => compileCustomPattern('a?')).toThrow(/empty string/);
    expect(() => compileCustomPattern('x'.repeat(1001))).toThrow(/longer than/);
    expect(() => compileCustomPattern('(?:[a-z]{1,100}){1,100}')).toThrow();
  });
});
