import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client as V2Client, StreamableHTTPClientTransport as V2HttpTransport } from '@modelcontextprotocol/client';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { type CallToolResult, McpServer } from '@modelcontextprotocol/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod/v4';
import { BoundedEventStore } from '../src/event-store.js';
import { NodeSessionTransport } from '../src/session-transport.js';

/*
 * NodeSessionTransport as a layer: a node:http server routes by Mcp-Session-Id to one transport per
 * session, each connected to a real McpServer; real v1 and v2 SDK clients and raw fetch talk to it.
 * The raw cases also run against the SDK's own transport (NodeStreamableHTTPServerTransport over
 * WebStandardStreamableHTTPServerTransport, with the same event store), so the expectations below
 * are the SDK's behaviour, not only ours.
 */

const LATEST = '2025-11-25';
const PREVIOUS = '2025-06-18';
const ACCEPT_BOTH = 'application/json, text/event-stream';
const SAMPLED = 'Paris, says the test model';
const ELICITED = 'forty-two';

type TransportKind = 'node' | 'sdk';

interface SessionTransport {
  handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void>;
  close(): Promise<void>;
}

interface Session {
  readonly id: string;
  readonly server: McpServer;
  readonly store: BoundedEventStore;
  readonly transport: SessionTransport;
  closed: boolean;
}

interface ToolEvent {
  readonly tag: string;
  readonly what: 'started' | 'finished' | 'aborted';
}

/** A response head written by a transport (what a GET or a POST was answered with). */
interface Head {
  readonly method: string;
  readonly session: string | undefined;
  readonly lastEventId: string | undefined;
  readonly status: number;
}

interface Harness {
  readonly kind: TransportKind;
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  readonly sessions: Map<string, Session>;
  readonly toolEvents: ToolEvent[];
  readonly heads: Head[];
  /** Resolves once the server side of the request sent with `x-test-tag: tag` has closed. */
  closed(tag: string): Promise<void>;
  session(id: string): Session;
  close(): Promise<void>;
}

const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Polls `check` every 10 ms until it holds. */
async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function buildServer(toolEvents: ToolEvent[]): McpServer {
  const server = new McpServer(
    { name: 'session-transport-test', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, logging: {} } },
  );
  server.registerTool(
    'echo',
    { description: 'Returns its arguments', inputSchema: { message: z.string(), n: z.number().optional() } },
    async (args) => text(JSON.stringify(args)),
  );
  server.registerTool(
    'slow',
    {
      description: 'Waits `ms` in `steps`, reporting progress after each step; logs when asked',
      inputSchema: {
        ms: z.number().int(),
        steps: z.number().int().optional(),
        tag: z.string().optional(),
        log: z.boolean().optional(),
      },
    },
    async ({ ms, steps = 2, tag = 'slow', log }, ctx) => {
      toolEvents.push({ tag, what: 'started' });
      if (log) await ctx.mcpReq.log('info', `slow ${tag} started`);
      const progressToken = ctx.mcpReq._meta?.progressToken;
      try {
        for (let step = 1; step <= steps; step++) {
          await sleep(ms / steps, ctx.mcpReq.signal);
          if (progressToken !== undefined) {
            await ctx.mcpReq.notify({
              method: 'notifications/progress',
              params: { progressToken, progress: step, total: steps },
            });
          }
        }
      } catch (error) {
        toolEvents.push({ tag, what: 'aborted' });
        throw error;
      }
      toolEvents.push({ tag, what: 'finished' });
      return text(`slept ${ms}`);
    },
  );
  server.registerTool(
    'ask',
    {
      description:
        'Asks the client (sampling or elicitation) and returns the answer; related to the call unless `unrelated`',
      inputSchema: {
        kind: z.enum(['sampling', 'elicitation']),
        question: z.string(),
        unrelated: z.boolean().optional(),
      },
    },
    async ({ kind, question, unrelated }, ctx) => {
      if (kind === 'sampling') {
        const params = {
          messages: [{ role: 'user' as const, content: { type: 'text' as const, text: question } }],
          maxTokens: 10,
        };
        // ctx.mcpReq.send relates the request to the call; the SDK's requestSampling does not (it goes to the GET stream).
        const answer = unrelated
          ? await ctx.mcpReq.requestSampling(params)
          : await ctx.mcpReq.send({ method: 'sampling/createMessage', params });
        const content = answer.content;
        return text(!Array.isArray(content) && content.type === 'text' ? content.text : JSON.stringify(content));
      }
      const params = {
        message: question,
        requestedSchema: {
          type: 'object' as const,
          properties: { answer: { type: 'string' as const } },
          required: ['answer'],
        },
      };
      const answer = unrelated
        ? await ctx.mcpReq.elicitInput(params)
        : await ctx.mcpReq.send({ method: 'elicitation/create', params });
      return text(`${answer.action}:${JSON.stringify(answer.content ?? {})}`);
    },
  );
  return server;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

const isInitialize = (message: unknown): boolean =>
  typeof message === 'object' && message !== null && 'method' in message && message.method === 'initialize';

/** Calls `callback` with the status whenever a transport writes the head of `res`. */
function onWriteHead(res: ServerResponse, callback: (status: number) => void): void {
  const original = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  Object.assign(res, {
    writeHead: (...args: unknown[]): ServerResponse => {
      callback(Number(args[0]));
      return original(...args);
    },
  });
}

