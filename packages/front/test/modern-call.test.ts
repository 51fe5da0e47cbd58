import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, upstreamSpecs } from '@portcullis/config';
import { JsonRpcError, type RequestContext, RpcCode, type Stage } from '@portcullis/core';
import { Gateway, providerFromPool } from '@portcullis/gateway';
import { StaticUpstreamRegistry, UpstreamPool } from '@portcullis/upstream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpFront, serveGatewayOverHttp } from '../src/index.js';

/**
 * Parity of the HTTP front's own 2026-era `tools/call` path (`serveModernToolCall`) with the SDK's
 * per-request handler: one gateway over the real fixture (a child process speaking both eras over
 * HTTP), two fronts on it (`modernFastPath` on and off), the same raw requests sent to both.
 *
 * Which path answered is told by the framing of a JSON answer: the fast path writes the body in
 * one piece with `Content-Length`, the SDK's web-Response bridge streams it chunked. SSE answers
 * look the same on both paths (same headers, same `event: message` framing), so for them only the
 * parity is checked.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURE_BIN = join(ROOT, 'packages/fixture/dist/bin.js');
const VERSION = '2026-07-28';
const silent = pino({ level: 'silent' });

let fixture: ChildProcess | undefined;
let pool: UpstreamPool | undefined;
let gateway: Gateway | undefined;
let fastFront: HttpFront | undefined;
let sdkFront: HttpFront | undefined;
/** What the pipeline's `record` slot saw, request by request. */
const seen: RequestContext[] = [];

async function startFixture(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FIXTURE_BIN, '--http', '--port', '0', '--name', 'parity'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    const url = await new Promise<string>((done, fail) => {
      let output = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match?.[1]) done(match[1]);
      });
      child.once('exit', (code) => fail(new Error(`the fixture exited with ${code}: ${output}`)));
      setTimeout(() => fail(new Error(`the fixture did not start: ${output}`)), 10_000).unref();
    });
    return { child, url };
  } catch (error) {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    throw error;
  }
}

beforeAll(async () => {
  const started = await startFixture();
  fixture = started.child;
  const config = parseConfig(
    JSON.stringify({
      upstreams: {
        fx: { transport: 'streamable-http', url: started.url, healthCheckIntervalMs: 0, requestTimeoutMs: 10_000 },
      },
    }),
    'modern-call-test.json',
  );
  const upstreams = new UpstreamPool(new StaticUpstreamRegistry(upstreamSpecs(config)), { logger: silent });
  pool = upstreams;
  upstreams.start();
  await Promise.all(upstreams.names().map((name) => upstreams.primary(name).ready()));
  // Records what the pipeline sees; `arguments.fail` makes it fail the request the way a stage can.
  const record: Stage = {
    name: 'record',
    handle: (ctx, next) => {
      seen.push(ctx);
      const fail = (ctx.params.arguments as { fail?: unknown } | undefined)?.fail;
      if (fail === 'audit') {
        throw new JsonRpcError(RpcCode.AuditUnavailable, 'the session log cannot record', { store: 'down' });
      }
      if (fail === 'not-found') throw new JsonRpcError(RpcCode.ResourceNotFound, 'no such thing');
      if (fail === 'crash') throw new Error('a stage crashed');
      return next();
    },
  };
  gateway = new Gateway({ config, provider: providerFromPool(pool), logger: silent, stages: [record] });
  const server = { ...config.server, host: '127.0.0.1', port: 0 };
  fastFront = await serveGatewayOverHttp(gateway, { server, logger: silent, anonymous: true, modernFastPath: true });
  sdkFront = await serveGatewayOverHttp(gateway, { server, logger: silent, anonymous: true, modernFastPath: false });
  // The fast path serves only tools the caller's scope has listed: each front lists once.
  for (const front of [fastFront, sdkFront]) {
    const listed = await send(front, headersFor('tools/list'), {
      jsonrpc: '2.0',
      id: 0,
      method: 'tools/list',
      params: { _meta: envelope() },
    });
    expect(listed.status).toBe(200);
  }
});

