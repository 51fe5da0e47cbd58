// The direct request path (`direct-http.ts`) end to end against real Streamable HTTP upstreams:
// the in-repo fixture (`packages/fixture`, built bin, `--http`, both eras on one endpoint), the
// dual-era SDK test server (`support/upstream-server.mjs http`, which counts aborted tool calls),
// and a hand-written node:http server in this file that speaks just enough 2025-era MCP to answer
// with plain JSON, HTTP errors and a socket destroyed mid-answer.
//
// Where it helps, a connection given an explicit `fetch` (which keeps it on the SDK client path)
// is the oracle: the direct path must hand back what the SDK client would.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { LOG_LEVEL_META_KEY, SERVER_INFO_META_KEY } from '@modelcontextprotocol/client';
import { JsonRpcError, PortcullisError, type RpcParams, type RpcResult } from '@portcullis/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreateConnectionOptions,
  createUpstreamConnection,
  type ProgressUpdate,
  type UpstreamConnection,
  UpstreamErrorCode,
} from '../src/index.js';
import { eventually, type HttpPeer, httpSpec, silentLogger, startTestHttpServer, waitFor } from './support/peers.js';

const FIXTURE_BIN = fileURLToPath(new URL('../../fixture/dist/bin.js', import.meta.url));

type Era = 'legacy' | 'modern';

interface Spawned {
  readonly url: string;
  close(): Promise<void>;
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      resolve();
    }
  });
}

/** Starts the built fixture over Streamable HTTP on a random loopback port. */
async function startFixture(): Promise<Spawned> {
  if (!existsSync(FIXTURE_BIN)) {
    throw new Error(`${FIXTURE_BIN} is missing: run pnpm --filter @portcullis/fixture-server build first`);
  }
  const child = spawn(process.execPath, [FIXTURE_BIN, '--http', '--name', 'direct-http-fixture'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /listening on (\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`fixture exited with ${code}: ${output}`)));
  });
  child.stderr?.resume();
  return { url, close: () => killAndWait(child) };
}

const open: UpstreamConnection[] = [];
function track(connection: UpstreamConnection): UpstreamConnection {
  open.push(connection);
  return connection;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((connection) => connection.close()));
});

/** A connection on the direct path (no `fetch` option), pinned to `era`. */
function connect(
  url: string,
  era: Era,
  options: Omit<CreateConnectionOptions, 'logger'> = {},
  name = 'fixture',
): UpstreamConnection {
  return track(
    createUpstreamConnection(httpSpec(name, url, 'streamable-http', { era }), { logger: silentLogger, ...options }),
  );
}

/** The same, kept on the SDK client path by an explicit `fetch`: the oracle. */
function connectViaSdk(url: string, era: Era, options: Omit<CreateConnectionOptions, 'logger'> = {}) {
  return connect(url, era, { ...options, fetch: (input, init) => fetch(input, init) }, 'fixture');
}

function textOf(result: RpcResult): string {
  return (result.content as Array<{ text?: string }>).map((block) => block.text ?? '').join('');
}