async function startHarness(kind: TransportKind): Promise<Harness> {
  const sessions = new Map<string, Session>();
  const toolEvents: ToolEvent[] = [];
  const heads: Head[] = [];
  const closes = new Map<string, Promise<void>>();
  // Closed sessions stay routed, so that the transport's own answer to a closed session is what the client sees.

  const create = async (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    const id = randomUUID();
    const store = new BoundedEventStore();
    const server = buildServer(toolEvents);
    const register = (transport: SessionTransport): void => {
      sessions.set(id, { id, server, store, transport, closed: false });
    };
    let transport: SessionTransport;
    if (kind === 'node') {
      const node: NodeSessionTransport = new NodeSessionTransport(id, store, () => register(node));
      transport = node;
      await server.connect(node);
    } else {
      const sdk: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
        sessionIdGenerator: () => id,
        eventStore: store,
        onsessioninitialized: () => register(sdk),
      });
      transport = sdk;
      await server.connect(sdk);
    }
    const previous = server.server.onclose;
    server.server.onclose = () => {
      const session = sessions.get(id);
      if (session) session.closed = true;
      previous?.();
    };
    await transport.handleRequest(req, res, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const tag = header(req, 'x-test-tag');
    if (tag !== undefined) closes.set(tag, new Promise((resolve) => res.once('close', () => resolve())));
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // `?route=<session>` routes without (or despite) Mcp-Session-Id, to reach the transport's own header checks.
    const route = url.searchParams.get('route') ?? header(req, 'mcp-session-id');
    onWriteHead(res, (status) =>
      heads.push({ method: req.method ?? '', session: route, lastEventId: header(req, 'last-event-id'), status }),
    );
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    if (raw.trim() !== '') {
      try {
        body = JSON.parse(raw) as unknown;
      } catch {
        sendJson(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
        return;
      }
    }
    if (route !== undefined) {
      const session = sessions.get(route);
      if (!session) {
        sendJson(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'No such session (router)' } });
        return;
      }
      await session.transport.handleRequest(req, res, body);
      return;
    }
    if (req.method === 'POST' && (Array.isArray(body) ? body.some(isInitialize) : isInitialize(body))) {
      await create(req, res, body);
      return;
    }
    sendJson(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'No session (router)' } });
  };

  const http: HttpServer = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(error) });
      else res.end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  return {
    kind,
    url: `http://127.0.0.1:${port}/mcp`,
    sessions,
    toolEvents,
    heads,
    closed: (tag) => {
      const closed = closes.get(tag);
      if (!closed) throw new Error(`no request tagged ${tag}`);
      return withTimeout(closed, 5_000, `the server side of ${tag} to close`);
    },
    session: (id) => {
      const session = sessions.get(id);
      if (!session) throw new Error(`no session ${id}`);
      return session;
    },
    close: async () => {
      await Promise.allSettled([...sessions.values()].map((session) => session.server.close()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: requests, JSON errors and a small SSE reader.

interface RawRequest {
  readonly method?: string;
  readonly session?: string;
  readonly route?: string;
  readonly version?: string;
  readonly accept?: string;
  readonly contentType?: string;
  readonly lastEventId?: string;
  readonly tag?: string;
  readonly signal?: AbortSignal;
  /** A value to send as JSON, or a string sent as is. */
  readonly body?: unknown;
}

function raw(h: Harness, request: RawRequest): Promise<Response> {
  const method = request.method ?? 'POST';
  const headers: Record<string, string> = {};
  if (method === 'POST') {
    headers.accept = request.accept ?? ACCEPT_BOTH;
    headers['content-type'] = request.contentType ?? 'application/json';
  } else if (method === 'GET') {
    headers.accept = request.accept ?? 'text/event-stream';
  } else if (request.accept !== undefined) {
    headers.accept = request.accept;
  }
  if (request.session !== undefined) headers['mcp-session-id'] = request.session;
  if (request.version !== undefined) headers['mcp-protocol-version'] = request.version;
  if (request.lastEventId !== undefined) headers['last-event-id'] = request.lastEventId;
  if (request.tag !== undefined) headers['x-test-tag'] = request.tag;
  const url = request.route === undefined ? h.url : `${h.url}?route=${encodeURIComponent(request.route)}`;
  const body =
    request.body === undefined
      ? undefined
      : typeof request.body === 'string'
        ? request.body
        : JSON.stringify(request.body);
  return fetch(url, { method, headers, body, signal: request.signal });
}

interface JsonRpcErrorBody {
  readonly jsonrpc: string;
  readonly id: unknown;
  readonly error: { readonly code: number; readonly message: string };
}

/** Checks a transport's JSON error answer and returns its message. */
async function expectJsonError(response: Response, status: number, code: number): Promise<string> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toContain('application/json');
  const body = (await response.json()) as JsonRpcErrorBody;
  expect(body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code } });
  return body.error.message;
}

interface SseEvent {
  readonly id: string | undefined;
  readonly event: string | undefined;
  readonly data: string;
}

type Json = Record<string, unknown>;

class SseReader {
  private buffer = '';
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(response: Response) {
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    if (!response.body) throw new Error('an SSE response without a body');
    this.reader = response.body.getReader();
  }

  /** The next event, or `undefined` once the stream has ended. */
  async next(timeoutMs = 5_000): Promise<SseEvent | undefined> {
    for (;;) {
      const event = this.take();
      if (event) return event;
      const chunk = await withTimeout(this.reader.read(), timeoutMs, 'an SSE event');
      if (chunk.done) {
        expect(this.buffer.trim()).toBe('');
        return undefined;
      }
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  /** The next event's JSON-RPC message (fails at the end of the stream or on an event without data). */
  async message(timeoutMs = 5_000): Promise<Json> {
    const event = await this.next(timeoutMs);
    if (event === undefined) throw new Error('the SSE stream ended');
    expect(event.event).toBe('message');
    expect(event.id).toBeDefined();
    return JSON.parse(event.data) as Json;
  }

  /** Every event until the stream ends. */
  async rest(timeoutMs = 5_000): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    for (let event = await this.next(timeoutMs); event !== undefined; event = await this.next(timeoutMs)) {
      events.push(event);
    }
    return events;
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private take(): SseEvent | undefined {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end === -1) return undefined;
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let id: string | undefined;
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (id === undefined && event === undefined && data.length === 0) continue; // a comment (keep-alive)
      return { id, event, data: data.join('\n') };
    }
  }
}

const dataOf = (event: SseEvent): Json => JSON.parse(event.data) as Json;
const streamOf = (eventId: string | undefined): string => (eventId ?? '').slice(0, (eventId ?? '').lastIndexOf(':'));

const initializeMessage = (version: string, id: number | string = 0): Json => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw-fetch', version: '1.0.0' } },
});

