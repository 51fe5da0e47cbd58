import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { type FixtureHttpServer, startFixtureHttp } from '@portcullis/fixture-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_KEYS, Redactor } from '../src/index.js';

/**
 * Every content type the conformance fixture returns, redacted for real: with the default detectors
 * the clean fixture comes back unchanged (no false positives), and with a custom detector that
 * matches every word, no word is left anywhere but in protocol fields and binary data.
 */

let fixture: FixtureHttpServer;
let client: Client;
const results: { method: string; kind: 'tool' | 'resource' | 'prompt'; result: Record<string, unknown> }[] = [];

const TOOLS = [
  'test_simple_text',
  'test_image_content',
  'test_audio_content',
  'test_embedded_resource',
  'test_multiple_content_types',
  'test_error_handling',
];

beforeAll(async () => {
  fixture = await startFixtureHttp({ host: '127.0.0.1', port: 0, name: 'fixture', watchedIntervalMs: 0 });
  client = new Client({ name: 'redact-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(fixture.url)));
  for (const name of TOOLS) {
    results.push({
      method: 'tools/call',
      kind: 'tool',
      result: (await client.callTool({ name, arguments: {} })) as Record<string, unknown>,
    });
  }
  results.push({
    method: 'tools/call',
    kind: 'tool',
    result: (await client.callTool({
      name: 'fixture_echo',
      arguments: { message: 'hello world', nested: { word: 'secretive' } },
    })) as Record<string, unknown>,
  });
  for (const uri of [
    'test://static-text',
    'test://static-binary',
    'test://template/42/data',
    'test://watched-resource',
  ]) {
    results.push({
      method: 'resources/read',
      kind: 'resource',
      result: (await client.readResource({ uri })) as Record<string, unknown>,
    });
  }
  for (const [name, args] of [
    ['test_simple_prompt', {}],
    ['test_prompt_with_arguments', { arg1: 'alpha', arg2: 'beta' }],
    ['test_prompt_with_embedded_resource', { resourceUri: 'test://static-text' }],
    ['test_prompt_with_image', {}],
  ] as const) {
    results.push({
      method: 'prompts/get',
      kind: 'prompt',
      result: (await client.getPrompt({ name, arguments: args })) as Record<string, unknown>,
    });
  }
}, 60_000);

afterAll(async () => {
  await client?.close();
  await fixture?.close();
});

/** Strings outside protocol fields and binary payloads, with their locations. */
function dataStrings(value: unknown, path = '$', out: [string, string][] = []): [string, string][] {
  if (typeof value === 'string') out.push([path, value]);
  else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) dataStrings(value[i], `${path}[${i}]`, out);
  } else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const binary = (record.type === 'image' || record.type === 'audio') && typeof record.data === 'string';
    for (const [key, child] of Object.entries(record)) {
      if (PROTOCOL_KEYS.has(key) || (binary && key === 'data')) continue;
      if (key === 'blob' && !/^text\/|json/.test(String(record.mimeType))) continue;
      dataStrings(
        key === 'blob' ? Buffer.from(child as string, 'base64').toString('utf8') : child,
        `${path}.${key}`,
        out,
      );
    }
  }
  return out;
}

/** Binary payloads, URIs and MIME types: what redaction must never change. */
function untouchable(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) untouchable(item, out);
  else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(record)) {
      if (typeof child === 'string') {
        const binary = key === 'data' && (record.type === 'image' || record.type === 'audio');
        const binaryBlob = key === 'blob' && !/^text\/|json/.test(String(record.mimeType));
        if (binary || binaryBlob || key === 'uri' || key === 'mimeType') out.push(`${key}=${child}`);
      } else untouchable(child, out);
    }
  }
  return out;
}

describe('the conformance fixture, redacted', () => {
  it('covers text, image, audio, embedded resources, structuredContent, blobs and prompt messages', () => {
    const types = new Set(JSON.stringify(results).match(/"type":"[a-z_]+"/g));
    for (const type of ['text', 'image', 'audio', 'resource']) expect(types).toContain(`"type":"${type}"`);
    expect(JSON.stringify(results)).toContain('"blob"');
    expect(JSON.stringify(results)).toContain('"structuredContent"');
  });

  it('comes back unchanged with the default detectors (no false positives)', async () => {
    const redactor = new Redactor({ rules: [{ name: 'd', detectors: 'default' }], hashKey: 'fixture-key-0123456789' });
    for (const { method, kind, result } of results) {
      const { value, summary } = await redactor.redactResult(method, result, { upstream: 'fixture', kind, name: 'x' });
      expect(summary.total, JSON.stringify(summary.entries)).toBe(0);
      expect(value).toBe(result);
    }
  });

  it('leaves no word in any data field when every word is a secret; binary data is untouched', async () => {
    const redactor = new Redactor({
      rules: [{ name: 'words', custom: [{ id: 'word', pattern: '[A-Za-z]{3,}' }] }],
      hashKey: 'fixture-key-0123456789',
    });
    for (const { method, kind, result } of results) {
      const { value, summary } = await redactor.redactResult(method, result, { upstream: 'fixture', kind, name: 'x' });
      for (const [path, text] of dataStrings(value)) {
        expect(text.replace(/\[REDACTED:word\]/g, ''), `${method} ${path}`).not.toMatch(/[A-Za-z]{3,}/);
      }
      const hadWords = dataStrings(result).some(([, text]) => /[A-Za-z]{3,}/.test(text));
      expect(summary.total > 0).toBe(hadWords);
      // Binary payloads, URIs and MIME types are exactly as the fixture sent them.
      expect(untouchable(value)).toEqual(untouchable(result));
    }
  });
});
