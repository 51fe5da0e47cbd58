import { createHmac } from 'node:crypto';
import {
  composePipeline,
  configuredIdentity,
  JsonRpcError,
  type ProtocolEra,
  type RequestContext,
  type RpcParams,
  type RpcResult,
} from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import {
  CONFIRM_INPUT_KEY,
  CONFIRMATION_ANNOTATION,
  type ConfirmState,
  type ConfirmStateCodec,
  confirmMessage,
  createAuthorizeStage,
  createConfirmStage,
  DECISION_ANNOTATION,
  type Decision,
  loadPolicy,
  summarizeArguments,
} from '../src/index.js';

const policy = loadPolicy(
  `
version: 1
default: { action: allow }
rules:
  - name: ask-deletes
    match: { tool: delete_file }
    action: confirm
    confirm: { otherwise: deny }
  - name: ask-moves
    match: { tool: move_file }
    action: confirm
    confirm: { message: "really {name}: {args}?", otherwise: approve }
    approve: { reviewers: { groups: [sre] } }
`,
  'policy.yaml',
);

/** A test codec: HMAC-signed JSON, as the gateway's (which lives in @portcullis/gateway). */
function testCodec(): ConfirmStateCodec {
  const sign = (body: string) => createHmac('sha256', 'k'.repeat(32)).update(body).digest('base64url');
  return {
    owns: (state): state is string => typeof state === 'string' && state.startsWith('pcc1.'),
    mint: async (payload) => {
      const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
      return `pcc1.${body}.${sign(body)}`;
    },
    open: async (state) => {
      const [, body = '', mac] = state.split('.');
      if (mac !== sign(body)) throw new Error('mac');
      return JSON.parse(Buffer.from(body, 'base64url').toString()) as ConfirmState;
    },
  };
}

interface Harness {
  readonly ctx: RequestContext;
  readonly asked: RpcParams[];
  forwarded: RpcParams | undefined;
  held: boolean;
}

function harness(
  tool: string,
  params: RpcParams,
  options: { era?: ProtocolEra; capabilities?: Record<string, unknown>; answer?: RpcResult | Error } = {},
): Harness {
  const asked: RpcParams[] = [];
  const h: Harness = {
    asked,
    forwarded: undefined,
    held: false,
    ctx: {
      session: {
        id: 's1',
        era: options.era ?? 'legacy',
        protocolVersion: options.era === 'modern' ? '2026-07-28' : '2025-11-25',
        frontTransport: 'stdio',
        clientInfo: undefined,
        remoteAddress: undefined,
      },
      identity: configuredIdentity('alice', ['dev']),
      method: 'tools/call',
      params: { name: `fs__${tool}`, ...params },
      requestId: 1,
      target: { upstream: 'fs', originalName: tool, namespacedName: `fs__${tool}` },
      signal: new AbortController().signal,
      agent: {
        capabilities: options.capabilities ?? { elicitation: {} },
        logLevel: undefined,
        notify: async () => {},
        request: async (_method, p) => {
          asked.push(p);
          const answer = options.answer ?? { action: 'accept', content: { confirm: true } };
          if (answer instanceof Error) throw answer;
          return answer;
        },
      },
      receivedAt: Date.now(),
      beforeForward: [],
      annotations: new Map(),
    },
  };
  return h;
}

const state = testCodec();

async function run(h: Harness): Promise<RpcResult> {
  const hold = {
    name: 'hold' as const,
    handle: async (_ctx: RequestContext, next: () => Promise<RpcResult>) => {
      h.held = true;
      return next();
    },
  };
  const pipeline = composePipeline(
    [createAuthorizeStage({ policy: () => policy, pending: 'next' }), createConfirmStage({ state }), hold],
    async (ctx) => {
      h.forwarded = { ...ctx.params };
      return { content: [{ type: 'text', text: 'done' }] };
    },
  );
  return pipeline(h.ctx);
}

const decisionOf = (h: Harness) => h.ctx.annotations.get(DECISION_ANNOTATION) as Decision & { confirmation?: unknown };
const text = (result: RpcResult) => (result.content as Array<{ text: string }>)[0]?.text ?? '';

describe('confirm message', () => {
  it('names the tool and the key arguments, clipped', () => {
    const noTemplate = { confirm: null } as unknown as Decision;
    const message = confirmMessage(noTemplate, 'fs__delete_file', { path: '/tmp/a', recursive: true });
    expect(message).toBe('allow fs__delete_file with path="/tmp/a", recursive=true?');
    const long = summarizeArguments({ text: 'x'.repeat(500), more: 1, other: 'y'.repeat(300), last: 'z'.repeat(300) });
    expect(long.length).toBeLessThanOrEqual(240);
    expect(long).toContain('…');
  });
});