const callMessage = (id: number | string, name: string, args: Json, progressToken?: number | string): Json => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args, ...(progressToken === undefined ? {} : { _meta: { progressToken } }) },
});

const listMessage = (id: number | string): Json => ({ jsonrpc: '2.0', id, method: 'tools/list' });
const initializedMessage: Json = { jsonrpc: '2.0', method: 'notifications/initialized' };

interface RawSession {
  readonly id: string;
  readonly version: string;
}

/** Initializes a session over raw HTTP; checks whether the initialize answer was primed. */
async function rawSession(h: Harness, version = LATEST): Promise<RawSession> {
  const response = await raw(h, { body: initializeMessage(version) });
  const id = response.headers.get('mcp-session-id');
  if (id === null) throw new Error('initialize answered without mcp-session-id');
  const events = await new SseReader(response).rest();
  const primed = version >= LATEST;
  expect(events).toHaveLength(primed ? 2 : 1);
  if (primed) expect(events[0]).toMatchObject({ data: '', event: undefined });
  const answer = events[events.length - 1];
  if (!answer) throw new Error('no initialize answer');
  expect(dataOf(answer)).toMatchObject({ id: 0, result: { protocolVersion: version } });
  const initialized = await raw(h, { session: id, version, body: initializedMessage });
  expect(initialized.status).toBe(202);
  return { id, version };
}

/** POSTs one request (or a batch) of a session and returns the reader of its SSE answer. */
async function post(
  h: Harness,
  session: RawSession,
  body: unknown,
  extra: Partial<RawRequest> = {},
): Promise<SseReader> {
  return new SseReader(await raw(h, { session: session.id, version: session.version, body, ...extra }));
}

/** The priming event of a POST answer (an id, empty data): its id. */
async function primingId(reader: SseReader): Promise<string> {
  const priming = await reader.next();
  expect(priming).toMatchObject({ data: '', event: undefined });
  if (priming?.id === undefined) throw new Error('the stream was not primed with an event id');
  return priming.id;
}

/** Whether the store holds the response to `requestId` on the stream of `eventId` (after it). */
function stored(session: Session, eventId: string, requestId: number | string): boolean {
  const replay = session.store.eventsAfter(eventId);
  return replay?.events.some((event) => 'result' in event.message && event.message.id === requestId) ?? false;
}

// ---------------------------------------------------------------------------------------------
// Real clients.

interface Recorded {
  readonly serverRequests: string[];
  readonly logs: unknown[];
  toolListChanged: number;
}

interface ProgressSeen {
  readonly progress: number;
  readonly total?: number | undefined;
}

interface CallOptions {
  readonly signal?: AbortSignal;
  readonly onprogress?: (progress: ProgressSeen) => void;
}

/** The parts of the v1 and v2 clients these tests use, behind one shape. */
interface TestClient {
  readonly sessionId: string;
  readonly seen: Recorded;
  listToolNames(): Promise<string[]>;
  callText(name: string, args: Json, options?: CallOptions): Promise<string>;
  terminateSession(): Promise<void>;
  close(): Promise<void>;
}

const firstText = (result: object): string => {
  const content = 'content' in result ? result.content : undefined;
  const first: unknown = Array.isArray(content) ? content[0] : undefined;
  if (typeof first === 'object' && first !== null && 'text' in first && typeof first.text === 'string') {
    return first.text;
  }
  throw new Error(`no text content in ${JSON.stringify(result)}`);
};

const elicitedAnswer = { answer: ELICITED };

