import type { UpstreamConfig } from '@portcullis/config';
import { describe, expect, it } from 'vitest';
import { definitionFromFlags } from '../src/commands/upstream.js';
import { redactUpstreamConfig, unredactUpstreamConfig } from '../src/upstream-admin.js';

describe('upstream definition flags', () => {
  it('marks an upstream as a sandbox, keeps the mark on set, and clears it with --not-sandbox', () => {
    const added = definitionFromFlags({ url: 'http://127.0.0.1:9/mcp', sandbox: true }, undefined);
    expect(added).toMatchObject({ transport: 'streamable-http', url: 'http://127.0.0.1:9/mcp', sandbox: true });
    const kept = definitionFromFlags({ era: 'legacy' }, added as UpstreamConfig);
    expect(kept).toMatchObject({ sandbox: true, era: 'legacy' });
    const cleared = definitionFromFlags({ notSandbox: true }, kept as UpstreamConfig);
    expect(cleared).not.toHaveProperty('sandbox');
  });

  it('refuses --sandbox together with --not-sandbox', () => {
    expect(() =>
      definitionFromFlags({ url: 'http://127.0.0.1:9/mcp', sandbox: true, notSandbox: true }, undefined),
    ).toThrow('--sandbox and --not-sandbox exclude each other');
  });
});

describe('upstream set --unset-env / --unset-header', () => {
  const stdio = definitionFromFlags({ stdio: 'node server.js', env: { A: '1', B: 'env:B' } }, undefined);
  const http = definitionFromFlags({ url: 'http://127.0.0.1:9/mcp', header: { 'X-A': 'a', 'X-B': 'b' } }, undefined);

  it('removes the named entries and keeps the rest', () => {
    expect(definitionFromFlags({ unsetEnv: ['B'] }, stdio)).toMatchObject({ env: { A: '1' } });
    expect(definitionFromFlags({ unsetHeader: ['X-A', 'X-B'] }, http)).toMatchObject({ headers: {} });
  });

  it('refuses a key the upstream does not have, one also being set, and the wrong transport', () => {
    expect(() => definitionFromFlags({ unsetEnv: ['NOPE'] }, stdio)).toThrow(
      '--unset-env NOPE: the upstream has no such key',
    );
    expect(() => definitionFromFlags({ unsetEnv: ['A'], env: { A: '2' } }, stdio)).toThrow('also being set');
    expect(() => definitionFromFlags({ unsetHeader: ['X-A'] }, stdio)).toThrow('are for HTTP upstreams');
    expect(() => definitionFromFlags({ unsetEnv: ['A'] }, http)).toThrow('are for stdio upstreams');
  });
});

describe('a definition edited from its redacted form', () => {
  it('takes the stored value for [redacted] and for the redacted URL; names a [redacted] with none stored', () => {
    const stored = definitionFromFlags(
      { url: 'https://user:pw@example.test/mcp', header: { Authorization: 'Bearer s3cr3t', Accept: 'x' } },
      undefined,
    );
    const edited = definitionFromFlags({ header: { Accept: 'y' } }, redactUpstreamConfig(stored));
    expect(unredactUpstreamConfig(edited, stored)).toEqual({
      config: { ...stored, headers: { Authorization: 'Bearer s3cr3t', Accept: 'y' } },
      missing: [],
    });
    const added = definitionFromFlags({ header: { 'X-Token': '[redacted]' } }, stored);
    expect(unredactUpstreamConfig(added, stored).missing).toEqual(['header X-Token']);
  });
});