function callTool(
  connection: UpstreamConnection,
  name: string,
  args: RpcParams = {},
  options: Parameters<UpstreamConnection['request']>[2] = {},
): Promise<RpcResult> {
  return connection.request('tools/call', { name, arguments: args }, options);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

let fixture: Spawned;
let sdkServer: HttpPeer;

beforeAll(async () => {
  [fixture, sdkServer] = await Promise.all([startFixture(), startTestHttpServer()]);
});
afterAll(async () => {
  await Promise.all([fixture?.close(), sdkServer?.close()]);
});

describe.each(['legacy', 'modern'] as const)('direct path, %s era, against real upstreams', (era) => {
  it('uses the direct path and hands back a tools/call result as the upstream sent it', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    expect(connection.era).toBe(era);
    const direct = await callTool(connection, 'test_multiple_content_types');
    // 2026: `resultType: "complete"` is stripped, exactly as the SDK client does.
    expect(direct).not.toHaveProperty('resultType');
    const oracle = connectViaSdk(fixture.url, era);
    expect(direct).toEqual(await callTool(oracle, 'test_multiple_content_types'));
    expect(direct).toEqual({
      // A 2026-era server stamps its serverInfo on every result: it is part of what the upstream sent.
      ...(era === 'modern' && { _meta: { [SERVER_INFO_META_KEY]: { name: 'direct-http-fixture', version: '0.1.0' } } }),
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: expect.any(String), mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ test: 'data', value: 123 }),
          },
        },
      ],
    });
    // structuredContent and a tool-level error come back verbatim too.
    const echoed = await callTool(connection, 'fixture_echo', { a: 1, nested: { b: [true, null] } });
    expect(echoed).toEqual({
      ...(era === 'modern' && { _meta: expect.any(Object) }),
      content: [{ type: 'text', text: JSON.stringify({ a: 1, nested: { b: [true, null] } }) }],
      structuredContent: { a: 1, nested: { b: [true, null] } },
    });
    const toolError = await callTool(connection, 'test_error_handling');
    expect(toolError.isError).toBe(true);
    expect(toolError).toEqual(await callTool(oracle, 'test_error_handling'));
  });

  it('delivers every progress notification before the result, with a token of its own', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    for (let round = 0; round < 5; round++) {
      const updates: ProgressUpdate[] = [];
      let atResult: ProgressUpdate[] = [];
      const result = await connection
        .request(
          'tools/call',
          { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'agent-token' } },
          { onProgress: (update) => updates.push(update) },
        )
        .then((value) => {
          atResult = [...updates];
          return value;
        });
      expect(atResult).toEqual([
        { progress: 0, total: 100, message: 'Completed step 0 of 100' },
        { progress: 50, total: 100, message: 'Completed step 50 of 100' },
        { progress: 100, total: 100, message: 'Completed step 100 of 100' },
      ]);
      // The tool answers the progress token it saw: the minted one, never the agent's.
      const seenToken = textOf(result);
      expect(seenToken).not.toBe('agent-token');
      expect(seenToken).not.toBe('no progress token');
      // The direct path's token is its string request id (`pc-N`); the SDK client's would be a number.
      expect(seenToken).toMatch(/^pc-\d+$/);
    }
  });

  it("strips the agent's progress token when no onProgress is given", async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const result = await connection.request('tools/call', {
      name: 'test_tool_with_progress',
      arguments: {},
      _meta: { progressToken: 'agent-token', keep: 'me' },
    });
    expect(textOf(result)).toBe('no progress token');
  });

  it('cancels: the upstream tool sees its abort, the call rejects with upstream.cancelled, the connection lives on', async () => {
    const connection = connect(sdkServer.url, era, {}, 'remote');
    await connection.ready();
    expect(connection.era).toBe(era);
    const before = (await sdkServer.stats()).aborted;
    const controller = new AbortController();
    const started = Date.now();
    const call = callTool(connection, 'slow', { ms: 5_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort('agent cancelled'), 200);
    const error = await rejection(call);
    expect(error).toBeInstanceOf(PortcullisError);
    expect(error).toMatchObject({ code: UpstreamErrorCode.Cancelled });
    expect((error as Error).message).toContain('upstream "remote"');
    expect(Date.now() - started).toBeLessThan(2_000);
    await eventually(async () => (await sdkServer.stats()).aborted === before + 1, 'abort to reach the upstream tool');
    expect(textOf(await callTool(connection, 'echo', { text: 'still here' }))).toBe('still here');
    expect(connection.status).toBe('connected');
  });

  it('an already aborted signal rejects at once with upstream.cancelled', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const controller = new AbortController();
    controller.abort('too late');
    await expect(callTool(connection, 'test_simple_text', {}, { signal: controller.signal })).rejects.toMatchObject({
      code: UpstreamErrorCode.Cancelled,
    });
  });

  it('times out with upstream.timeout, and the connection lives on', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const started = Date.now();
    const error = await rejection(callTool(connection, 'fixture_slow', { ms: 3_000, steps: 1 }, { timeoutMs: 200 }));
    expect(error).toBeInstanceOf(PortcullisError);
    expect(error).toMatchObject({ code: UpstreamErrorCode.Timeout });
    expect((error as Error).message).toContain('upstream "fixture"');
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(textOf(await callTool(connection, 'test_simple_text'))).toBe('This is a simple text response for testing.');
  });

  it('progress resets the timeout: a call that reports progress outlives timeoutMs', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const updates: ProgressUpdate[] = [];
    const started = Date.now();
    const result = await callTool(
      connection,
      'fixture_slow',
      { ms: 1_000, steps: 10 },
      { timeoutMs: 350, onProgress: (update) => updates.push(update) },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(textOf(result)).toBe('fixture_slow finished after 1000ms in 10 steps');
    expect(updates.map((update) => update.progress)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Without onProgress no progress is asked for, so nothing resets the timer.
    await expect(
      callTool(connection, 'fixture_slow', { ms: 1_000, steps: 10 }, { timeoutMs: 350 }),
    ).rejects.toMatchObject({ code: UpstreamErrorCode.Timeout });
  });

  it("turns the upstream's JSON-RPC errors into JsonRpcError with the upstream's code", async () => {
    const connection = connect(fixture.url, era);
    const oracle = connectViaSdk(fixture.url, era);
    await Promise.all([connection.ready(), oracle.ready()]);

    const unknownMethod = await rejection(connection.request('nonexistent/method', {}));
    expect(unknownMethod).toBeInstanceOf(JsonRpcError);
    expect(unknownMethod).toMatchObject({ code: -32601 });

    const missing = await rejection(connection.request('resources/read', { uri: 'test://missing' }));
    expect(missing).toBeInstanceOf(JsonRpcError);
    const missingViaSdk = await rejection(oracle.request('resources/read', { uri: 'test://missing' }));
    expect(missing).toMatchObject({
      code: (missingViaSdk as JsonRpcError).code,
      message: (missingViaSdk as JsonRpcError).message,
    });

    // An unknown tool: whatever the upstream answers, as the SDK client would have seen it.
    const unknownTool = callTool(connection, 'no_such_tool');
    const unknownToolViaSdk = callTool(oracle, 'no_such_tool');
    const [direct, viaSdk] = await Promise.allSettled([unknownTool, unknownToolViaSdk]);
    // The fixture answers -32602 "Tool no_such_tool not found" in both eras.
    expect(direct).toMatchObject({ status: 'rejected', reason: { code: -32602 } });
    expect(direct.status).toBe(viaSdk.status);
    if (direct.status === 'rejected' && viaSdk.status === 'rejected') {
      expect(direct.reason).toBeInstanceOf(JsonRpcError);
      expect(direct.reason).toMatchObject({ code: viaSdk.reason.code, message: viaSdk.reason.message });
      expect(String(direct.reason.message)).toContain('no_such_tool');
    } else if (direct.status === 'fulfilled' && viaSdk.status === 'fulfilled') {
      expect(direct.value).toEqual(viaSdk.value);
      expect(direct.value.isError).toBe(true);
    }
    expect(connection.status).toBe('connected');
  });

  it('routes progress of concurrent calls to their own onProgress', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const perCall = Array.from({ length: 6 }, () => [] as number[]);
    const results = await Promise.all(
      perCall.map((updates) =>
        callTool(connection, 'test_tool_with_progress', {}, { onProgress: (update) => updates.push(update.progress) }),
      ),
    );
    expect(perCall).toEqual(perCall.map(() => [0, 50, 100]));
    expect(new Set(results.map(textOf)).size).toBe(perCall.length);
  });

  it('reads a large multi-byte answer split over many chunks intact', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const big = 'é€😀 '.repeat(60_000);
    const result = await callTool(connection, 'fixture_echo', { big });
    expect(result.structuredContent).toEqual({ big });
  });

  it('other methods (tools/list, resources/read, prompts/get, a non-ASCII name) match the SDK client', async () => {
    const connection = connect(fixture.url, era);
    const oracle = connectViaSdk(fixture.url, era);
    await Promise.all([connection.ready(), oracle.ready()]);
    const requests: Array<[string, RpcParams]> = [
      ['tools/list', {}],
      ['resources/read', { uri: 'test://static-text' }],
      ['resources/read', { uri: 'test://template/123/data' }],
      ['prompts/get', { name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } }],
      ['tools/call', { name: 'ünïcode tööl', arguments: {} }],
    ];
    for (const [method, params] of requests) {
      const [direct, viaSdk] = await Promise.allSettled([
        connection.request(method, params),
        oracle.request(method, params),
      ]);
      if (viaSdk.status === 'fulfilled') expect(direct).toEqual(viaSdk);
      else {
        expect(direct.status).toBe('rejected');
        expect(direct.status === 'rejected' && direct.reason).toMatchObject({
          name: viaSdk.reason.name,
          code: viaSdk.reason.code,
          message: viaSdk.reason.message,
        });
      }
    }
  });

  it('a timeout makes the upstream tool see its abort', async () => {
    const connection = connect(sdkServer.url, era, {}, 'remote');
    await connection.ready();
    const before = (await sdkServer.stats()).aborted;
    await expect(callTool(connection, 'slow', { ms: 5_000 }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: UpstreamErrorCode.Timeout,
    });
    await eventually(async () => (await sdkServer.stats()).aborted === before + 1, 'abort to reach the upstream tool');
  });

  it('close() ends a request in flight with upstream.unavailable', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const call = callTool(connection, 'fixture_slow', { ms: 1_500, steps: 1 }).then(
      (result) => ({ settled: 'resolved', result }),
      (error: unknown) => ({ settled: 'rejected', error }),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await connection.close();
    const outcome = await Promise.race([
      call,
      new Promise((resolve) => setTimeout(() => resolve({ settled: 'still pending 1 s after close()' }), 1_000)),
    ]);
    expect(outcome).toMatchObject({ settled: 'rejected', error: { code: UpstreamErrorCode.Unavailable } });
  });

  it('an onProgress callback that throws neither escapes nor breaks the call', async () => {
    const connection = connect(fixture.url, era);
    await connection.ready();
    const escaped: unknown[] = [];
    const previous = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const capture = (error: unknown): void => void escaped.push(error);
    process.on('uncaughtException', capture);
    try {
      const outcome = await callTool(
        connection,
        'test_tool_with_progress',
        {},
        {
          onProgress: () => {
            throw new Error('listener boom');
          },
        },
      ).then(
        (result) => ({ settled: 'resolved', text: textOf(result) }),
        (error: unknown) => ({ settled: 'rejected', error }),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect({ outcome, escaped: escaped.map(String) }).toEqual({
        outcome: { settled: 'resolved', text: expect.stringMatching(/^pc-/) },
        escaped: [],
      });
    } finally {
      process.off('uncaughtException', capture);
      for (const listener of previous) process.on('uncaughtException', listener);
    }
  });

  it('delivers logging notifications sent during a call to onNotification, before the result', async () => {
    const connection = connect(fixture.url, era);
    const messages: RpcParams[] = [];
    connection.onNotification((method, params) => {
      if (method === 'notifications/message') messages.push(params);
    });
    await connection.ready();
    let atResult: RpcParams[] = [];
    const result = await connection
      .request('tools/call', { name: 'test_tool_with_logging', arguments: {}, _meta: { [LOG_LEVEL_META_KEY]: 'info' } })
      .then((value) => {
        atResult = [...messages];
        return value;
      });
    expect(textOf(result)).toBe('Tool with logging executed successfully');
    expect(atResult.map((params) => params.data)).toEqual([
      'Tool execution started',
      'Tool processing data',
      'Tool execution completed',
    ]);
    expect(atResult.every((params) => params.level === 'info')).toBe(true);
  });
});