afterAll(async () => {
  try {
    await Promise.allSettled([fastFront?.close(), sdkFront?.close()]);
    await gateway?.close();
    await pool?.close();
  } finally {
    const child = fixture;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child.once('exit', done));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  }
});

function fronts(): { fast: HttpFront; sdk: HttpFront; gw: Gateway } {
  if (!fastFront || !sdkFront || !gateway) throw new Error('the fronts did not start');
  return { fast: fastFront, sdk: sdkFront, gw: gateway };
}

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  /** How the body was framed: `length` (Content-Length) or `chunked`. */
  readonly framing: 'length' | 'chunked';
  /** The lines of an SSE body that are not `data:` lines (event names, ids, blank separators). */
  readonly sseFraming: string[];
  /** The JSON body, or the `data:` messages of an SSE body, in order. */
  readonly messages: unknown[];
}

async function send(
  front: HttpFront,
  headers: Record<string, string>,
  body: unknown,
  signal?: AbortSignal,
): Promise<Answer> {
  const response = await fetch(`${front.url}/mcp`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  const text = await response.text();
  const contentType = response.headers.get('content-type');
  const framing = response.headers.get('content-length') === null ? 'chunked' : 'length';
  if (contentType?.startsWith('text/event-stream')) {
    const lines = text.split('\n');
    return {
      status: response.status,
      contentType,
      framing,
      sseFraming: lines.filter((line) => !line.startsWith('data:')),
      messages: lines.filter((line) => line.startsWith('data:')).map((line) => JSON.parse(line.slice(5)) as unknown),
    };
  }
  return {
    status: response.status,
    contentType,
    framing,
    sseFraming: [],
    messages: text === '' ? [] : [JSON.parse(text) as unknown],
  };
}

function headersFor(method: string, name?: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': VERSION,
    'mcp-method': method,
    ...(name === undefined ? {} : { 'mcp-name': name }),
    ...extra,
  };
}

function envelope(
  capabilities: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': VERSION,
    'io.modelcontextprotocol/clientInfo': { name: 'parity-agent', version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': capabilities,
    ...extra,
  };
}

function call(
  id: string | number,
  name: string,
  args: Record<string, unknown> | undefined,
  meta: Record<string, unknown> = envelope(),
  extraParams: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, ...(args === undefined ? {} : { arguments: args }), _meta: meta, ...extraParams },
  };
}

/**
 * Values that legitimately differ between two runs of the same request: the upstream's signed
 * `requestState` (it carries an expiry in seconds), and the id the gateway gives the upstream request
 * (the fixture's progress tool echoes its progress token, which the gateway sets to that id).
 */
function normalise(value: unknown, key?: string): unknown {
  if (typeof value === 'string') {
    if (key === 'requestState') return '<requestState>';
    return /^pc-\d+$/.test(value) ? '<upstream request id>' : value;
  }
  if (Array.isArray(value)) return value.map((item) => normalise(item));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v, k)]));
  }
  return value;
}

/** What the pipeline saw of a request, without what is per-session (its id) or per-moment. */
function pipelineView(ctx: RequestContext): unknown {
  const { id: _id, ...session } = ctx.session;
  return normalise({
    session,
    identity: ctx.identity,
    method: ctx.method,
    params: ctx.params,
    requestId: ctx.requestId,
    target: ctx.target,
    capabilities: ctx.agent.capabilities,
    logLevel: ctx.agent.logLevel,
  });
}

interface Pair {
  readonly fast: Answer;
  readonly sdk: Answer;
  readonly fastSeen: unknown[];
  readonly sdkSeen: unknown[];
}

/** Sends the same request to both fronts (fast path first), one after the other. */
async function both(headers: Record<string, string>, body: unknown): Promise<Pair> {
  const { fast, sdk } = fronts();
  seen.length = 0;
  const fastAnswer = await send(fast, headers, body);
  const fastSeen = seen.splice(0).map(pipelineView);
  const sdkAnswer = await send(sdk, headers, body);
  const sdkSeen = seen.splice(0).map(pipelineView);
  return { fast: fastAnswer, sdk: sdkAnswer, fastSeen, sdkSeen };
}

