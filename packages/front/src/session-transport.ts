import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DEFAULT_NEGOTIATED_PROTOCOL_VERSION,
  type JSONRPCMessage,
  type MessageExtraInfo,
  type RequestId,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Transport,
  type TransportSendOptions,
} from '@modelcontextprotocol/server';
import { RpcCode } from '@portcullis/core';
import type { BoundedEventStore } from './event-store.js';
import { header, isJsonContentType, isRecord, SSE_HEADERS } from './http-util.js';

/** The SDK's bound on a batch (JSON-RPC arrays are still accepted from 2025-03-26 clients). */
const MAX_BATCH_SIZE = 100;
/** A comment line on idle SSE streams, so that proxies and clients do not time them out. */
const KEEP_ALIVE_MS = 15_000;
const STANDALONE_STREAM = '_GET_stream';

/** The server's SSE answer to one POST (or to a GET that resumed it). */
interface RequestStream {
  readonly id: string;
  /** Absent while no connection carries the stream (the client went away and may resume it). */
  res: ServerResponse | undefined;
  /** Requests of the POST still waiting for their responses. */
  readonly pending: Set<RequestId>;
  /** What `res` must carry before anything else (the priming event, or nothing), until it is written. */
  opening: string | undefined;
}

/**
 * A 2025-era Streamable HTTP session transport written against `node:http` directly (the SDK's
 * node transport converts every request and response to web streams and back, which was most of
 * the gateway's CPU per call). It behaves as the SDK's `WebStandardStreamableHTTPServerTransport`
 * with an event store: every POST that carries requests is answered on its own SSE stream, primed
 * with an event id so that a client can resume it with `Last-Event-ID`; messages without a related
 * request go to the GET stream; DELETE ends the session. The same status codes and JSON-RPC errors
 * answer the same mistakes. The session id is fixed by the front; the front has already checked
 * Host, Origin, identity and the body size, and routed by `Mcp-Session-Id`.
 */
