import type { UpstreamConfig } from '@portcullis/config';
import { describe, expect, it } from 'vitest';
import { definitionFromFlags } from '../src/commands/upstream.js';

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
