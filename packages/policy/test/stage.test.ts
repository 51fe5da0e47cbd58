import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  anonymousIdentity,
  composePipeline,
  configuredIdentity,
  type Identity,
  JsonRpcError,
  type RequestContext,
  type RouteTarget,
  type RpcParams,
  type RpcResult,
  type Stage,
} from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import {
  type AuthorizeStageOptions,
  type CompiledPolicy,
  createAuthorizeStage,
  DECISION_ANNOTATION,
  type Decision,
  HOLD_RELEASED_ANNOTATION,
  loadPolicy,
  POLICY_DENIED_CODE,
} from '../src/index.js';

const policy = loadPolicy(
  readFileSync(fileURLToPath(new URL('fixtures/policy.yaml', import.meta.url)), 'utf8'),
  'policy.yaml',
);

const alice = configuredIdentity('alice', ['dev']);
const carol = configuredIdentity('carol', ['contractors', 'dev']);

function context(
  method: string,
  params: RpcParams,
  target: RouteTarget | undefined,
  identity: Identity = alice,
): RequestContext {
  return {
    session: {
      id: 's1',
      era: 'legacy',
      protocolVersion: '2025-11-25',
      frontTransport: 'stdio',
      clientInfo: undefined,
      remoteAddress: undefined,
    },
    identity,
    method,
    params,
    requestId: 1,
    target,
    signal: new AbortController().signal,
    agent: {
      capabilities: {},
      logLevel: undefined,
      notify: async () => {},
      request: async () => ({}),
    },
    receivedAt: Date.now(),
    beforeForward: [],
    annotations: new Map(),
  };
}

/** A fake forward: answers unknown targets like the gateway's, echoes the rest. */
function fakeForward(calls: RequestContext[]) {
  return async (ctx: RequestContext): Promise<RpcResult> => {
    calls.push(ctx);
    if (ctx.method === 'tools/list') {
      return {
        tools: [
          { name: 'fs__read_file' },
          { name: 'fs__secret_keys' },
          { name: 'git__status' },
          { name: 'mystery__tool' },
        ],
      };
    }
    if (ctx.target === undefined && ctx.method === 'tools/call') {
      throw new JsonRpcError(-32602, `Unknown tool: ${String(ctx.params.name)}`);
    }
    return { content: [{ type: 'text', text: `forwarded ${String(ctx.params.name ?? ctx.params.uri)}` }] };
  };
}

const fsTool = (name: string, spelled = `fs__${name}`): RouteTarget => ({
  upstream: 'fs',
  originalName: name,
  namespacedName: spelled,
});

function pipeline(options: Partial<AuthorizeStageOptions> = {}, extra: Stage[] = []) {
  const calls: RequestContext[] = [];
  const stage = createAuthorizeStage({ policy: () => policy, ...options });
  const run = composePipeline([stage, ...extra], fakeForward(calls));
  return { run, calls, stage };
}

async function rejection(promise: Promise<unknown>): Promise<JsonRpcError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof JsonRpcError) return error;
    throw error;
  }
  throw new Error('expected a JSON-RPC error');
}

