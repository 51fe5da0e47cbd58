import { describe, expect, it } from 'vitest';
import {
  anonymousIdentity,
  composePipeline,
  composeStages,
  JsonRpcError,
  passThroughStage,
  type RequestContext,
  RpcCode,
  type RpcResult,
  STAGE_ORDER,
  type Stage,
  type StageName,
} from '../src/index.js';

function makeContext(overrides: Partial<RequestContext> = {}): RequestContext {
  return {
    session: {
      id: 'session-1',
      era: 'legacy',
      protocolVersion: '2025-11-25',
      frontTransport: 'stdio',
      clientInfo: undefined,
      remoteAddress: undefined,
    },
    identity: anonymousIdentity(),
    method: 'tools/call',
    params: { name: 'a__tool' },
    requestId: 1,
    target: undefined,
    signal: new AbortController().signal,
    agent: {
      capabilities: {},
      logLevel: undefined,
      notify: async () => undefined,
      request: async () => ({}),
    },
    receivedAt: Date.now(),
    beforeForward: [],
    annotations: new Map(),
    ...overrides,
  };
}

/** A stage that records when it is entered and left. */
function tracingStage(name: StageName, trace: string[], label: string = name): Stage {
  return {
    name,
    handle: async (_ctx, next) => {
      trace.push(`>${label}`);
      const result = await next();
      trace.push(`<${label}`);
      return result;
    },
  };
}