function wire(answer: Answer): unknown {
  return {
    status: answer.status,
    contentType: answer.contentType,
    sseFraming: answer.sseFraming,
    messages: normalise(answer.messages),
  };
}

/** Same status, content type, SSE framing and messages; the pipeline saw the same request. */
function expectParity(pair: Pair): void {
  expect(wire(pair.fast)).toEqual(wire(pair.sdk));
  expect(pair.fastSeen).toEqual(pair.sdkSeen);
}

/** The fast path answered (JSON written in one piece) and the SDK front did not take it. */
function expectFastPath(pair: Pair): void {
  expect(pair.fast.contentType).toBe('application/json');
  expect(pair.fast.framing).toBe('length');
  expect(pair.sdk.framing).toBe('chunked');
}

/** Both fronts answered through the SDK (a JSON answer streamed by its web-Response bridge). */
function expectSdkPath(pair: Pair): void {
  expect(pair.fast.framing).toBe('chunked');
  expect(pair.sdk.framing).toBe('chunked');
}

function resultOf(answer: Answer): Record<string, unknown> {
  const last = answer.messages.at(-1) as { result?: Record<string, unknown> } | undefined;
  if (!last?.result) throw new Error(`no result in ${JSON.stringify(answer.messages)}`);
  return last.result;
}

const ECHO = 'fx__fixture_echo';

/**
 * The gateway's session count once the sessions of answered requests have closed (they close just
 * after the answer; see the Mcp-Param-* case below for ones that never do).
 */