export class NodeSessionTransport implements Transport {
  readonly sessionId: string;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: (<T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void) | undefined;
  private supportedVersions: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;
  private initialized = false;
  private closed = false;
  private readonly streams = new Map<string, RequestStream>();
  private readonly streamOfRequest = new Map<RequestId, RequestStream>();
  private standalone: ServerResponse | undefined;
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    sessionId: string,
    private readonly events: BoundedEventStore,
    private readonly onInitialize: () => void,
  ) {
    this.sessionId = sessionId;
    this.keepAlive = setInterval(() => this.pingStreams(), KEEP_ALIVE_MS);
    this.keepAlive.unref();
  }

  async start(): Promise<void> {}

  setSupportedProtocolVersions(versions: string[]): void {
    this.supportedVersions = versions;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAlive);
    for (const stream of this.streams.values()) stream.res?.end();
    this.streams.clear();
    this.streamOfRequest.clear();
    this.standalone?.end();
    this.standalone = undefined;
    this.onclose?.();
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const responseId = 'result' in message || 'error' in message ? message.id : undefined;
    const relatedId = responseId ?? options?.relatedRequestId;
    if (relatedId === undefined || relatedId === null) {
      if (responseId !== undefined) throw new Error('Cannot send a response on the standalone SSE stream');
      const eventId = this.events.append(STANDALONE_STREAM, message);
      if (this.standalone) writeEvent(this.standalone, message, eventId);
      return;
    }
    const stream = this.streamOfRequest.get(relatedId);
    if (!stream) throw new Error(`No connection established for request ID: ${String(relatedId)}`);
    const eventId = this.events.append(stream.id, message);
    const res = stream.res;
    if (responseId === undefined) {
      if (res) {
        open(stream, res);
        writeEvent(res, message, eventId);
      }
      return;
    }
    stream.pending.delete(responseId);
    this.streamOfRequest.delete(responseId);
    const done = stream.pending.size === 0;
    if (done) this.streams.delete(stream.id);
    if (!res) return;
    // What is still unwritten, the last event and the end of the chunked body leave in one write.
    res.cork();
    open(stream, res);
    writeEvent(res, message, eventId);
    if (done) res.end();
    res.uncork();
  }

  /** Serves one request of this session; `body` is the parsed JSON of a POST (`undefined` when empty). */
  async handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    if (this.closed) return jsonError(res, 404, -32001, 'Session not found');
    switch (req.method) {
      case 'POST':
        return this.handlePost(req, res, body);
      case 'GET':
        return this.handleGet(req, res);
      case 'DELETE':
        return this.handleDelete(req, res);
      default:
        res.setHeader('allow', 'GET, POST, DELETE');
        return jsonError(res, 405, -32000, 'Method not allowed.');
    }
  }

  private handlePost(req: IncomingMessage, res: ServerResponse, body: unknown): undefined {
    const accept = req.headers.accept ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return jsonError(
        res,
        406,
        -32000,
        'Not Acceptable: Client must accept both application/json and text/event-stream',
      );
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      return jsonError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    }
    if (body === undefined) return jsonError(res, 400, RpcCode.ParseError, 'Parse error: Invalid JSON');
    if (Array.isArray(body) && body.length > MAX_BATCH_SIZE) {
      return jsonError(
        res,
        400,
        RpcCode.InvalidRequest,
        `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`,
      );
    }
    const raw = Array.isArray(body) ? body : [body];
    if (raw.length === 0 || !raw.every(isJsonRpcMessage)) {
      return jsonError(res, 400, RpcCode.ParseError, 'Parse error: Invalid JSON-RPC message');
    }
    const messages = raw as JSONRPCMessage[];
    const initialize = messages.find((message) => 'method' in message && message.method === 'initialize');
    if (initialize) {
      if (this.initialized) {
        return jsonError(res, 400, RpcCode.InvalidRequest, 'Invalid Request: Server already initialized');
      }
      if (messages.length > 1) {
        return jsonError(
          res,
          400,
          RpcCode.InvalidRequest,
          'Invalid Request: Only one initialization request is allowed',
        );
      }
      this.initialized = true;
      this.onInitialize();
    } else if (!this.checkSession(req, res)) {
      return;
    }
    const requests = messages.filter(isRequest);
    if (requests.length === 0) {
      for (const message of messages) this.onmessage?.(message);
      res.writeHead(202).end();
      return;
    }
    const stream: RequestStream = { id: randomUUID(), res: undefined, pending: new Set(), opening: undefined };
    for (const request of requests) {
      stream.pending.add(request.id);
      this.streamOfRequest.set(request.id, stream);
    }
    this.streams.set(stream.id, stream);
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId });
    const version =
      initialize && 'params' in initialize && typeof initialize.params?.protocolVersion === 'string'
        ? initialize.params.protocolVersion
        : (header(req, 'mcp-protocol-version') ?? DEFAULT_NEGOTIATED_PROTOCOL_VERSION);
    // A priming event (an id, no data) lets the client resume the stream; older clients choke on empty data.
    const primed = this.supportedVersions.includes(version) && version >= '2025-11-25';
    carry(stream, res, primed ? `id: ${this.events.append(stream.id, {} as JSONRPCMessage)}\ndata: \n\n` : '');
    for (const message of messages) this.onmessage?.(message);
    // The headers and the priming event go out once the requests are on their way (a routed call
    // reaches its upstream first), or with the first message if that comes sooner.
    setImmediate(() => open(stream, res));
  }

  private handleGet(req: IncomingMessage, res: ServerResponse): undefined {
    if (!(req.headers.accept ?? '').includes('text/event-stream')) {
      return jsonError(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (!this.checkSession(req, res)) return;
    const lastEventId = header(req, 'last-event-id');
    // An empty Last-Event-ID resumes nothing: the GET opens the standalone stream.
    if (lastEventId !== undefined && lastEventId !== '') return this.resume(res, lastEventId);
    if (this.standalone !== undefined) {
      return jsonError(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    }
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId });
    res.flushHeaders();
    this.attachStandalone(res);
  }

  /** Replays what a stream carried after `lastEventId`, then goes on carrying it if it is still open. */
  private resume(res: ServerResponse, lastEventId: string): undefined {
    const replay = this.events.eventsAfter(lastEventId);
    if (replay === undefined) return jsonError(res, 400, -32000, 'Invalid event ID format');
    const stream = this.streams.get(replay.streamId);
    if (
      (stream?.res !== undefined && !stream.res.writableEnded) ||
      (replay.streamId === STANDALONE_STREAM && this.standalone)
    ) {
      return jsonError(res, 409, -32000, 'Conflict: Stream already has an active connection');
    }
    res.writeHead(200, { ...SSE_HEADERS, 'mcp-session-id': this.sessionId });
    for (const event of replay.events) writeEvent(res, event.message, event.id);
    if (replay.streamId === STANDALONE_STREAM) return this.attachStandalone(res);
    if (stream === undefined) {
      res.end();
      return;
    }
    carry(stream, res, undefined);
  }

  private attachStandalone(res: ServerResponse): undefined {
    this.standalone = res;
    res.once('close', () => {
      if (this.standalone === res) this.standalone = undefined;
    });
  }

  private handleDelete(req: IncomingMessage, res: ServerResponse): undefined {
    if (!this.checkSession(req, res)) return;
    res.writeHead(200).end();
    void this.close();
  }

  /** The session id and protocol version of a request after `initialize`; answers it when they are wrong. */
  private checkSession(req: IncomingMessage, res: ServerResponse): boolean {
    return this.checkSessionId(req, res) && this.checkProtocolVersion(req, res);
  }

  private checkSessionId(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.initialized) {
      jsonError(res, 400, -32000, 'Bad Request: Server not initialized');
      return false;
    }
    const id = header(req, 'mcp-session-id');
    if (id === undefined) {
      jsonError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return false;
    }
    if (id !== this.sessionId) {
      jsonError(res, 404, -32001, 'Session not found');
      return false;
    }
    return true;
  }

  private checkProtocolVersion(req: IncomingMessage, res: ServerResponse): boolean {
    const version = header(req, 'mcp-protocol-version');
    if (version === undefined || this.supportedVersions.includes(version)) return true;
    jsonError(
      res,
      400,
      -32000,
      `Bad Request: Unsupported protocol version: ${version} (supported versions: ${this.supportedVersions.join(', ')})`,
    );
    return false;
  }

  private pingStreams(): void {
    for (const stream of this.streams.values()) stream.res?.write(': keepalive\n\n');
    this.standalone?.write(': keepalive\n\n');
  }
}