describe('confirm stage, 2025 era', () => {
  it('forwards when the user accepts, and records only the answer', async () => {
    const h = harness('delete_file', { arguments: { path: '/tmp/a' } });
    const result = await run(h);
    expect(text(result)).toBe('done');
    expect(h.asked[0]?.message).toBe('allow fs__delete_file with path="/tmp/a"?');
    expect(h.asked[0]?.requestedSchema).toMatchObject({ properties: { confirm: { type: 'boolean' } } });
    expect(h.ctx.annotations.get(CONFIRMATION_ANNOTATION)).toEqual({ answer: 'accepted', era: 'legacy' });
    expect(decisionOf(h).confirmation).toEqual({ answer: 'accepted', era: 'legacy' });
    expect(h.held).toBe(true); // passed on to the hold slot, released
  });

  it.each([
    [{ action: 'decline' }, 'declined'],
    [{ action: 'cancel' }, 'cancelled'],
    [{ action: 'accept', content: { confirm: false } }, 'declined'],
  ])('refuses with a tool error when the user answers %j', async (answer, word) => {
    const h = harness('delete_file', { arguments: { path: '/tmp/a' } }, { answer });
    const result = await run(h);
    expect(result.isError).toBe(true);
    expect(text(result)).toContain(`the user ${word}`);
    expect(h.forwarded).toBeUndefined();
  });

  it('fails closed when the elicitation fails or the answer is malformed', async () => {
    const failed = harness('delete_file', { arguments: {} }, { answer: new Error('boom') });
    expect((await run(failed)).isError).toBe(true);
    expect(failed.forwarded).toBeUndefined();
    const odd = harness('delete_file', { arguments: {} }, { answer: { nothing: true } });
    expect((await run(odd)).isError).toBe(true);
    expect(odd.forwarded).toBeUndefined();
  });

  it('fills the rule message', async () => {
    const h = harness('move_file', { arguments: { from: 'a' } });
    await run(h);
    expect(h.asked[0]?.message).toBe('really fs__move_file: from="a"?');
  });

  it('without elicitation: otherwise deny denies, otherwise approve goes to the hold stage', async () => {
    const denied = harness('delete_file', { arguments: {} }, { capabilities: {} });
    const result = await run(denied);
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('confirmation is impossible');
    expect(denied.held).toBe(false);
    const url = harness('delete_file', { arguments: {} }, { capabilities: { elicitation: { url: {} } } });
    expect((await run(url)).isError).toBe(true);
    const held = harness('move_file', { arguments: {} }, { capabilities: {} });
    await run(held).catch(() => undefined); // the fake hold does not release: the guard refuses forwarding
    expect(held.held).toBe(true);
    expect(held.asked).toHaveLength(0);
    expect(held.forwarded).toBeUndefined();
  });
});

describe('confirm stage, 2026 era', () => {
  const modern = { era: 'modern' as const, capabilities: { elicitation: { form: {} } } };

  async function firstRound(args: Record<string, unknown>) {
    const h = harness('delete_file', { arguments: args }, modern);
    const result = await run(h);
    expect(result.resultType).toBe('input_required');
    expect(h.forwarded).toBeUndefined();
    const request = (result.inputRequests as Record<string, { method: string; params: RpcParams }>)[CONFIRM_INPUT_KEY];
    expect(request?.method).toBe('elicitation/create');
    expect(request?.params.message).toBe(`allow fs__delete_file with path=${JSON.stringify(args.path)}?`);
    return result.requestState as string;
  }

  it('asks with input_required, and forwards the identical retry once accepted (state stripped)', async () => {
    const requestState = await firstRound({ path: '/tmp/a' });
    const retry = harness(
      'delete_file',
      {
        arguments: { path: '/tmp/a' },
        requestState,
        inputResponses: { [CONFIRM_INPUT_KEY]: { action: 'accept', content: { confirm: true } } },
      },
      modern,
    );
    expect(text(await run(retry))).toBe('done');
    expect(retry.forwarded).toEqual({ name: 'fs__delete_file', arguments: { path: '/tmp/a' } });
    expect(decisionOf(retry).confirmation).toEqual({ answer: 'accepted', era: 'modern' });
  });

  it('refuses a declined retry with a tool error', async () => {
    const requestState = await firstRound({ path: '/tmp/b' });
    const retry = harness(
      'delete_file',
      { arguments: { path: '/tmp/b' }, requestState, inputResponses: { [CONFIRM_INPUT_KEY]: { action: 'decline' } } },
      modern,
    );
    const result = await run(retry);
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('the user declined');
  });

  it('refuses a retry for other arguments, and a forged state', async () => {
    const requestState = await firstRound({ path: '/tmp/c' });
    const accept = { [CONFIRM_INPUT_KEY]: { action: 'accept', content: { confirm: true } } };
    const other = harness('delete_file', { arguments: { path: '/etc' }, requestState, inputResponses: accept }, modern);
    await expect(run(other)).rejects.toBeInstanceOf(JsonRpcError);
    expect(other.forwarded).toBeUndefined();
    const forged = harness(
      'delete_file',
      { arguments: { path: '/tmp/c' }, requestState: `${requestState}x`, inputResponses: accept },
      modern,
    );
    await expect(run(forged)).rejects.toThrow(/requestState/);
    expect(forged.forwarded).toBeUndefined();
  });
});