async function settledSessionCount(gw: Gateway): Promise<number> {
  let count = gw.sessionCount;
  for (let stable = 0; stable < 5; ) {
    await new Promise((done) => setTimeout(done, 10));
    stable = gw.sessionCount === count ? stable + 1 : 0;
    count = gw.sessionCount;
  }
  return count;
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

describe('2026-era tools/call: fast path vs SDK handler', () => {
  it('fixture_echo with an integer id', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(7, ECHO, { hello: 'world', n: 1 }));
    expectParity(pair);
    expectFastPath(pair);
    expect(pair.fast.messages).toEqual([
      {
        jsonrpc: '2.0',
        id: 7,
        result: {
          content: [{ type: 'text', text: '{"hello":"world","n":1}' }],
          structuredContent: { hello: 'world', n: 1 },
          resultType: 'complete',
          _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'portcullis', version: '0.1.0' } },
        },
      },
    ]);
    expect(pair.fastSeen).toHaveLength(1);
  });

  it('fixture_echo with a string id', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call('req-1', ECHO, { s: 'x' }));
    expectParity(pair);
    expectFastPath(pair);
    expect((pair.fast.messages[0] as { id: unknown }).id).toBe('req-1');
  });

  it('a call without arguments', async () => {
    const pair = await both(
      headersFor('tools/call', 'fx__test_simple_text'),
      call(8, 'fx__test_simple_text', undefined),
    );
    expectParity(pair);
    expectFastPath(pair);
  });

  it('clientInfo with a title (a key the fast path accepts)', async () => {
    const meta = envelope();
    meta['io.modelcontextprotocol/clientInfo'] = { name: 'parity-agent', version: '1.0.0', title: 'Parity' };
    const pair = await both(headersFor('tools/call', ECHO), call(9, ECHO, { a: 1 }, meta));
    expectParity(pair);
    expectFastPath(pair);
  });

  it('a tool result with isError (test_error_handling)', async () => {
    const name = 'fx__test_error_handling';
    const pair = await both(headersFor('tools/call', name), call(10, name, {}));
    expectParity(pair);
    expectFastPath(pair);
    expect(resultOf(pair.fast).isError).toBe(true);
  });

  it('invalid arguments for a listed tool (fixture_slow with a string ms)', async () => {
    const name = 'fx__fixture_slow';
    const pair = await both(headersFor('tools/call', name), call(11, name, { ms: 'soon' }));
    expectParity(pair);
    expectFastPath(pair);
  });

  it('an unknown tool', async () => {
    const name = 'fx__no_such_tool';
    const pair = await both(headersFor('tools/call', name), call(12, name, {}));
    expectParity(pair);
    // Not listed: the fast path leaves it to the SDK.
    expectSdkPath(pair);
    expect((pair.sdk.messages[0] as { error?: unknown }).error).toBeDefined();
  });

  it('input_required: test_elicitation with the elicitation capability', async () => {
    const name = 'fx__test_elicitation';
    const pair = await both(
      headersFor('tools/call', name),
      call(13, name, { message: 'Your name?' }, envelope({ elicitation: {} })),
    );
    expectParity(pair);
    expectFastPath(pair);
    expect(resultOf(pair.fast).resultType).toBe('input_required');
  });

  it('input_required: test_sampling with the sampling capability', async () => {
    const name = 'fx__test_sampling';
    const pair = await both(
      headersFor('tools/call', name),
      call(14, name, { prompt: 'Say hi' }, envelope({ sampling: {} })),
    );
    expectParity(pair);
    expectFastPath(pair);
    expect(resultOf(pair.fast).resultType).toBe('input_required');
  });

  it('input_required without the capability declared (test_missing_capability)', async () => {
    const name = 'fx__test_missing_capability';
    const pair = await both(headersFor('tools/call', name), call(15, name, {}));
    expectParity(pair);
    expectFastPath(pair);
  });

  it('a requestState retry round of test_elicitation: the final results agree', async () => {
    const { fast, sdk } = fronts();
    const name = 'fx__test_elicitation';
    const first = await both(
      headersFor('tools/call', name),
      call(16, name, { message: 'Your name?' }, envelope({ elicitation: {} })),
    );
    expectParity(first);
    const finals: Answer[] = [];
    for (const [front, answer] of [
      [fast, first.fast],
      [sdk, first.sdk],
    ] as const) {
      const asked = resultOf(answer);
      const [key] = Object.keys(asked.inputRequests as Record<string, unknown>);
      const retry = call(17, name, { message: 'Your name?' }, envelope({ elicitation: {} }), {
        inputResponses: { [String(key)]: { action: 'accept', content: { response: 'Ada' } } },
        ...(typeof asked.requestState === 'string' ? { requestState: asked.requestState } : {}),
      });
      finals.push(await send(front, headersFor('tools/call', name), retry));
    }
    const [fastFinal, sdkFinal] = finals as [Answer, Answer];
    expect(wire(fastFinal)).toEqual(wire(sdkFinal));
    // Retry material is left to the SDK.
    expect(fastFinal.framing).toBe('chunked');
    expect(resultOf(fastFinal).content).toEqual([
      { type: 'text', text: 'User response: action=accept, content={"response":"Ada"}' },
    ]);
  });

  it('a requestState retry round of a tool that signs its state (test_input_required_result_request_state)', async () => {
    const { fast, sdk } = fronts();
    const name = 'fx__test_input_required_result_request_state';
    const first = await both(headersFor('tools/call', name), call(18, name, {}, envelope({ elicitation: {} })));
    expectParity(first);
    expectFastPath(first);
    const finals: Answer[] = [];
    for (const [front, answer] of [
      [fast, first.fast],
      [sdk, first.sdk],
    ] as const) {
      const asked = resultOf(answer);
      expect(typeof asked.requestState).toBe('string');
      const retry = call(19, name, {}, envelope({ elicitation: {} }), {
        inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
        requestState: asked.requestState,
      });
      finals.push(await send(front, headersFor('tools/call', name), retry));
    }
    const [fastFinal, sdkFinal] = finals as [Answer, Answer];
    expect(wire(fastFinal)).toEqual(wire(sdkFinal));
    expect(resultOf(fastFinal).content).toEqual([{ type: 'text', text: 'state-ok: requestState validated (ok=true)' }]);
  });

  it('progress with _meta.progressToken: the notifications, then the result, on an SSE stream', async () => {
    const name = 'fx__test_tool_with_progress';
    const pair = await both(
      headersFor('tools/call', name),
      call(20, name, {}, envelope({}, { progressToken: 'tok-1' })),
    );
    expectParity(pair);
    expect(pair.fast.contentType).toBe('text/event-stream');
    expect(pair.fast.messages.map((message) => (message as { method?: string }).method ?? 'result')).toEqual([
      'notifications/progress',
      'notifications/progress',
      'notifications/progress',
      'result',
    ]);
  });

  it('progress with an integer progressToken', async () => {
    const name = 'fx__test_tool_with_progress';
    const pair = await both(headersFor('tools/call', name), call(21, name, {}, envelope({}, { progressToken: 5 })));
    expectParity(pair);
    expect(pair.fast.contentType).toBe('text/event-stream');
  });

  it('logging with io.modelcontextprotocol/logLevel', async () => {
    const name = 'fx__test_tool_with_logging';
    const pair = await both(
      headersFor('tools/call', name),
      call(22, name, {}, envelope({}, { 'io.modelcontextprotocol/logLevel': 'info' })),
    );
    expectParity(pair);
    expect(pair.fast.contentType).toBe('text/event-stream');
    expect(
      pair.fast.messages.filter((message) => (message as { method?: string }).method === 'notifications/message'),
    ).toHaveLength(3);
  });

  it('logging with a level above what the tool logs (no notifications)', async () => {
    const name = 'fx__test_tool_with_logging';
    const pair = await both(
      headersFor('tools/call', name),
      call(23, name, {}, envelope({}, { 'io.modelcontextprotocol/logLevel': 'error' })),
    );
    expectParity(pair);
  });

  it('an x-mcp-header tool with the right Mcp-Param-Region header', async () => {
    const name = 'fx__test_custom_headers';
    const pair = await both(
      headersFor('tools/call', name, { 'mcp-param-region': 'eu-west' }),
      call(24, name, { region: 'eu-west' }),
    );
    expectParity(pair);
    expectSdkPath(pair);
    expect(resultOf(pair.fast).content).toEqual([{ type: 'text', text: 'region=eu-west' }]);
  });

  it('an x-mcp-header tool with a wrong Mcp-Param-Region header', async () => {
    const name = 'fx__test_custom_headers';
    const pair = await both(
      headersFor('tools/call', name, { 'mcp-param-region': 'us-east' }),
      call(25, name, { region: 'eu-west' }),
    );
    expectParity(pair);
    expectSdkPath(pair);
    expect(pair.fast.status).toBe(400);
  });

  it('an x-mcp-header tool without its Mcp-Param-Region header', async () => {
    const name = 'fx__test_custom_headers';
    const pair = await both(headersFor('tools/call', name), call(26, name, { region: 'eu-west' }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('a call refused for its Mcp-Param-* header leaves no gateway session behind (SDK path)', async () => {
    const { sdk, gw } = fronts();
    const name = 'fx__test_custom_headers';
    const before = await settledSessionCount(gw);
    const refused = await send(
      sdk,
      headersFor('tools/call', name, { 'mcp-param-region': 'x' }),
      call(49, name, { region: 'y' }),
    );
    expect(refused.status).toBe(400);
    expect(await settledSessionCount(gw)).toBe(before);
  });

  it('an Mcp-Param-* header on a tool that declares none', async () => {
    const pair = await both(headersFor('tools/call', ECHO, { 'mcp-param-region': 'eu' }), call(27, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('Mcp-Name disagreeing with the body', async () => {
    const pair = await both(headersFor('tools/call', 'fx__test_simple_text'), call(28, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('Mcp-Method disagreeing with the body', async () => {
    const pair = await both(headersFor('tools/list', ECHO), call(29, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('no MCP-Protocol-Version header', async () => {
    const headers = headersFor('tools/call', ECHO);
    delete headers['mcp-protocol-version'];
    const pair = await both(headers, call(30, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an Accept header without text/event-stream', async () => {
    const pair = await both(headersFor('tools/call', ECHO, { accept: 'application/json' }), call(31, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('another revision in the envelope', async () => {
    const meta = envelope();
    meta['io.modelcontextprotocol/protocolVersion'] = '2025-11-25';
    const pair = await both(headersFor('tools/call', ECHO), call(32, ECHO, { a: 1 }, meta));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an extra top-level member', async () => {
    const pair = await both(headersFor('tools/call', ECHO), { ...call(33, ECHO, { a: 1 }), extra: true });
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an extra params member', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(34, ECHO, { a: 1 }, envelope(), { extra: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an extra _meta key', async () => {
    const pair = await both(
      headersFor('tools/call', ECHO),
      call(35, ECHO, { a: 1 }, envelope({}, { 'example.com/trace': 'abc' })),
    );
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('clientInfo with an extra key', async () => {
    const meta = envelope();
    meta['io.modelcontextprotocol/clientInfo'] = { name: 'parity-agent', version: '1.0.0', vendor: 'acme' };
    const pair = await both(headersFor('tools/call', ECHO), call(36, ECHO, { a: 1 }, meta));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an unknown log level', async () => {
    const pair = await both(
      headersFor('tools/call', ECHO),
      call(37, ECHO, { a: 1 }, envelope({}, { 'io.modelcontextprotocol/logLevel': 'verbose' })),
    );
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('a tool name that needs base64 in Mcp-Name', async () => {
    const name = 'fx__outil_é';
    const encoded = `=?base64?${Buffer.from(name, 'utf8').toString('base64')}?=`;
    const pair = await both(headersFor('tools/call', encoded), call(38, name, {}));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('a fractional id', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(1.5, ECHO, { a: 1 }));
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('an envelope without clientInfo', async () => {
    const meta = envelope();
    delete meta['io.modelcontextprotocol/clientInfo'];
    const pair = await both(headersFor('tools/call', ECHO), call(45, ECHO, { a: 1 }, meta));
    expectParity(pair);
  });

  it('a content type with a charset parameter', async () => {
    const pair = await both(
      headersFor('tools/call', ECHO, { 'content-type': 'application/json; charset=utf-8' }),
      call(46, ECHO, { a: 1 }),
    );
    expectParity(pair);
    expectFastPath(pair);
  });

  it('no _meta at all', async () => {
    const pair = await both(headersFor('tools/call', ECHO), {
      jsonrpc: '2.0',
      id: 47,
      method: 'tools/call',
      params: { name: ECHO, arguments: { a: 1 } },
    });
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('a batch holding one call', async () => {
    const pair = await both(headersFor('tools/call', ECHO), [call(48, ECHO, { a: 1 })]);
    expectParity(pair);
    expectSdkPath(pair);
  });

  it('a stage failing with a JSON-RPC error (-32013, with data)', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(42, ECHO, { fail: 'audit' }));
    expectParity(pair);
  });

  it('a stage failing with -32002', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(43, ECHO, { fail: 'not-found' }));
    expectParity(pair);
  });

  it('a stage crashing', async () => {
    const pair = await both(headersFor('tools/call', ECHO), call(44, ECHO, { fail: 'crash' }));
    expectParity(pair);
  });

  it('a cancelled call (the agent closes the request) ends its session and leaves the gateway usable', async () => {
    const { fast, gw } = fronts();
    const before = await settledSessionCount(gw);
    seen.length = 0;
    const controller = new AbortController();
    const name = 'fx__fixture_slow';
    const pending = send(
      fast,
      headersFor('tools/call', name),
      call(40, name, { ms: 5_000, steps: 50 }),
      controller.signal,
    );
    pending.catch(() => undefined);
    await new Promise((done) => setTimeout(done, 100));
    await until(() => seen.length === 1, 'the call to reach the pipeline');
    const ctx = seen[0] as RequestContext;
    expect(ctx.target?.originalName).toBe('fixture_slow');
    expect(ctx.signal.aborted).toBe(false);
    expect(gw.sessionCount).toBe(before + 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    // The pipeline's signal is what the forward stage cancels the upstream request with; the fixture
    // keeps no record of a cancellation, so the upstream side is not checked here.
    await until(() => ctx.signal.aborted, 'the call to be aborted');
    await until(() => gw.sessionCount === before, "the cancelled call's session to close");
    const after = await both(headersFor('tools/call', ECHO), call(41, ECHO, { after: 'cancel' }));
    expectParity(after);
    expectFastPath(after);
  });
});