async function connectV1(h: Harness): Promise<TestClient> {
  const seen: Recorded = { serverRequests: [], logs: [], toolListChanged: 0 };
  const client = new V1Client(
    { name: 'v1-client', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {} } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    seen.serverRequests.push('sampling/createMessage');
    return { role: 'assistant', model: 'test-model', content: { type: 'text', text: SAMPLED } };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    seen.serverRequests.push('elicitation/create');
    return { action: 'accept', content: elicitedAnswer };
  });
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    seen.toolListChanged++;
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (notification) => {
    seen.logs.push(notification.params.data);
  });
  const transport = new V1HttpTransport(new URL(h.url));
  await client.connect(transport);
  const sessionId = transport.sessionId;
  if (sessionId === undefined) throw new Error('the v1 client has no session id');
  return {
    sessionId,
    seen,
    listToolNames: async () => (await client.listTools()).tools.map((tool) => tool.name),
    callText: async (name, args, options = {}) =>
      firstText(await client.callTool({ name, arguments: args }, CallToolResultSchema, options)),
    terminateSession: () => transport.terminateSession(),
    close: () => client.close(),
  };
}

async function connectV2(h: Harness): Promise<TestClient> {
  const seen: Recorded = { serverRequests: [], logs: [], toolListChanged: 0 };
  const client = new V2Client(
    { name: 'v2-client', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} } } },
  );
  client.setRequestHandler('sampling/createMessage', async () => {
    seen.serverRequests.push('sampling/createMessage');
    return { role: 'assistant', model: 'test-model', content: { type: 'text', text: SAMPLED } };
  });
  client.setRequestHandler('elicitation/create', async () => {
    seen.serverRequests.push('elicitation/create');
    return { action: 'accept', content: elicitedAnswer };
  });
  client.setNotificationHandler('notifications/tools/list_changed', () => {
    seen.toolListChanged++;
  });
  client.setNotificationHandler('notifications/message', (notification) => {
    seen.logs.push(notification.params.data);
  });
  const transport = new V2HttpTransport(new URL(h.url));
  await client.connect(transport);
  const sessionId = transport.sessionId;
  if (sessionId === undefined) throw new Error('the v2 client has no session id');
  expect(client.getNegotiatedProtocolVersion()).toBe(LATEST);
  return {
    sessionId,
    seen,
    listToolNames: async () => (await client.listTools()).tools.map((tool) => tool.name),
    callText: async (name, args, options = {}) => firstText(await client.callTool({ name, arguments: args }, options)),
    terminateSession: () => transport.terminateSession(),
    close: () => client.close(),
  };
}

/** Messages of the session's standalone (GET) stream held by the store. */
function standaloneMethods(session: Session): string[] {
  const replay = session.store.eventsAfter('_GET_stream:-1');
  return (replay?.events ?? []).map((event) => ('method' in event.message ? event.message.method : 'response'));
}

// ---------------------------------------------------------------------------------------------

describe.each([
  ['v1 SDK client', connectV1],
  ['v2 SDK client', connectV2],
] as const)('NodeSessionTransport with the %s', (_name, connect) => {
  let h: Harness;
  const clients: TestClient[] = [];

  beforeEach(async () => {
    h = await startHarness('node');
  });

  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((client) => client.close()));
    await h.close();
  });

  const open = async (): Promise<TestClient> => {
    const client = await connect(h);
    clients.push(client);
    return client;
  };

  /** Waits until the client's standalone GET stream is open. */
  const getStreamOpen = (client: TestClient): Promise<void> =>
    until(
      () => h.heads.some((head) => head.method === 'GET' && head.session === client.sessionId && head.status === 200),
      'the standalone GET stream',
    );

  it('initializes, lists and calls tools', async () => {
    const client = await open();
    expect(h.session(client.sessionId).closed).toBe(false);
    expect(await client.listToolNames()).toEqual(['echo', 'slow', 'ask']);
    expect(JSON.parse(await client.callText('echo', { message: 'hello', n: 3 }))).toEqual({ message: 'hello', n: 3 });
  });

  it('delivers progress to onprogress and a related log message on the call stream', async () => {
    const client = await open();
    const progress: ProgressSeen[] = [];
    const result = await client.callText(
      'slow',
      { ms: 60, steps: 3, log: true },
      { onprogress: (value) => progress.push(value) },
    );
    expect(result).toBe('slept 60');
    expect(progress.map(({ progress, total }) => ({ progress, total }))).toEqual([
      { progress: 1, total: 3 },
      { progress: 2, total: 3 },
      { progress: 3, total: 3 },
    ]);
    expect(client.seen.logs).toEqual(['slow slow started']);
    // Related messages went on the POST's stream, not on the standalone one.
    expect(standaloneMethods(h.session(client.sessionId))).toEqual([]);
  });

  it('round-trips a related sampling request and a related elicitation request', async () => {
    const client = await open();
    expect(await client.callText('ask', { kind: 'sampling', question: 'capital of France?' })).toBe(SAMPLED);
    expect(await client.callText('ask', { kind: 'elicitation', question: 'the answer?' })).toBe(
      `accept:${JSON.stringify(elicitedAnswer)}`,
    );
    expect(client.seen.serverRequests).toEqual(['sampling/createMessage', 'elicitation/create']);
    expect(standaloneMethods(h.session(client.sessionId))).toEqual([]);
  });

  it('round-trips an unrelated server request over the GET stream', async () => {
    const client = await open();
    await getStreamOpen(client);
    expect(await client.callText('ask', { kind: 'sampling', question: 'unrelated?', unrelated: true })).toBe(SAMPLED);
    expect(client.seen.serverRequests).toEqual(['sampling/createMessage']);
    expect(standaloneMethods(h.session(client.sessionId))).toEqual(['sampling/createMessage']);
  });

  it('carries unrelated server notifications on the GET stream', async () => {
    const client = await open();
    await getStreamOpen(client);
    const session = h.session(client.sessionId);
    session.server.sendToolListChanged();
    await session.server.server.sendLoggingMessage({ level: 'info', data: 'unrelated' });
    await until(() => client.seen.toolListChanged === 1 && client.seen.logs.length === 1, 'the notifications');
    expect(client.seen.logs).toEqual(['unrelated']);
    expect(standaloneMethods(session)).toEqual(['notifications/tools/list_changed', 'notifications/message']);
  });

  it("cancels a call: the client's AbortSignal reaches the tool's abort signal", async () => {
    const client = await open();
    const controller = new AbortController();
    const call = client.callText('slow', { ms: 10_000, tag: 'cancelled' }, { signal: controller.signal });
    const rejected = expect(call).rejects.toThrow();
    await until(() => h.toolEvents.some((e) => e.tag === 'cancelled' && e.what === 'started'), 'the call to start');
    controller.abort(new Error('the user gave up'));
    await rejected;
    await until(() => h.toolEvents.some((e) => e.tag === 'cancelled' && e.what === 'aborted'), 'the tool to abort');
    expect(h.toolEvents.filter((e) => e.tag === 'cancelled').map((e) => e.what)).toEqual(['started', 'aborted']);
    // The session goes on.
    expect(JSON.parse(await client.callText('echo', { message: 'after' }))).toEqual({ message: 'after' });
  });

  it('ends the session on terminateSession (DELETE): later requests are 404', async () => {
    const client = await open();
    await getStreamOpen(client);
    await client.terminateSession();
    const session = h.session(client.sessionId);
    await until(() => session.closed, 'the server to close');
    const after = await raw(h, { session: client.sessionId, version: LATEST, body: listMessage(7) });
    expect(await expectJsonError(after, 404, -32001)).toBe('Session not found');
    const get = await raw(h, { method: 'GET', session: client.sessionId, version: LATEST });
    await expectJsonError(get, 404, -32001);
  });
});

