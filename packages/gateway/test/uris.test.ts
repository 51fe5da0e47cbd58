import { describe, expect, it } from 'vitest';
import { rewriteListedUris, rewriteOutboundParams, rewriteResultUris } from '../src/index.js';

describe('rewriteListedUris', () => {
  it('prefixes resource URIs and templates, keeping everything else', () => {
    const resource = { uri: 'file:///notes.txt', name: 'notes', mimeType: 'text/plain' };
    expect(rewriteListedUris(resource, 'fs')).toEqual({
      uri: 'fs+file:///notes.txt',
      name: 'notes',
      mimeType: 'text/plain',
    });
    expect(resource.uri).toBe('file:///notes.txt');
    expect(rewriteListedUris({ uriTemplate: 'test://template/{id}/data', name: 't' }, 'fx')).toEqual({
      uriTemplate: 'fx+test://template/{id}/data',
      name: 't',
    });
  });

  it('passes the same object through without a prefix', () => {
    const resource = { uri: 'file:///notes.txt' };
    expect(rewriteListedUris(resource, undefined)).toBe(resource);
  });
});

describe('rewriteResultUris', () => {
  it('rewrites resource_link and embedded resource blocks of a tool result', () => {
    const result = {
      content: [
        { type: 'text', text: 'see file:///a.txt' },
        { type: 'resource_link', uri: 'file:///a.txt', name: 'a' },
        { type: 'resource', resource: { uri: 'test://embedded', text: 'x', mimeType: 'text/plain' } },
      ],
      structuredContent: { uri: 'file:///a.txt' },
      isError: false,
    };
    expect(rewriteResultUris('tools/call', result, 'fs')).toEqual({
      content: [
        { type: 'text', text: 'see file:///a.txt' },
        { type: 'resource_link', uri: 'fs+file:///a.txt', name: 'a' },
        { type: 'resource', resource: { uri: 'fs+test://embedded', text: 'x', mimeType: 'text/plain' } },
      ],
      structuredContent: { uri: 'file:///a.txt' },
      isError: false,
    });
    // The upstream's object is not mutated.
    expect(result.content[1]).toEqual({ type: 'resource_link', uri: 'file:///a.txt', name: 'a' });
  });

  it('rewrites the contents of resources/read', () => {
    const result = { contents: [{ uri: 'test://static-text', text: 'hi' }, { uri: 'test://b', blob: 'AA==' }, 'odd'] };
    expect(rewriteResultUris('resources/read', result, 'fx')).toEqual({
      contents: [{ uri: 'fx+test://static-text', text: 'hi' }, { uri: 'fx+test://b', blob: 'AA==' }, 'odd'],
    });
  });

  it('rewrites resource blocks inside prompts/get messages, single or arrays', () => {
    const result = {
      description: 'd',
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: 'test://r', text: 't' } } },
        { role: 'assistant', content: [{ type: 'resource_link', uri: 'test://l', name: 'l' }] },
        { role: 'user', content: { type: 'text', text: 'plain' } },
      ],
    };
    expect(rewriteResultUris('prompts/get', result, 'p')).toEqual({
      description: 'd',
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: 'p+test://r', text: 't' } } },
        { role: 'assistant', content: [{ type: 'resource_link', uri: 'p+test://l', name: 'l' }] },
        { role: 'user', content: { type: 'text', text: 'plain' } },
      ],
    });
  });

  it('leaves other methods and unprefixed upstreams alone (same object)', () => {
    const result = { content: [{ type: 'resource_link', uri: 'file:///a', name: 'a' }] };
    expect(rewriteResultUris('tools/call', result, undefined)).toBe(result);
    const completion = { completion: { values: ['file:///a'] } };
    expect(rewriteResultUris('completion/complete', completion, 'fs')).toBe(completion);
  });
});

describe('rewriteOutboundParams', () => {
  it('rewrites resources in sampling messages', () => {
    const params = {
      maxTokens: 10,
      messages: [{ role: 'user', content: { type: 'resource', resource: { uri: 'file:///ctx.md', text: 'ctx' } } }],
    };
    expect(rewriteOutboundParams('sampling/createMessage', params, 'fs')).toEqual({
      maxTokens: 10,
      messages: [{ role: 'user', content: { type: 'resource', resource: { uri: 'fs+file:///ctx.md', text: 'ctx' } } }],
    });
  });

  it('rewrites the URI of resources/updated', () => {
    expect(rewriteOutboundParams('notifications/resources/updated', { uri: 'test://watched' }, 'fx')).toEqual({
      uri: 'fx+test://watched',
    });
  });

  it('passes the same object through without a prefix or for other methods', () => {
    const params = { uri: 'test://watched' };
    expect(rewriteOutboundParams('notifications/resources/updated', params, undefined)).toBe(params);
    const log = { level: 'info', data: 'file:///a' };
    expect(rewriteOutboundParams('notifications/message', log, 'fs')).toBe(log);
  });
});