describe('composePipeline', () => {
  it('runs stages in STAGE_ORDER whatever order they are given in, nesting around forward', async () => {
    const trace: string[] = [];
    const shuffled: StageName[] = ['forward', 'hold', 'identify', 'transform', 'authorize', 'record'];
    const pipeline = composePipeline(
      shuffled.map((name) => tracingStage(name, trace)),
      async () => {
        trace.push('FORWARD');
        return { ok: true };
      },
    );
    const result = await pipeline(makeContext());
    expect(result).toEqual({ ok: true });
    expect(trace).toEqual([
      ...STAGE_ORDER.map((name) => `>${name}`),
      'FORWARD',
      ...[...STAGE_ORDER].reverse().map((name) => `<${name}`),
    ]);
  });

  it('keeps several stages of one slot in the order given', async () => {
    const trace: string[] = [];
    const pipeline = composePipeline(
      [
        tracingStage('authorize', trace, 'authorize-2'),
        tracingStage('identify', trace),
        tracingStage('authorize', trace, 'authorize-1'),
      ],
      async () => {
        trace.push('FORWARD');
        return {};
      },
    );
    await pipeline(makeContext());
    expect(trace).toEqual([
      '>identify',
      '>authorize-2',
      '>authorize-1',
      'FORWARD',
      '<authorize-1',
      '<authorize-2',
      '<identify',
    ]);
  });

  it('lets a stage answer without calling next (a denial), so later stages and forward never run', async () => {
    const trace: string[] = [];
    let forwarded = false;
    let hookRan = false;
    const deny: Stage = {
      name: 'authorize',
      handle: async () => {
        throw new JsonRpcError(RpcCode.InvalidParams, 'denied by policy');
      },
    };
    const pipeline = composePipeline(
      [tracingStage('record', trace), deny, tracingStage('transform', trace)],
      async () => {
        forwarded = true;
        return {};
      },
    );
    const ctx = makeContext();
    ctx.beforeForward.push(async () => {
      hookRan = true;
    });
    await expect(pipeline(ctx)).rejects.toMatchObject({ code: RpcCode.InvalidParams, message: 'denied by policy' });
    expect(forwarded).toBe(false);
    expect(hookRan).toBe(false);
    expect(trace).toEqual(['>record']);
  });

  it('lets a stage answer with its own result', async () => {
    const canned: RpcResult = { content: [{ type: 'text', text: 'held' }], isError: true };
    const pipeline = composePipeline([{ name: 'hold', handle: async () => canned }], async () => ({ forwarded: true }));
    expect(await pipeline(makeContext())).toBe(canned);
  });

  it('lets the record stage see the outcome of the decision stages', async () => {
    const seen: unknown[] = [];
    const record: Stage = {
      name: 'record',
      handle: async (_ctx, next) => {
        try {
          const result = await next();
          seen.push(result);
          return result;
        } catch (error) {
          seen.push(error);
          throw error;
        }
      },
    };
    const transform: Stage = {
      name: 'transform',
      handle: async (_ctx, next) => ({ ...(await next()), transformed: true }),
    };
    const pipeline = composePipeline([transform, record], async () => ({ raw: 1 }));
    await pipeline(makeContext());
    expect(seen).toEqual([{ raw: 1, transformed: true }]);
  });

  it('drains every beforeForward hook, in order, before forward runs', async () => {
    const trace: string[] = [];
    const record: Stage = {
      name: 'record',
      handle: (ctx, next) => {
        ctx.beforeForward.push(async () => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          trace.push('hook-1');
        });
        ctx.beforeForward.push(async () => {
          trace.push('hook-2');
        });
        return next();
      },
    };
    const hold: Stage = {
      name: 'hold',
      handle: (ctx, next) => {
        ctx.beforeForward.push(async () => {
          trace.push('hook-3');
        });
        return next();
      },
    };
    const pipeline = composePipeline([hold, record], async () => {
      trace.push('FORWARD');
      return {};
    });
    await pipeline(makeContext());
    expect(trace).toEqual(['hook-1', 'hook-2', 'hook-3', 'FORWARD']);
  });

  it('does not forward when a beforeForward hook fails', async () => {
    let forwarded = false;
    const pipeline = composePipeline([], async () => {
      forwarded = true;
      return {};
    });
    const ctx = makeContext();
    ctx.beforeForward.push(async () => {
      throw new Error('write-ahead record failed');
    });
    await expect(pipeline(ctx)).rejects.toThrow('write-ahead record failed');
    expect(forwarded).toBe(false);
  });

  it('rejects a stage that calls next twice, and forwards only once', async () => {
    let forwards = 0;
    const greedy: Stage = {
      name: 'transform',
      handle: async (_ctx, next) => {
        await next();
        return next();
      },
    };
    const pipeline = composePipeline([greedy], async () => {
      forwards++;
      return {};
    });
    await expect(pipeline(makeContext())).rejects.toThrow(/"transform" called next\(\) twice/);
    expect(forwards).toBe(1);
  });

  it('runs shared stages around the terminal each call names (composeStages)', async () => {
    const trace: string[] = [];
    const record: Stage = {
      name: 'record',
      handle: async (_ctx, next) => {
        trace.push('record');
        return next();
      },
    };
    const staged = composeStages([record]);
    expect(await staged(makeContext(), async () => ({ from: 'a' }))).toEqual({ from: 'a' });
    expect(await staged(makeContext(), async () => ({ from: 'b' }))).toEqual({ from: 'b' });
    expect(trace).toEqual(['record', 'record']);
  });

  it('turns a terminal that throws synchronously into a rejection, with or without stages', async () => {
    const throwing = (): Promise<RpcResult> => {
      throw new Error('terminal threw');
    };
    const empty = composePipeline([], throwing)(makeContext());
    expect(empty).toBeInstanceOf(Promise);
    await expect(empty).rejects.toThrow('terminal threw');
    await expect(composePipeline([passThroughStage('hold')], throwing)(makeContext())).rejects.toThrow(
      'terminal threw',
    );
  });

  it('passes through with no stages and with pass-through stages', async () => {
    const ctx = makeContext();
    const answer: RpcResult = { answer: 42 };
    let seenCtx: RequestContext | undefined;
    const forward = async (received: RequestContext): Promise<RpcResult> => {
      seenCtx = received;
      return answer;
    };
    expect(await composePipeline([], forward)(ctx)).toBe(answer);
    expect(seenCtx).toBe(ctx);
    const all = STAGE_ORDER.map((name) => passThroughStage(name));
    expect(all.map((stage) => stage.name)).toEqual([...STAGE_ORDER]);
    expect(await composePipeline(all, forward)(ctx)).toBe(answer);
  });

  it('lets identify set the identity that later stages see', async () => {
    let subject: string | undefined;
    const identify: Stage = {
      name: 'identify',
      handle: (ctx, next) => {
        ctx.identity = { subject: 'alice', groups: ['dev'], authMethod: 'api-key', claims: {} };
        return next();
      },
    };
    const authorize: Stage = {
      name: 'authorize',
      handle: (ctx, next) => {
        subject = ctx.identity.subject;
        return next();
      },
    };
    await composePipeline([authorize, identify], async () => ({}))(makeContext());
    expect(subject).toBe('alice');
  });
});