describe.each(['node', 'sdk'] as const)('raw HTTP against the %s transport', (kind) => {
  let h: Harness;
  const aborts: AbortController[] = [];

  beforeEach(async () => {
    h = await startHarness(kind);
  });

  afterEach(async () => {
    for (const controller of aborts.splice(0)) controller.abort();
    await h.close();
  });

  const abortable = (): AbortController => {
    const controller = new AbortController();
    aborts.push(controller);
    return controller;
  };

  describe('errors', () => {
    it('406 when a POST does not accept both JSON and SSE', async () => {
      const s = await rawSession(h);
      for (const accept of ['application/json', 'text/event-stream']) {
        const response = await raw(h, { session: s.id, version: s.version, accept, body: listMessage(1) });
        expect(await expectJsonError(response, 406, -32000)).toBe(
          'Not Acceptable: Client must accept both application/json and text/event-stream',
        );
      }
    });

    it('415 on a content type other than JSON', async () => {
      const s = await rawSession(h);
      const response = await raw(h, {
        session: s.id,
        version: s.version,
        contentType: 'text/plain',
        body: listMessage(1),
      });
      expect(await expectJsonError(response, 415, -32000)).toBe(
        'Unsupported Media Type: Content-Type must be application/json',
      );
      const charset = await raw(h, {
        session: s.id,
        version: s.version,
        contentType: 'application/json; charset=utf-8',
        body: listMessage(2),
      });
      const answer = new SseReader(charset);
      await primingId(answer);
      expect(await answer.message()).toMatchObject({ id: 2, result: { tools: expect.any(Array) } });
    });

    it('400 -32700 on a body that is no JSON-RPC message, or none', async () => {
      const s = await rawSession(h);
      for (const body of [{ foo: 1 }, { jsonrpc: '1.0', id: 1, method: 'tools/list' }, [listMessage(1), 42]]) {
        const response = await raw(h, { session: s.id, version: s.version, body });
        expect(await expectJsonError(response, 400, -32700)).toBe('Parse error: Invalid JSON-RPC message');
      }
      const empty = await raw(h, { session: s.id, version: s.version });
      expect(await expectJsonError(empty, 400, -32700)).toBe('Parse error: Invalid JSON');
    });

    it('400 -32600 on a second initialize, an initialize in a batch, or a batch over 100', async () => {
      const s = await rawSession(h);
      const again = await raw(h, { session: s.id, version: s.version, body: initializeMessage(LATEST, 1) });
      expect(await expectJsonError(again, 400, -32600)).toBe('Invalid Request: Server already initialized');
      const batch = await raw(h, { body: [initializeMessage(LATEST, 1), listMessage(2)] });
      expect(await expectJsonError(batch, 400, -32600)).toBe(
        'Invalid Request: Only one initialization request is allowed',
      );
      const big = Array.from({ length: 101 }, (_, i) => listMessage(i + 10));
      const tooMany = await raw(h, { session: s.id, version: s.version, body: big });
      expect(await expectJsonError(tooMany, 400, -32600)).toBe('Invalid Request: Batch must not exceed 100 messages');
    });

    it('400 without Mcp-Session-Id, 404 with a wrong one (POST, GET and DELETE)', async () => {
      const s = await rawSession(h);
      for (const method of ['POST', 'GET', 'DELETE']) {
        const body = method === 'POST' ? listMessage(1) : undefined;
        const missing = await raw(h, { method, route: s.id, version: s.version, body });
        expect(await expectJsonError(missing, 400, -32000)).toBe('Bad Request: Mcp-Session-Id header is required');
        const wrong = await raw(h, { method, route: s.id, session: randomUUID(), version: s.version, body });
        expect(await expectJsonError(wrong, 404, -32001)).toBe('Session not found');
      }
      // The session is untouched.
      expect(await (await post(h, s, listMessage(2))).rest()).toHaveLength(2);
    });

    it('400 on an unsupported MCP-Protocol-Version header; none is accepted', async () => {
      const s = await rawSession(h);
      for (const method of ['POST', 'GET', 'DELETE']) {
        const body = method === 'POST' ? listMessage(1) : undefined;
        const response = await raw(h, { method, session: s.id, version: '2024-01-01', body });
        expect(await expectJsonError(response, 400, -32000)).toMatch(
          /^Bad Request: Unsupported protocol version: 2024-01-01 \(supported versions: .*2025-11-25/,
        );
      }
      const without = await raw(h, { session: s.id, body: listMessage(2) });
      const events = await new SseReader(without).rest();
      // Without the header the version defaults to 2025-03-26: no priming event.
      expect(events.map(dataOf)).toMatchObject([{ id: 2, result: { tools: expect.any(Array) } }]);
    });

    it('202 with an empty body for notifications and responses only', async () => {
      const s = await rawSession(h);
      const notifications = await raw(h, {
        session: s.id,
        version: s.version,
        body: [
          { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
          { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } },
        ],
      });
      expect(notifications.status).toBe(202);
      expect(await notifications.text()).toBe('');
      const response = await raw(h, { session: s.id, version: s.version, body: { jsonrpc: '2.0', id: 5, result: {} } });
      expect(response.status).toBe(202);
      expect(await response.text()).toBe('');
    });

    it('409 on a second GET stream; 406 on a GET that does not accept SSE', async () => {
      const s = await rawSession(h);
      const notSse = await raw(h, { method: 'GET', session: s.id, version: s.version, accept: 'application/json' });
      expect(await expectJsonError(notSse, 406, -32000)).toBe('Not Acceptable: Client must accept text/event-stream');
      const first = abortable();
      const opened = raw(h, { method: 'GET', session: s.id, version: s.version, signal: first.signal });
      opened.catch(() => undefined);
      await until(() => h.heads.some((head) => head.method === 'GET' && head.status === 200), 'the first GET stream');
      const second = await raw(h, { method: 'GET', session: s.id, version: s.version });
      expect(await expectJsonError(second, 409, -32000)).toBe('Conflict: Only one SSE stream is allowed per session');
    });

    it('405 with Allow on other methods', async () => {
      const s = await rawSession(h);
      for (const method of ['PUT', 'PATCH']) {
        const response = await raw(h, { method, session: s.id, version: s.version, body: listMessage(1) });
        expect(response.headers.get('allow')).toBe('GET, POST, DELETE');
        expect(await expectJsonError(response, 405, -32000)).toBe('Method not allowed.');
      }
    });

    it('DELETE answers 200 and closes the session: then everything is 404 -32001', async () => {
      const s = await rawSession(h);
      const stream = abortable();
      const get = raw(h, { method: 'GET', session: s.id, version: s.version, signal: stream.signal });
      get.catch(() => undefined);
      await until(() => h.heads.some((head) => head.method === 'GET' && head.status === 200), 'the GET stream');
      const deleted = await raw(h, { method: 'DELETE', session: s.id, version: s.version });
      expect(deleted.status).toBe(200);
      expect(await deleted.text()).toBe('');
      await until(() => h.session(s.id).closed, 'the server to close');
      // The standalone stream was ended with the session.
      expect(await new SseReader(await get).rest()).toEqual([]);
      for (const method of ['POST', 'GET', 'DELETE']) {
        const body = method === 'POST' ? listMessage(1) : undefined;
        const response = await raw(h, { method, session: s.id, version: s.version, body });
        expect(await expectJsonError(response, 404, -32001)).toBe('Session not found');
      }
    });
  });

  describe('streams and resumability', () => {
    it('primes a 2025-11-25 answer with an event id and empty data; the response follows on that stream', async () => {
      const s = await rawSession(h, LATEST);
      const reader = await post(h, s, callMessage(1, 'echo', { message: 'hi' }));
      const priming = await primingId(reader);
      const events = await reader.rest();
      expect(events).toHaveLength(1);
      expect(streamOf(events[0]?.id)).toBe(streamOf(priming));
      expect(events[0]?.event).toBe('message');
      expect(dataOf(events[0] as SseEvent)).toMatchObject({
        id: 1,
        result: { content: [{ text: '{"message":"hi"}' }] },
      });
    });

    it('writes no priming event for 2025-06-18', async () => {
      const s = await rawSession(h, PREVIOUS);
      const reader = await post(h, s, callMessage(1, 'slow', { ms: 40, steps: 2 }, 'tok'));
      const events = await reader.rest();
      expect(events.every((event) => event.data !== '' && event.event === 'message' && event.id !== undefined)).toBe(
        true,
      );
      expect(events.map(dataOf)).toMatchObject([
        { method: 'notifications/progress', params: { progressToken: 'tok', progress: 1 } },
        { method: 'notifications/progress', params: { progressToken: 'tok', progress: 2 } },
        { id: 1, result: { content: [{ text: 'slept 40' }] } },
      ]);
    });

    it('replays the stored response (and the progress sent meanwhile) after the client went away', async () => {
      const s = await rawSession(h);
      const controller = abortable();
      const reader = await post(h, s, callMessage(3, 'slow', { ms: 150, steps: 3, tag: 'gone' }, 'p'), {
        tag: 'gone-post',
        signal: controller.signal,
      });
      const priming = await primingId(reader);
      controller.abort();
      await h.closed('gone-post');
      const session = h.session(s.id);
      await until(() => stored(session, priming, 3), 'the response to be stored', 5_000);

      const resumed = new SseReader(
        await raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: priming }),
      );
      const events = await resumed.rest();
      expect(events.map((event) => streamOf(event.id))).toEqual(events.map(() => streamOf(priming)));
      expect(events.map(dataOf)).toMatchObject([
        { method: 'notifications/progress', params: { progressToken: 'p', progress: 1, total: 3 } },
        { method: 'notifications/progress', params: { progressToken: 'p', progress: 2, total: 3 } },
        { method: 'notifications/progress', params: { progressToken: 'p', progress: 3, total: 3 } },
        { id: 3, result: { content: [{ text: 'slept 150' }] } },
      ]);

      // From a later event only what followed it; the stream is done, so it ends at once.
      const second = events[1]?.id ?? '';
      const again = await new SseReader(
        await raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: second }),
      ).rest();
      expect(again.map((event) => event.id)).toEqual(events.slice(2).map((event) => event.id));
    });

    it('resumes a call still running: later progress and the response arrive on the resumed stream, which ends', async () => {
      const s = await rawSession(h);
      const controller = abortable();
      const reader = await post(h, s, callMessage('r', 'slow', { ms: 900, steps: 3, tag: 'running' }, 7), {
        tag: 'running-post',
        signal: controller.signal,
      });
      const priming = await primingId(reader);
      controller.abort();
      await h.closed('running-post');

      const response = raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: priming });
      await until(
        () => h.heads.some((head) => head.method === 'GET' && head.lastEventId === priming),
        'the resumed stream',
      );
      expect(h.toolEvents.filter((e) => e.tag === 'running').map((e) => e.what)).toEqual(['started']);
      const resumed = new SseReader(await response);
      const messages: Json[] = [];
      for (let event = await resumed.next(); event !== undefined; event = await resumed.next()) {
        expect(streamOf(event.id)).toBe(streamOf(priming));
        messages.push(dataOf(event));
      }
      expect(messages).toMatchObject([
        { method: 'notifications/progress', params: { progressToken: 7, progress: 1 } },
        { method: 'notifications/progress', params: { progressToken: 7, progress: 2 } },
        { method: 'notifications/progress', params: { progressToken: 7, progress: 3 } },
        { id: 'r', result: { content: [{ text: 'slept 900' }] } },
      ]);
      expect(h.toolEvents.filter((e) => e.tag === 'running').map((e) => e.what)).toEqual(['started', 'finished']);
    });

    it('resumes again from the last event seen on a resumed stream that dropped too', async () => {
      const s = await rawSession(h);
      const post1 = abortable();
      const reader = await post(h, s, callMessage(5, 'slow', { ms: 450, steps: 3, tag: 'twice' }, 't'), {
        tag: 'twice-post',
        signal: post1.signal,
      });
      const priming = await primingId(reader);
      post1.abort();
      await h.closed('twice-post');
      const get1 = abortable();
      const first = new SseReader(
        await raw(h, {
          method: 'GET',
          session: s.id,
          version: s.version,
          lastEventId: priming,
          tag: 'twice-get',
          signal: get1.signal,
        }),
      );
      const progress = await first.next();
      expect(dataOf(progress as SseEvent)).toMatchObject({ method: 'notifications/progress', params: { progress: 1 } });
      get1.abort();
      await h.closed('twice-get');
      const second = new SseReader(
        await raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: progress?.id }),
      );
      expect((await second.rest()).map(dataOf)).toMatchObject([
        { method: 'notifications/progress', params: { progress: 2 } },
        { method: 'notifications/progress', params: { progress: 3 } },
        { id: 5, result: { content: [{ text: 'slept 450' }] } },
      ]);
    });

    it('409 on resuming a stream whose POST is still connected', async () => {
      const s = await rawSession(h);
      const controller = abortable();
      const reader = await post(h, s, callMessage(1, 'slow', { ms: 10_000, tag: 'held' }), {
        signal: controller.signal,
      });
      const priming = await primingId(reader);
      const response = await raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: priming });
      expect(await expectJsonError(response, 409, -32000)).toBe('Conflict: Stream already has an active connection');
    });

    it('400 on a Last-Event-ID the store did not mint; an unknown stream replays nothing and ends', async () => {
      const s = await rawSession(h);
      const response = await raw(h, { method: 'GET', session: s.id, version: s.version, lastEventId: 'not-an-id' });
      expect(await expectJsonError(response, 400, -32000)).toBe('Invalid event ID format');
      const unknown = await raw(h, {
        method: 'GET',
        session: s.id,
        version: s.version,
        lastEventId: `${randomUUID()}:0`,
      });
      expect(await new SseReader(unknown).rest()).toEqual([]);
    });

    it('resumes the standalone GET stream: missed notifications, then live ones', async () => {
      const s = await rawSession(h);
      const session = h.session(s.id);
      const controller = abortable();
      const opened = raw(h, {
        method: 'GET',
        session: s.id,
        version: s.version,
        tag: 'get-1',
        signal: controller.signal,
      });
      await until(() => h.heads.some((head) => head.method === 'GET' && head.status === 200), 'the GET stream');
      session.server.sendToolListChanged();
      const first = new SseReader(await opened);
      const seen = await first.next();
      expect(seen?.id).toBeDefined();
      expect(dataOf(seen as SseEvent)).toMatchObject({ method: 'notifications/tools/list_changed' });
      controller.abort();
      await h.closed('get-1');

      await session.server.server.sendLoggingMessage({ level: 'info', data: 'missed' });
      const again = abortable();
      const resumed = new SseReader(
        await raw(h, {
          method: 'GET',
          session: s.id,
          version: s.version,
          lastEventId: seen?.id,
          signal: again.signal,
        }),
      );
      expect(await resumed.message()).toMatchObject({ method: 'notifications/message', params: { data: 'missed' } });
      // The resumed stream is the standalone stream now: a second GET conflicts, notifications arrive live.
      const second = await raw(h, { method: 'GET', session: s.id, version: s.version });
      expect(second.status).toBe(409);
      await second.body?.cancel();
      await session.server.server.sendLoggingMessage({ level: 'info', data: 'live' });
      expect(await resumed.message()).toMatchObject({ method: 'notifications/message', params: { data: 'live' } });
    });

    it('answers a batch of two requests on one SSE stream that ends after the second response', async () => {
      const s = await rawSession(h);
      const reader = await post(h, s, [
        callMessage('slow', 'slow', { ms: 200, steps: 1 }),
        callMessage('fast', 'echo', { message: 'batch' }),
      ]);
      const priming = await primingId(reader);
      const fast = await reader.next();
      expect(dataOf(fast as SseEvent)).toMatchObject({
        id: 'fast',
        result: { content: [{ text: '{"message":"batch"}' }] },
      });
      // The stream stays open for the slow one.
      const slow = await reader.next();
      expect(dataOf(slow as SseEvent)).toMatchObject({ id: 'slow', result: { content: [{ text: 'slept 200' }] } });
      expect([fast?.id, slow?.id].map(streamOf)).toEqual([streamOf(priming), streamOf(priming)]);
      expect(await reader.next()).toBeUndefined();
    });

    it('answers a batch of a request and a notification on the request stream', async () => {
      const s = await rawSession(h);
      const reader = await post(h, s, [{ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }, listMessage(4)]);
      await primingId(reader);
      expect((await reader.rest()).map(dataOf)).toMatchObject([{ id: 4, result: { tools: expect.any(Array) } }]);
    });
  });
});