describe('2026 era: input_required', () => {
  it('returns input_required as { resultType, inputRequests }, as the SDK client would', async () => {
    const connection = connect(fixture.url, 'modern', { capabilities: { elicitation: {}, sampling: {} } });
    const oracle = connectViaSdk(fixture.url, 'modern', { capabilities: { elicitation: {}, sampling: {} } });
    const serverRequests: string[] = [];
    const withHandler = connect(fixture.url, 'modern', {
      capabilities: { elicitation: {}, sampling: {} },
      onServerRequest: async (method) => {
        serverRequests.push(method);
        return {};
      },
    });
    await Promise.all([connection.ready(), oracle.ready(), withHandler.ready()]);

    const elicitation = await callTool(connection, 'test_elicitation', { message: 'Your answer?' });
    expect(elicitation).toEqual({
      resultType: 'input_required',
      _meta: { [SERVER_INFO_META_KEY]: { name: 'direct-http-fixture', version: '0.1.0' } },
      inputRequests: {
        response: {
          method: 'elicitation/create',
          params: expect.objectContaining({
            message: 'Your answer?',
            requestedSchema: expect.objectContaining({ type: 'object', required: ['response'] }),
          }),
        },
      },
    });
    expect(elicitation).toEqual(await callTool(oracle, 'test_elicitation', { message: 'Your answer?' }));

    const sampling = await callTool(connection, 'test_sampling', { prompt: 'hello' });
    expect(sampling).toMatchObject({
      resultType: 'input_required',
      inputRequests: { sampling: { method: 'sampling/createMessage' } },
    });
    expect(sampling).not.toHaveProperty('requestState');
    expect(sampling).toEqual(await callTool(oracle, 'test_sampling', { prompt: 'hello' }));

    const withState = await callTool(connection, 'test_input_required_result_request_state');
    expect(withState).toMatchObject({
      resultType: 'input_required',
      inputRequests: { confirm: { method: 'elicitation/create' } },
      requestState: expect.any(String),
    });
    // Never fulfilled here: even with a handler, nothing reaches onServerRequest.
    expect((await callTool(withHandler, 'test_elicitation', { message: 'x' })).resultType).toBe('input_required');
    expect(serverRequests).toEqual([]);
  });

  it('answering the input_required round completes the call (the requestState travels back)', async () => {
    const connection = connect(fixture.url, 'modern', { capabilities: { elicitation: {} } });
    await connection.ready();
    const first = await callTool(connection, 'test_input_required_result_request_state');
    const second = await connection.request('tools/call', {
      name: 'test_input_required_result_request_state',
      arguments: {},
      inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
      requestState: first.requestState,
    });
    expect(second).not.toHaveProperty('resultType');
    expect(textOf(second)).toBe('state-ok: requestState validated (ok=true)');
  });

  it('a request the upstream refuses with HTTP 400 and a JSON-RPC error body rejects with that error', async () => {
    const connection = connect(fixture.url, 'modern');
    await connection.ready();
    // The Mcp-Param-Region header disagrees with the `region` argument it must mirror (SEP-2243).
    const error = await rejection(
      callTool(
        connection,
        'test_custom_headers',
        { region: 'eu-west' },
        { headers: { 'mcp-param-region': 'us-east' } },
      ),
    );
    expect(error).toBeInstanceOf(JsonRpcError);
    expect(error).toMatchObject({
      code: -32020,
      message: expect.stringContaining('the request headers and body disagree'),
      data: { mismatch: { header: 'Mcp-Param-Region' } },
    });
    // A matching header is accepted.
    const ok = await callTool(
      connection,
      'test_custom_headers',
      { region: 'eu-west' },
      { headers: { 'mcp-param-region': 'eu-west' } },
    );
    expect(textOf(ok)).toBe('region=eu-west');
  });
});