/** Makes `res` the connection carrying `stream`, to open with `opening`, until it closes. */
function carry(stream: RequestStream, res: ServerResponse, opening: string | undefined): void {
  stream.res = res;
  stream.opening = opening;
  res.once('close', () => {
    if (stream.res === res) stream.res = undefined;
  });
}

/** Writes the stream's opening on `res` if it has not been written yet. */
function open(stream: RequestStream, res: ServerResponse): void {
  const opening = stream.opening;
  if (opening === undefined || stream.res !== res || res.writableEnded) return;
  stream.opening = undefined;
  if (opening === '') res.flushHeaders();
  else res.write(opening);
}

function writeEvent(res: ServerResponse, message: JSONRPCMessage, eventId: string): void {
  if (res.writableEnded) return;
  res.write(`event: message\nid: ${eventId}\ndata: ${JSON.stringify(message)}\n\n`);
}

function jsonError(res: ServerResponse, status: number, code: number, message: string): undefined {
  const text = JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const isRequestId = (id: unknown): id is RequestId =>
  typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id));

const REQUEST_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESULT_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'result']);
const ERROR_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'error']);

/**
 * The shape of a JSON-RPC 2.0 request, notification or response, as strict as the SDK's message
 * schema: no members JSON-RPC does not define, integer error codes, no `null` ids.
 */
function isJsonRpcMessage(value: unknown): boolean {
  if (!isRecord(value) || value.jsonrpc !== '2.0') return false;
  const keys = Object.keys(value);
  if (typeof value.method === 'string') {
    return (
      keys.every((key) => REQUEST_KEYS.has(key)) &&
      (value.params === undefined || isRecord(value.params)) &&
      (!('id' in value) || isRequestId(value.id))
    );
  }
  if ('result' in value) {
    return keys.every((key) => RESULT_KEYS.has(key)) && isRequestId(value.id) && isRecord(value.result);
  }
  if ('error' in value) {
    const error = value.error;
    return (
      keys.every((key) => ERROR_KEYS.has(key)) &&
      (value.id === undefined || isRequestId(value.id)) &&
      isRecord(error) &&
      Number.isInteger(error.code) &&
      typeof error.message === 'string'
    );
  }
  return false;
}

function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & { id: RequestId; method: string } {
  return 'method' in message && 'id' in message && message.id !== undefined;
}