describe('the authorize stage in a composed pipeline', () => {
  it('is named authorize and passes allowed calls, leaving the decision in the annotations', async () => {
    const { run, calls, stage } = pipeline();
    expect(stage.name).toBe('authorize');
    const ctx = context('tools/call', { name: 'fs__list_dir', arguments: {} }, fsTool('list_dir'));
    await expect(run(ctx)).resolves.toEqual({ content: [{ type: 'text', text: 'forwarded fs__list_dir' }] });
    expect(calls).toHaveLength(1);
    expect(ctx.annotations.get(DECISION_ANNOTATION)).toMatchObject({ decision: 'allow', rule: 'allow-dev-fs' });
  });

  it('answers a denied tool call with a tool error carrying the reason, without forwarding', async () => {
    const { run, calls } = pipeline();
    const ctx = context(
      'tools/call',
      { name: 'FS__WRITE_FILE', arguments: { path: '/etc/passwd' } },
      fsTool('write_file', 'fs__write_file'),
    );
    await expect(run(ctx)).resolves.toEqual({
      content: [{ type: 'text', text: 'writing under /etc is not allowed' }],
      isError: true,
    });
    expect(calls).toHaveLength(0);
  });

  it('a condition error denies (fail closed) and is recorded in the decision', async () => {
    const { run, calls } = pipeline();
    const ctx = context('tools/call', { name: 'fs__write_file', arguments: { path: '/tmp' } }, fsTool('write_file'));
    const result = await run(ctx);
    expect(result.isError).toBe(true);
    expect(calls).toHaveLength(0);
    const decision = ctx.annotations.get(DECISION_ANNOTATION) as Decision;
    expect(decision.errors).toEqual([{ rule: 'block-etc', error: 'No such key: query' }]);
  });

  it('answers a denied prompt with a JSON-RPC error carrying the reason', async () => {
    const { run } = pipeline();
    const error = await rejection(
      run(
        context(
          'prompts/get',
          { name: 'git__deploy_prod' },
          { upstream: 'git', originalName: 'deploy_prod', namespacedName: 'git__deploy_prod' },
        ),
      ),
    );
    expect(error.toJSON()).toEqual({
      code: POLICY_DENIED_CODE,
      message: 'deploy prompts are for release managers',
      data: { reason: 'deploy prompts are for release managers' },
    });
  });

  it('answers a hidden tool exactly like an unknown one', async () => {
    const { run, calls } = pipeline();
    const hidden = await rejection(
      run(context('tools/call', { name: 'fs__secret_keys' }, fsTool('secret_keys'), carol)),
    );
    const unknown = await rejection(run(context('tools/call', { name: 'fs__secret_keys' }, undefined, carol)));
    expect(hidden.toJSON()).toEqual({ code: -32602, message: 'Unknown tool: fs__secret_keys' });
    expect(hidden.toJSON()).toEqual(unknown.toJSON());
    // Only the unknown one reached forward.
    expect(calls).toHaveLength(1);
  });

  it('answers a hidden resource like a missing one', async () => {
    const { run } = pipeline();
    const uri = 'fs+file:///private/key';
    const error = await rejection(
      run(
        context(
          'resources/read',
          { uri },
          { upstream: 'fs', originalName: 'file:///private/key', namespacedName: uri },
        ),
      ),
    );
    expect(error.toJSON()).toEqual({ code: -32002, message: `Resource not found: ${uri}`, data: { uri } });
  });

  it('passes requests without a target on to forward (unknown names stay unknown)', async () => {
    const { run, calls } = pipeline();
    const ctx = context('tools/call', { name: 'fs.write_file', arguments: { path: '/etc/passwd' } }, undefined);
    await expect(run(ctx)).rejects.toThrow('Unknown tool: fs.write_file');
    expect(calls).toHaveLength(1);
    expect(ctx.annotations.has(DECISION_ANNOTATION)).toBe(false);
  });

  it('filters list results when it can resolve the items', async () => {
    const { run } = pipeline({
      resolveListItem: (kind, name) => {
        const [upstream, own] = name.split('__');
        if (upstream === 'mystery' || upstream === undefined || own === undefined) return undefined;
        return { kind, upstream, name: own, namespacedName: name };
      },
    });
    const forCarol = await run(context('tools/list', {}, undefined, carol));
    expect(forCarol.tools).toEqual([{ name: 'fs__read_file' }, { name: 'git__status' }]);
    const forAlice = await run(context('tools/list', {}, undefined, alice));
    expect(forAlice.tools).toEqual([{ name: 'fs__read_file' }, { name: 'fs__secret_keys' }, { name: 'git__status' }]);
  });

  it('refuses approve and confirm by default, saying holds are not available', async () => {
    const { run, calls } = pipeline();
    const ctx = context(
      'tools/call',
      { name: 'fs__delete_file', arguments: { path: '/tmp/a' } },
      fsTool('delete_file'),
    );
    const result = await run(ctx);
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text: 'denied: policy rule "approve-deletes" requires a reviewer\'s approval, and approval holds are not available on this gateway',
        },
      ],
      isError: true,
    });
    expect(calls).toHaveLength(0);
    expect(ctx.annotations.get(DECISION_ANNOTATION)).toMatchObject({ decision: 'approve', rule: 'approve-deletes' });
  });

  it("hands approve to a hold stage with pending: 'next', and refuses to forward unless the hold is released", async () => {
    const released: Stage = {
      name: 'hold',
      handle: (ctx, next) => {
        const decision = ctx.annotations.get(DECISION_ANNOTATION) as Decision;
        if (decision.decision === 'approve') ctx.annotations.set(HOLD_RELEASED_ANNOTATION, true);
        return next();
      },
    };
    const withHold = pipeline({ pending: 'next' }, [released]);
    const ctx = context('tools/call', { name: 'fs__delete_file', arguments: {} }, fsTool('delete_file'));
    await expect(withHold.run(ctx)).resolves.toMatchObject({ content: [{ text: 'forwarded fs__delete_file' }] });

    const noHold = pipeline({ pending: 'next' });
    await expect(
      noHold.run(context('tools/call', { name: 'fs__delete_file', arguments: {} }, fsTool('delete_file'))),
    ).rejects.toThrow(/without a released hold/);
    expect(noHold.calls).toHaveLength(0);
  });

  it('lets the caller decide pending calls with a function', async () => {
    const seen: Decision[] = [];
    const { run } = pipeline({
      pending: async (_ctx, decision) => {
        seen.push(decision);
        return { content: [{ type: 'text', text: `held for ${decision.decision}` }], isError: true };
      },
    });
    const result = await run(context('tools/call', { name: 'fs__move_file', arguments: {} }, fsTool('move_file')));
    expect(result).toMatchObject({ content: [{ text: 'held for confirm' }] });
    expect(seen[0]).toMatchObject({ decision: 'confirm', rule: 'confirm-moves', confirm: { otherwise: 'deny' } });
  });

  it('fails closed when the policy cannot be read', async () => {
    const calls: RequestContext[] = [];
    const broken = createAuthorizeStage({
      policy: (): CompiledPolicy => {
        throw new Error('store unreachable');
      },
    });
    const run = composePipeline([broken], fakeForward(calls));
    const ctx = context('tools/call', { name: 'fs__list_dir' }, fsTool('list_dir'), anonymousIdentity());
    await expect(run(ctx)).resolves.toEqual({
      content: [{ type: 'text', text: 'denied: the policy could not be evaluated' }],
      isError: true,
    });
    expect(calls).toHaveLength(0);
    expect(ctx.annotations.get(DECISION_ANNOTATION)).toMatchObject({
      basis: 'error',
      policyVersion: 'unavailable',
      errors: [{ rule: '', error: 'store unreachable' }],
    });
  });

  it('picks up a new policy version at once', async () => {
    let current = policy;
    const calls: RequestContext[] = [];
    const run = composePipeline([createAuthorizeStage({ policy: () => current })], fakeForward(calls));
    const call = () =>
      run(
        context(
          'tools/call',
          { name: 'git__status' },
          { upstream: 'git', originalName: 'status', namespacedName: 'git__status' },
        ),
      );
    await expect(call()).resolves.toMatchObject({ isError: true });
    current = loadPolicy('default: {action: allow}', 'v2.yaml', { version: 'v2' });
    await expect(call()).resolves.toMatchObject({ content: [{ text: 'forwarded git__status' }] });
  });
});