describe('2025 era: server→client requests during a call', () => {
  it('relays sampling and elicitation to onServerRequest and the answers reach the upstream tool', async () => {
    const seen: Array<{ method: string; params: RpcParams }> = [];
    const connection = connect(fixture.url, 'legacy', {
      capabilities: { sampling: {}, elicitation: {} },
      onServerRequest: async (method, params) => {
        seen.push({ method, params });
        if (method === 'sampling/createMessage') {
          return { role: 'assistant', model: 'test-model', content: { type: 'text', text: 'sampled!' } };
        }
        return { action: 'accept', content: { response: 'yes' } };
      },
    });
    await connection.ready();
    expect(textOf(await callTool(connection, 'test_sampling', { prompt: 'hi there' }))).toBe('LLM response: sampled!');
    expect(textOf(await callTool(connection, 'test_elicitation', { message: 'Agree?' }))).toBe(
      'User response: action=accept, content={"response":"yes"}',
    );
    expect(seen.map((entry) => entry.method)).toEqual(['sampling/createMessage', 'elicitation/create']);
    expect(seen[0]?.params).toMatchObject({
      messages: [{ role: 'user', content: { type: 'text', text: 'hi there' } }],
    });
    expect(seen[1]?.params).toMatchObject({ message: 'Agree?' });
  });

  it('relays roots/list when declared', async () => {
    const connection = connect(fixture.url, 'legacy', {
      capabilities: { roots: { listChanged: true } },
      onServerRequest: async () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }),
    });
    await connection.ready();
    expect(textOf(await callTool(connection, 'test_input_required_result_list_roots'))).toBe(
      'Found 1 root(s): file:///work',
    );
  });
});

