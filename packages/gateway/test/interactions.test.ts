import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import { parseConfig, upstreamSpecs } from '@portcullis/config';
import { StaticUpstreamRegistry, UpstreamPool } from '@portcullis/upstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The HTTP front is the real path of a 2026-era agent; loaded from source (it depends on this package).
import { type HttpFront, serveGatewayOverHttp } from '../../front/src/index.js';
import { Gateway, providerFromPool } from '../src/index.js';
import { silentLogger, textOf, until } from './support.js';

const FIXTURE_BIN = fileURLToPath(new URL('../../fixture/dist/bin.js', import.meta.url));

/** A `per-session` stdio fixture pinned to the 2025 handshake: it pushes elicitation/sampling/roots. */
const config = () =>
  parseConfig(
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      upstreams: {
        old: {
          transport: 'stdio',
          command: process.execPath,
          args: [FIXTURE_BIN],
          isolation: 'per-session',
          era: 'legacy',
          healthCheckIntervalMs: 0,
          requestTimeoutMs: 10_000,
        },
      },
    }),
    'interactions-test.json',
  );

let pool: UpstreamPool;
let gateway: Gateway;
let front: HttpFront;
const clients: Client[] = [];

beforeAll(async () => {
  pool = new UpstreamPool(new StaticUpstreamRegistry(upstreamSpecs(config())), { logger: silentLogger });
  pool.start();
  await pool.primary('old').ready();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await front?.close();
  await gateway?.close();
  // Each test's 2026-era agent keys its per-session child by identity; start the next one fresh.
  await pool.releaseSession('modern:anonymous').catch(() => undefined);
});

afterAll(async () => {
  await pool?.close();
});

async function start(inputRequiredTimeoutMs?: number): Promise<void> {
  gateway = new Gateway({
    config: config(),
    provider: providerFromPool(pool),
    logger: silentLogger,
    ...(inputRequiredTimeoutMs === undefined ? {} : { inputRequiredTimeoutMs }),
  });
  front = await serveGatewayOverHttp(gateway, { server: config().server, logger: silentLogger });
}

/** A real 2026-era SDK client that fulfils input requests itself. */
async function modernAgent(): Promise<{ client: Client; asked: string[] }> {
  const client = new Client(
    { name: 'modern-agent', version: '1.0.0' },
    {
      capabilities: { elicitation: { form: {} }, sampling: {}, roots: {} },
      versionNegotiation: { mode: { pin: '2026-07-28' } },
    },
  );
  const asked: string[] = [];
  client.setRequestHandler('elicitation/create', async (request) => {
    const message = 'message' in request.params ? request.params.message : '';
    asked.push(`elicit:${message}`);
    const content: Record<string, string> = /color/i.test(message) ? { color: 'teal' } : { name: 'Ada' };
    return { action: 'accept', content };
  });
  client.setRequestHandler('sampling/createMessage', async () => {
    asked.push('sample');
    return { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'test-model' };
  });
  client.setRequestHandler('roots/list', async () => {
    asked.push('roots');
    return { roots: [{ uri: 'file:///work', name: 'work' }] };
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${front.url}/mcp`)));
  clients.push(client);
  return { client, asked };
}

const envelope = {
  [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
  [CLIENT_INFO_META_KEY]: { name: 'raw-agent', version: '1' },
  [CLIENT_CAPABILITIES_META_KEY]: { elicitation: { form: {} } },
};

/** One raw 2026-era tools/call; returns the JSON-RPC response (JSON or the last SSE message). */
async function rawCall(name: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(`${front.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name, arguments: {}, ...extra, _meta: envelope },
    }),
  });
  const text = await response.text();
  if (!text.startsWith('event:') && !text.startsWith('data:') && !text.startsWith(':'))
    return JSON.parse(text) as Record<string, unknown>;
  const messages = text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  const last = messages.filter((message) => 'result' in message || 'error' in message).at(-1);
  if (!last) throw new Error(`no response in ${text}`);
  return last;
}

describe('2025-era upstream pushes reach a 2026-era agent as input_required rounds', () => {
  it('relays one elicitation and continues the parked upstream call with the answer', async () => {
    await start();
    const { client, asked } = await modernAgent();
    const result = await client.callTool({ name: 'old__test_input_required_result_elicitation', arguments: {} });
    expect(textOf(result)).toBe('Hello, Ada!');
    expect(asked).toEqual(['elicit:What is your name?']);
    expect(gateway.interactions.size).toBe(0);
  });

  it('runs several rounds when the upstream pushes again, and sampling and roots too', async () => {
    await start();
    const { client, asked } = await modernAgent();
    const multi = await client.callTool({ name: 'old__test_input_required_result_multi_round', arguments: {} });
    expect(textOf(multi)).toBe('Multi-round complete for Ada who likes teal');
    expect(asked).toEqual(['elicit:Step 1: What is your name?', 'elicit:Step 2: What is your favorite color?']);
    const several = await client.callTool({ name: 'old__test_input_required_result_multiple_inputs', arguments: {} });
    expect(textOf(several)).toBe('Name: Ada; Greeting: Paris; Roots: 1');
    expect(asked).toEqual(expect.arrayContaining(['sample', 'roots']));
    expect(gateway.interactions.size).toBe(0);
  });

  it('refuses a forged requestState with -32602 and keeps the parked call answerable', async () => {
    await start();
    const first = await rawCall('old__test_input_required_result_elicitation');
    const result = first.result as { resultType: string; requestState: string; inputRequests: Record<string, unknown> };
    expect(result.resultType).toBe('input_required');
    expect(result.requestState.startsWith('pcg1.')).toBe(true);
    const [key, request] = Object.entries(result.inputRequests)[0] ?? [];
    expect(request).toMatchObject({ method: 'elicitation/create', params: { message: 'What is your name?' } });
    const body = result.requestState.split('.');
    const forged = `${body.slice(0, -1).join('.')}.${'A'.repeat(body.at(-1)?.length ?? 10)}`;
    const refused = await rawCall('old__test_input_required_result_elicitation', {
      requestState: forged,
      inputResponses: { [String(key)]: { action: 'accept', content: { name: 'Eve' } } },
    });
    expect(refused.error).toMatchObject({ code: -32602 });
    const answered = await rawCall('old__test_input_required_result_elicitation', {
      requestState: result.requestState,
      inputResponses: { [String(key)]: { action: 'accept', content: { name: 'Bob' } } },
    });
    expect(textOf(answered.result)).toBe('Hello, Bob!');
    expect(gateway.interactions.size).toBe(0);
  });

  it('cancels a call parked longer than the bound, and then refuses its requestState', async () => {
    await start(300);
    const first = await rawCall('old__test_input_required_result_elicitation');
    const result = first.result as { requestState: string; inputRequests: Record<string, unknown> };
    expect(gateway.interactions.size).toBe(1);
    await until(() => gateway.interactions.size === 0, 'the parked call to time out');
    const [key] = Object.keys(result.inputRequests);
    const late = await rawCall('old__test_input_required_result_elicitation', {
      requestState: result.requestState,
      inputResponses: { [String(key)]: { action: 'accept', content: { name: 'Late' } } },
    });
    expect(late.error).toMatchObject({ code: -32602 });
    // The per-session upstream is still usable afterwards.
    const { client } = await modernAgent();
    expect(textOf(await client.callTool({ name: 'old__test_simple_text', arguments: {} }))).toContain('simple text');
  });
});
