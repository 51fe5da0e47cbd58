import {
  type AgentChannel,
  anonymousIdentity,
  composePipeline,
  configuredIdentity,
  JsonRpcError,
  type RequestContext,
  type RpcResult,
} from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import {
  createOutboundRedaction,
  createRedactStage,
  REDACTED_ARGS_ANNOTATION,
  REDACTION_SUMMARY_ANNOTATION,
  type RedactedArguments,
  type RedactionSummary,
  Redactor,
} from '../src/index.js';

const EMAIL = 'alice@example.com';

const agent: AgentChannel = {
  capabilities: {},
  logLevel: undefined,
  notify: async () => {},
  request: async () => ({}),
};

function context(method: string, params: Record<string, unknown>, groups: string[] = []): RequestContext {
  return {
    session: {
      id: 's1',
      era: 'legacy',
      protocolVersion: '2025-11-25',
      frontTransport: 'stdio',
      clientInfo: undefined,
      remoteAddress: undefined,
    },
    identity: groups.length > 0 ? configuredIdentity('sam', groups) : anonymousIdentity(),
    method,
    params,
    requestId: 1,
    target:
      method === 'tools/list' ? undefined : { upstream: 'crm', originalName: 'lookup', namespacedName: 'crm__lookup' },
    signal: new AbortController().signal,
    agent,
    receivedAt: Date.now(),
    beforeForward: [],
    annotations: new Map(),
  };
}

const redactor = new Redactor({
  hashKey: 'stage-test-key-0123456789',
  rules: [
    { name: 'emails', detectors: ['email'], except: { groups: ['support'] } },
    { name: 'crm-args', match: { tools: ['crm__*'] }, args: true, fields: [{ path: '$.password' }] },
  ],
});

describe('createRedactStage', () => {
  it('is the transform stage: redacts the result, writes the summary, leaves the forwarded params alone', async () => {
    const seen: unknown[] = [];
    const forward = async (ctx: RequestContext): Promise<RpcResult> => {
      seen.push(structuredClone(ctx.params));
      return { content: [{ type: 'text', text: `found ${EMAIL}` }], structuredContent: { email: EMAIL } };
    };
    const stage = createRedactStage({
      redactor,
      outputSchemaOf: () => ({ type: 'object', properties: { email: { type: 'string', format: 'email' } } }),
    });
    expect(stage.name).toBe('transform');
    const ctx = context('tools/call', { name: 'crm__lookup', arguments: { q: EMAIL, password: 'hunter2' } });
    const result = await composePipeline([stage], forward)(ctx);
    expect(result).toEqual({
      content: [{ type: 'text', text: 'found [REDACTED:email]' }],
      structuredContent: { email: 'redacted@redacted.invalid' },
    });
    expect(seen).toEqual([{ name: 'crm__lookup', arguments: { q: EMAIL, password: 'hunter2' } }]);
    const summary = ctx.annotations.get(REDACTION_SUMMARY_ANNOTATION) as RedactionSummary;
    expect(summary.byType).toEqual({ email: 2 });
    const args = ctx.annotations.get(REDACTED_ARGS_ANNOTATION) as RedactedArguments;
    expect(args.arguments).toEqual({ q: '[REDACTED:email]', password: '[REDACTED:password]' });
    expect(args.summary.total).toBe(2);
  });

  it('follows identity: the support group sees e-mail addresses', async () => {
    const forward = async (): Promise<RpcResult> => ({ content: [{ type: 'text', text: EMAIL }] });
    const ctx = context('tools/call', { name: 'crm__lookup' }, ['support']);
    const result = await composePipeline([createRedactStage({ redactor })], forward)(ctx);
    expect(result).toEqual({ content: [{ type: 'text', text: EMAIL }] });
  });

  it('passes requests the gateway answers itself (no target) untouched', async () => {
    const list = { tools: [{ name: 'x', description: EMAIL }] };
    const ctx = context('tools/list', {});
    const result = await composePipeline([createRedactStage({ redactor })], async () => list)(ctx);
    expect(result).toBe(list);
    expect(ctx.annotations.size).toBe(0);
  });

  it('redacts resources/read and prompts/get results', async () => {
    const stage = createRedactStage({ redactor });
    const read = await composePipeline([stage], async () => ({
      contents: [{ uri: 'test://x', mimeType: 'text/plain', text: EMAIL }],
    }))(context('resources/read', { uri: 'crm+test://x' }));
    expect(read).toEqual({ contents: [{ uri: 'test://x', mimeType: 'text/plain', text: '[REDACTED:email]' }] });
    const prompt = await composePipeline([stage], async () => ({
      messages: [{ role: 'user', content: { type: 'text', text: EMAIL } }],
    }))(context('prompts/get', { name: 'crm__p' }));
    expect(prompt).toEqual({ messages: [{ role: 'user', content: { type: 'text', text: '[REDACTED:email]' } }] });
  });
});

describe('createOutboundRedaction', () => {
  const outbound = createOutboundRedaction(redactor);

  it('redacts notifications with the related request when known', async () => {
    const related = context('tools/call', { name: 'crm__lookup' }, ['support']);
    const out = await outbound({
      method: 'notifications/message',
      params: { level: 'info', data: { user: EMAIL, password: 'x' } },
      upstream: 'crm',
      related,
    });
    // support sees e-mail; the crm-args rule's field rule applies to the logging data document.
    expect(out.params).toEqual({ level: 'info', data: { user: EMAIL, password: '[REDACTED:password]' } });
  });

  it('fails closed without a related request: target-specific rules apply', async () => {
    const out = await outbound({
      method: 'notifications/message',
      params: { level: 'info', data: { user: EMAIL, password: 'x' } },
      upstream: 'crm',
      identity: anonymousIdentity(),
    });
    expect(out.params).toEqual({ level: 'info', data: { user: '[REDACTED:email]', password: '[REDACTED:password]' } });
    expect(out.summary.total).toBe(2);
  });
});

describe('the redact stage and upstream errors', () => {
  it('redacts the message and data of a JSON-RPC error an upstream answers with', async () => {
    const stage = createRedactStage({ redactor });
    const pipeline = composePipeline([stage], async () => {
      throw new JsonRpcError(-32000, `no such customer ${EMAIL}`, { contact: EMAIL });
    });
    const error = await pipeline(context('tools/call', { name: 'crm__lookup', arguments: {} })).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(JsonRpcError);
    const rpc = error as JsonRpcError;
    expect(rpc.code).toBe(-32000);
    expect(rpc.message).toBe('no such customer [REDACTED:email]');
    expect(JSON.stringify(rpc.data)).not.toContain(EMAIL);
    expect(rpc.cause).toBeUndefined();
  });
});