// ---- a hand-written 2025-era upstream (no SDK) ---------------------------------------------------

interface SeenRequest {
  readonly method: string;
  readonly id: unknown;
  readonly params: Record<string, unknown> | undefined;
  readonly headers: IncomingHttpHeaders;
}

interface RawUpstream {
  readonly url: string;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

const RAW_SESSION = 'raw-session-1';

/**
 * Answers `initialize` (JSON, with an `Mcp-Session-Id`), notifications with 202, `ping`,
 * `tools/list`, and `tools/call` by tool name: `echo` as plain `application/json`; `batch` as a
 * JSON array (progress, then the result); `fail500` with HTTP 500; `drop` opens an SSE answer, sends
 * one progress event and destroys the socket; `refuse` with HTTP 400 and a JSON-RPC error body for
 * the request's id; `hang` opens an SSE answer and never answers.
 */
async function startRawUpstream(): Promise<RawUpstream> {
  const seen: SeenRequest[] = [];
  const hanging = new Set<ServerResponse>();
  /** Server→client requests sent on a tools/call stream, waiting for the client's answer. */
  const awaiting = new Map<string, (answer: Record<string, unknown>) => void>();
  let serverRequests = 0;
  const sse = (res: ServerResponse, message: unknown): boolean =>
    res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  const server: Server = createServer(async (req, res) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      id?: unknown;
      method?: string;
      params?: Record<string, unknown>;
    };
    if (typeof message.method === 'string') {
      seen.push({ method: message.method, id: message.id, params: message.params, headers: req.headers });
    }
    if (message.method === undefined && typeof message.id === 'string' && awaiting.has(message.id)) {
      const { jsonrpc: _, id: __, ...answer } = message as Record<string, unknown>;
      awaiting.get(message.id)?.(answer);
      awaiting.delete(message.id);
      return void res.writeHead(202).end();
    }
    if (message.id === undefined || typeof message.method !== 'string') return void res.writeHead(202).end();
    const reply = (result: unknown) => ({ jsonrpc: '2.0', id: message.id, result });
    switch (message.method) {
      case 'initialize':
        return json(
          res,
          200,
          reply({
            protocolVersion: '2025-06-18',
            capabilities: { tools: {} },
            serverInfo: { name: 'raw-direct-server', version: '1.0.0' },
          }),
          { 'mcp-session-id': RAW_SESSION },
        );
      case 'ping':
        return json(res, 200, reply({}));
      case 'tools/list':
        return json(res, 200, reply({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }));
      case 'tools/call': {
        const name = message.params?.name;
        const args = (message.params?.arguments ?? {}) as Record<string, unknown>;
        const meta = (message.params?._meta ?? {}) as Record<string, unknown>;
        switch (name) {
          case 'echo':
            return json(res, 200, reply({ content: [{ type: 'text', text: String(args.text) }] }));
          case 'batch':
            return json(res, 200, [
              {
                jsonrpc: '2.0',
                method: 'notifications/progress',
                params: { progressToken: meta.progressToken, progress: 1, total: 1 },
              },
              reply({ content: [{ type: 'text', text: 'batched' }] }),
            ]);
          case 'fail500':
            return void res.writeHead(500, { 'content-type': 'text/plain' }).end('internal failure');
          case 'refuse':
            return json(res, 400, { jsonrpc: '2.0', id: message.id, error: { code: -32001, message: 'refused' } });
          case 'drop': {
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            res.write(
              `event: message\ndata: ${JSON.stringify({
                jsonrpc: '2.0',
                method: 'notifications/progress',
                params: { progressToken: meta.progressToken, progress: 1 },
              })}\n\n`,
            );
            setTimeout(() => res.socket?.destroy(), 50);
            return;
          }
          case 'ask': {
            // Sends each method as a request on this call's stream and answers with what came back.
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            const answers: unknown[] = [];
            for (const method of args.methods as string[]) {
              const id = `srv-${++serverRequests}`;
              const answered = new Promise<Record<string, unknown>>((resolve) => awaiting.set(id, resolve));
              sse(res, { jsonrpc: '2.0', id, method, params: method === 'ping' ? {} : { probe: method } });
              answers.push(await answered);
            }
            sse(res, reply({ content: [{ type: 'text', text: JSON.stringify(answers) }] }));
            return void res.end();
          }
          case 'ask-then-cancel': {
            // Sends roots/list, then cancels it on the same stream and answers the call without waiting.
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            const id = `srv-${++serverRequests}`;
            sse(res, { jsonrpc: '2.0', id, method: 'roots/list', params: {} });
            await new Promise((resolve) => setTimeout(resolve, 50));
            sse(res, {
              jsonrpc: '2.0',
              method: 'notifications/cancelled',
              params: { requestId: id, reason: 'changed my mind' },
            });
            await new Promise((resolve) => setTimeout(resolve, 50));
            sse(res, reply({ content: [{ type: 'text', text: 'gave up asking' }] }));
            return void res.end();
          }
          case 'garbage':
            return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc": "2.0", "id"');
          case 'other-id':
            return json(res, 200, { jsonrpc: '2.0', id: 'someone-else', result: {} });
          case 'empty-sse':
            return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(': nothing\n\n');
          case 'no-type':
            return void res.writeHead(200).end('hello');
          case 'hang':
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            res.write(': open\n\n');
            hanging.add(res);
            return;
          default:
            return json(res, 200, {
              jsonrpc: '2.0',
              id: message.id,
              error: { code: -32602, message: `Unknown tool: ${String(name)}` },
            });
        }
      }
      default:
        return json(res, 200, { jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'Method not found' } });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('a hand-written 2025-era upstream (no SDK)', () => {
  let raw: RawUpstream;
  beforeAll(async () => {
    raw = await startRawUpstream();
  });
  afterAll(() => raw.close());

  it('reads a plain application/json answer, sent with the session id and protocol version', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    expect(connection.serverInfo?.name).toBe('raw-direct-server');
    expect(await callTool(connection, 'echo', { text: 'plain json' })).toEqual({
      content: [{ type: 'text', text: 'plain json' }],
    });
    const call = raw.seen.findLast((entry) => entry.method === 'tools/call');
    expect(call?.headers['mcp-session-id']).toBe(RAW_SESSION);
    expect(call?.headers['mcp-protocol-version']).toBe('2025-06-18');
    expect(call?.headers['mcp-method']).toBeUndefined();
    // Sent by the direct path: its ids are strings, the SDK client's are numbers.
    expect(call?.id).toMatch(/^pc-\d+$/);
    expect(call?.params).toEqual({ name: 'echo', arguments: { text: 'plain json' } });
    // tools/list too, and an unknown tool gets the upstream's own error.
    expect(await connection.request('tools/list', {})).toEqual({
      tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
    });
    await expect(callTool(connection, 'nope')).rejects.toMatchObject({
      name: 'JsonRpcError',
      code: -32602,
      message: 'Unknown tool: nope',
    });
  });

  it('reads a JSON array answer: progress first, then the result', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    const updates: ProgressUpdate[] = [];
    let atResult: ProgressUpdate[] = [];
    const result = await callTool(connection, 'batch', {}, { onProgress: (update) => updates.push(update) }).then(
      (value) => {
        atResult = [...updates];
        return value;
      },
    );
    expect(textOf(result)).toBe('batched');
    expect(atResult).toEqual([{ progress: 1, total: 1 }]);
  });

  it('HTTP 500 on tools/call rejects with upstream.unavailable naming the upstream', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    const error = await rejection(callTool(connection, 'fail500'));
    expect(error).toBeInstanceOf(PortcullisError);
    expect(error).toMatchObject({ code: UpstreamErrorCode.Unavailable });
    expect((error as Error).message).toContain('upstream "raw" is unavailable');
    expect((error as Error).message).toContain('500');
    expect(textOf(await callTool(connection, 'echo', { text: 'after 500' }))).toBe('after 500');
  });