/*
 * Corner cases where the two transports could differ, run against both: ours follows the SDK's
 * answers except for the empty batch.
 */
describe.each(['node', 'sdk'] as const)('divergences from the SDK transport, against the %s transport', (kind) => {
  let h: Harness;
  const aborts: AbortController[] = [];

  beforeEach(async () => {
    h = await startHarness(kind);
  });

  afterEach(async () => {
    for (const controller of aborts.splice(0)) controller.abort();
    await h.close();
  });

  it('an empty Last-Event-ID is no Last-Event-ID: the GET opens the standalone stream', async () => {
    const s = await rawSession(h);
    const controller = new AbortController();
    aborts.push(controller);
    const response = raw(h, {
      method: 'GET',
      session: s.id,
      version: s.version,
      lastEventId: '',
      signal: controller.signal,
    });
    response.catch(() => undefined);
    await until(() => h.heads.some((head) => head.method === 'GET'), 'the GET to be answered', 2_000);
    expect(h.heads.find((head) => head.method === 'GET')?.status).toBe(200);
    await h.session(s.id).server.server.sendLoggingMessage({ level: 'info', data: 'on the GET stream' });
    expect(await new SseReader(await response).message()).toMatchObject({ params: { data: 'on the GET stream' } });
  });

  it('a message with a member JSON-RPC does not define is 400 -32700 (the SDK schema is strict)', async () => {
    const s = await rawSession(h);
    const response = await raw(h, { session: s.id, version: s.version, body: { ...listMessage(1), extra: true } });
    expect(await expectJsonError(response, 400, -32700)).toBe('Parse error: Invalid JSON-RPC message');
  });

  it('an error response with id null, or a non-integer code, is 400 -32700', async () => {
    const s = await rawSession(h);
    for (const body of [
      { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'no id' } },
      { jsonrpc: '2.0', id: 3, error: { code: 1.5, message: 'odd code' } },
    ]) {
      const response = await raw(h, { session: s.id, version: s.version, body });
      expect(await expectJsonError(response, 400, -32700)).toBe('Parse error: Invalid JSON-RPC message');
    }
  });

  // Kept on purpose: JSON-RPC 2.0 makes an empty array an invalid request, which ours answers as such.
  it('an empty batch: 202 from the SDK, 400 -32700 from ours', async () => {
    const s = await rawSession(h);
    const response = await raw(h, { session: s.id, version: s.version, body: [] });
    if (kind === 'sdk') expect(response.status).toBe(202);
    else expect(await expectJsonError(response, 400, -32700)).toBe('Parse error: Invalid JSON-RPC message');
  });
});