  it('a socket destroyed mid-SSE-answer rejects with upstream.unavailable (no hang, no crash)', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    const updates: ProgressUpdate[] = [];
    const started = Date.now();
    const error = await rejection(
      callTool(connection, 'drop', {}, { timeoutMs: 10_000, onProgress: (update) => updates.push(update) }),
    );
    expect(error).toBeInstanceOf(PortcullisError);
    expect(error).toMatchObject({ code: UpstreamErrorCode.Unavailable });
    expect((error as Error).message).toContain('upstream "raw"');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(updates).toEqual([{ progress: 1 }]);
    // The pool hands out a fresh socket afterwards.
    await waitFor(() => connection.status === 'connected', 5_000, 'the connection to stay or come back');
    expect(textOf(await callTool(connection, 'echo', { text: 'after drop' }))).toBe('after drop');
  });

  it('malformed or unanswering 2xx answers reject with upstream.unavailable', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    for (const [tool, reason] of [
      ['garbage', 'not valid JSON'],
      ['other-id', 'did not answer the request'],
      ['empty-sse', 'ended before the answer'],
      ['no-type', 'HTTP 200 (no content type)'],
    ] as const) {
      const error = await rejection(callTool(connection, tool, {}, { timeoutMs: 5_000 }));
      expect(error, tool).toBeInstanceOf(PortcullisError);
      expect(error, tool).toMatchObject({ code: UpstreamErrorCode.Unavailable });
      expect((error as Error).message, tool).toContain(reason);
    }
    expect(textOf(await callTool(connection, 'echo', { text: 'fine' }))).toBe('fine');
  });

  it('HTTP 400 with a JSON-RPC error body for the request id rejects with that JsonRpcError', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    const error = await rejection(callTool(connection, 'refuse'));
    expect(error).toBeInstanceOf(JsonRpcError);
    expect(error).toMatchObject({ code: -32001, message: 'refused' });
  });

  it('server→client requests on the call stream reach onServerRequest (declared only); answers reach the upstream', async () => {
    const seen: Array<{ method: string; params: RpcParams }> = [];
    const connection = connect(
      raw.url,
      'legacy',
      {
        capabilities: { roots: {}, sampling: {} },
        onServerRequest: async (method, params) => {
          seen.push({ method, params });
          if (method === 'roots/list') return { roots: [{ uri: 'file:///work' }] };
          if (method === 'sampling/createMessage') throw new JsonRpcError(-32042, 'agent says no', { why: 'test' });
          return {};
        },
      },
      'raw',
    );
    await connection.ready();
    const methods = ['ping', 'roots/list', 'sampling/createMessage', 'elicitation/create', 'made/up'];
    const answers = JSON.parse(textOf(await callTool(connection, 'ask', { methods }))) as unknown[];
    expect(answers).toEqual([
      { result: {} },
      { result: { roots: [{ uri: 'file:///work' }] } },
      { error: { code: -32042, message: 'agent says no', data: { why: 'test' } } },
      { error: { code: -32601, message: 'Method not found' } },
      { error: { code: -32601, message: 'Method not found' } },
    ]);
    // ping is answered by the connection itself; elicitation was not declared.
    expect(seen).toEqual([
      { method: 'roots/list', params: { probe: 'roots/list' } },
      { method: 'sampling/createMessage', params: { probe: 'sampling/createMessage' } },
    ]);
  });

  it('without onServerRequest every server→client request but ping gets -32601', async () => {
    const connection = connect(raw.url, 'legacy', { capabilities: { roots: {} } }, 'raw');
    await connection.ready();
    const answers = JSON.parse(textOf(await callTool(connection, 'ask', { methods: ['roots/list', 'ping'] })));
    expect(answers).toEqual([{ error: { code: -32601, message: 'Method not found' } }, { result: {} }]);
  });

  it('notifications/cancelled for a relayed server request aborts the handler signal', async () => {
    let aborted: unknown;
    const connection = connect(
      raw.url,
      'legacy',
      {
        capabilities: { roots: {} },
        onServerRequest: (_method, _params, { signal }) =>
          new Promise((resolve) => {
            signal.addEventListener('abort', () => {
              aborted = signal.reason;
              resolve({ roots: [] });
            });
          }),
      },
      'raw',
    );
    const notifications: string[] = [];
    connection.onNotification((method) => notifications.push(method));
    await connection.ready();
    expect(textOf(await callTool(connection, 'ask-then-cancel'))).toBe('gave up asking');
    expect(aborted).toBe('changed my mind');
    // Consumed by the relay, not passed on as a notification.
    expect(notifications).not.toContain('notifications/cancelled');
  });

  it('a timeout sends notifications/cancelled with the id the upstream saw', async () => {
    const connection = connect(raw.url, 'legacy', {}, 'raw');
    await connection.ready();
    await expect(callTool(connection, 'hang', {}, { timeoutMs: 200 })).rejects.toMatchObject({
      code: UpstreamErrorCode.Timeout,
    });
    const hung = raw.seen.findLast((entry) => entry.method === 'tools/call' && entry.params?.name === 'hang');
    await waitFor(
      () =>
        raw.seen.some((entry) => entry.method === 'notifications/cancelled' && entry.params?.requestId === hung?.id),
      5_000,
      'notifications/cancelled for the hung request',
    );
    const cancelled = raw.seen.find((entry) => entry.method === 'notifications/cancelled');
    expect(cancelled?.headers['mcp-session-id']).toBe(RAW_SESSION);
  });
});
