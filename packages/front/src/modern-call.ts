import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  SERVER_INFO_META_KEY,
} from '@modelcontextprotocol/server';
import {
  encodeMcpHeaderValue,
  type Identity,
  JsonRpcError,
  RpcCode,
  type RpcParams,
  type RpcResult,
} from '@portcullis/core';
import { type AgentRequestIo, declaresMcpHeaders, type Gateway } from '@portcullis/gateway';
import { header, isJsonContentType, isRecord, SSE_HEADERS } from './http-util.js';

const MODERN_VERSION = '2026-07-28';
const ENVELOPE_KEYS: ReadonlySet<string> = new Set([
  PROTOCOL_VERSION_META_KEY,
  CLIENT_INFO_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
  LOG_LEVEL_META_KEY,
]);
const META_KEYS: ReadonlySet<string> = new Set([...ENVELOPE_KEYS, 'progressToken']);
const REQUEST_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params']);
const PARAMS_KEYS: ReadonlySet<string> = new Set(['name', 'arguments', '_meta']);
const CLIENT_INFO_KEYS: ReadonlySet<string> = new Set(['name', 'version', 'title']);
const LOG_LEVELS: ReadonlySet<string> = new Set([
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
]);

/** A 2026-era `tools/call` this front serves itself, as read off the request. */
interface ModernToolCall {
  readonly id: string | number;
  readonly name: string;
  /** The params the session sees: without the envelope keys (the SDK lifts them out the same way). */
  readonly params: RpcParams;
  readonly envelope: Readonly<Record<string, unknown>>;
}

/**
 * The hot path of the 2026 era: a plain `tools/call` served without the SDK's per-request handler
 * (which builds a web request, an SDK server and a per-request transport for every call).
 *
 * It takes only requests the SDK would accept unchanged, checked conservatively: a single request
 * with exactly the members and envelope keys a client sends, the `2026-07-28` revision in the
 * envelope and in `MCP-Protocol-Version`, `Mcp-Method`/`Mcp-Name` equal to the body (the name
 * plain, not base64-encoded), no `Mcp-Param-*` header, no retry material (`requestState`,
 * `inputResponses`), and a tool the caller's scope has listed whose input schema declares no
 * `x-mcp-header`. Anything else (and every error answer the SDK's validation ladder gives) is left
 * to the SDK: this returns `false` without touching `res`.
 *
 * What it sends is what the SDK sends: the result stamped with `resultType: "complete"` (unless the
 * result carries its own) and the gateway's `io.modelcontextprotocol/serverInfo` in `_meta`, as a
 * JSON body when nothing precedes it, or as the last event of an SSE stream that the first related
 * notification opened; errors as JSON-RPC errors with status 200 (400 for -32021, as the SDK). A
 * closed connection cancels the call.
 */
export async function serveModernToolCall(
  gateway: Gateway,
  identity: Identity,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
): Promise<boolean> {
  const call = readModernToolCall(req, body);
  if (call === undefined) return false;
  const upstreamSessionKey = modernSessionKey(identity);
  const schema = gateway.cachedToolInputSchema(upstreamSessionKey, call.name);
  if (schema === undefined || declaresMcpHeaders(schema)) return false;

  const session = gateway.createSession({
    era: 'modern',
    frontTransport: 'streamable-http',
    identity,
    upstreamSessionKey,
  });
  const abort = new AbortController();
  let answered = false;
  let streaming = false;
  res.once('close', () => {
    if (!answered) abort.abort(new Error('the agent closed the request'));
  });
  const writeEvent = (message: unknown): void => {
    if (!streaming) {
      streaming = true;
      res.writeHead(200, SSE_HEADERS);
    }
    res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  };
  const io: Omit<AgentRequestIo, 'signal'> = {
    id: call.id,
    envelope: call.envelope,
    notify: async (method, params) => {
      if (!answered && !res.writableEnded) writeEvent({ jsonrpc: '2.0', method, params });
    },
    send: refuseAgentRequest,
  };
  let response: Record<string, unknown>;
  let status = 200;
  try {
    const result = await session.dispatch('tools/call', call.params, io, abort);
    checkInputRequests(result, call.envelope[CLIENT_CAPABILITIES_META_KEY]);
    response = { result: encodeResult(result, gateway.serverInfo), jsonrpc: '2.0', id: call.id };
  } catch (error) {
    const wire = wireError(error);
    // The one in-band error the SDK answers with an HTTP error status (unless a stream is open).
    if (wire.code === MISSING_CLIENT_CAPABILITY) status = 400;
    response = { jsonrpc: '2.0', id: call.id, error: wire };
  }
  answered = true;
  if (!abort.signal.aborted && !res.writableEnded) {
    if (streaming) {
      res.end(`event: message\ndata: ${JSON.stringify(response)}\n\n`);
    } else {
      const text = JSON.stringify(response);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }
  }
  // After the answer is on its way: closing the session is bookkeeping the agent need not wait for.
  void session.close();
  return true;
}

/**
 * The upstream session key of 2026-era requests: `per-session` upstream connections are one per
 * identity (by subject; no API key is named `anonymous`), since those requests carry no session.
 */
export function modernSessionKey(identity: Identity): string {
  return `modern:${identity.subject}`;
}

/** The call, when the request is one `serveModernToolCall` serves exactly as the SDK would. */
function readModernToolCall(req: IncomingMessage, body: unknown): ModernToolCall | undefined {
  if (req.method !== 'POST' || !isJsonContentType(header(req, 'content-type'))) return undefined;
  const accept = header(req, 'accept') ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return undefined;
  if (!isRecord(body) || !onlyKeys(body, REQUEST_KEYS) || body.jsonrpc !== '2.0' || body.method !== 'tools/call') {
    return undefined;
  }
  const id = body.id;
  if (typeof id !== 'string' && !Number.isSafeInteger(id)) return undefined;
  const params = body.params;
  if (!isRecord(params) || !onlyKeys(params, PARAMS_KEYS)) return undefined;
  const { name, arguments: args, _meta: meta } = params;
  if (typeof name !== 'string' || (args !== undefined && !isRecord(args))) return undefined;
  if (!isRecord(meta) || !onlyKeys(meta, META_KEYS) || !isEnvelope(meta)) return undefined;
  if (
    header(req, 'mcp-protocol-version') !== MODERN_VERSION ||
    header(req, 'mcp-method') !== 'tools/call' ||
    header(req, 'mcp-name') !== name ||
    encodeMcpHeaderValue(name) !== name
  ) {
    return undefined;
  }
  // `req.headers`, `meta` and `params` are plain objects (Node's header map, JSON.parse): for-in
  // visits exactly their own keys, without the array Object.keys/entries would allocate.
  for (const key in req.headers) if (key.startsWith('mcp-param-')) return undefined;
  const envelope: Record<string, unknown> = {};
  let rest: Record<string, unknown> | undefined;
  for (const key in meta) {
    if (ENVELOPE_KEYS.has(key)) envelope[key] = meta[key];
    else {
      rest ??= {};
      rest[key] = meta[key];
    }
  }
  // Keys in the order the agent's would have: name, arguments, _meta.
  const sessionParams: RpcParams = { name };
  if (args !== undefined) sessionParams.arguments = args;
  if (rest) sessionParams._meta = rest;
  return { id: id as string | number, name, params: sessionParams, envelope };
}

/** The envelope a 2026-era client sends, in the shapes the SDK's envelope schema accepts. */
function isEnvelope(meta: Record<string, unknown>): boolean {
  if (meta[PROTOCOL_VERSION_META_KEY] !== MODERN_VERSION) return false;
  const capabilities = meta[CLIENT_CAPABILITIES_META_KEY];
  if (!isRecord(capabilities) || !everyValue(capabilities, isRecord)) return false;
  const clientInfo = meta[CLIENT_INFO_META_KEY];
  if (
    clientInfo !== undefined &&
    !(
      isRecord(clientInfo) &&
      onlyKeys(clientInfo, CLIENT_INFO_KEYS) &&
      typeof clientInfo.name === 'string' &&
      typeof clientInfo.version === 'string' &&
      everyValue(clientInfo, isString)
    )
  ) {
    return false;
  }
  const level = meta[LOG_LEVEL_META_KEY];
  if (level !== undefined && !(typeof level === 'string' && LOG_LEVELS.has(level))) return false;
  const token = meta.progressToken;
  return token === undefined || typeof token === 'string' || Number.isSafeInteger(token);
}

/** The SDK's 2026 result encoding for `tools/call`: the `resultType` stamp, then the server's identity in `_meta`. */
function encodeResult(result: RpcResult, serverInfo: Readonly<Record<string, unknown>>): RpcResult {
  const meta = result._meta;
  const stamp = result.resultType === undefined;
  const identify = meta === undefined || (isRecord(meta) && meta[SERVER_INFO_META_KEY] === undefined);
  if (!stamp && !identify) return result;
  // One copy, whose keys and order are those of stamping first and adding the identity after
  // (a key the result already has keeps its place). Assigned rather than written after the spread
  // in the literal: such a literal's stores take V8's slow path once results differ in shape, and
  // on this fresh plain copy an assignment defines the same data property.
  const encoded: RpcResult = { ...result };
  if (stamp) encoded.resultType = 'complete';
  if (identify) encoded._meta = { ...meta, [SERVER_INFO_META_KEY]: serverInfo };
  return encoded;
}

/** Server-to-client requests: a 2026-era agent is asked through `input_required` results instead. */
function refuseAgentRequest(): Promise<never> {
  return Promise.reject(
    new JsonRpcError(RpcCode.MethodNotFound, 'a 2026-era agent is asked through input_required results'),
  );
}

/** A JSON-RPC error as the SDK sends a handler's: its integer code (-32002 as -32602 in this revision), message and data. */
function wireError(error: unknown): { code: number; message: string; data?: unknown } {
  const { code, message, data } = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
    data?: unknown;
  };
  const thrown = typeof code === 'number' && Number.isSafeInteger(code) ? code : RpcCode.InternalError;
  return {
    code: thrown === -32002 ? -32602 : thrown,
    message: typeof message === 'string' ? message : 'Internal error',
    ...(data !== undefined && { data }),
  };
}

const MISSING_CLIENT_CAPABILITY = -32021;

/**
 * The SDK's check of an `input_required` result before it leaves: it must carry input requests or
 * a request state, every input request must be an embedded elicitation, sampling or roots request,
 * and the request's declared client capabilities must cover each (-32021 naming what is missing).
 */
function checkInputRequests(result: RpcResult, declared: unknown): void {
  if (result.resultType !== 'input_required') return;
  const inputRequests = isRecord(result.inputRequests) ? result.inputRequests : {};
  const keys = Object.keys(inputRequests);
  if (keys.length === 0 && typeof result.requestState !== 'string') {
    throw new JsonRpcError(
      RpcCode.InternalError,
      'Handler for tools/call returned an input-required result with neither inputRequests nor requestState (every InputRequiredResult must include at least one of the two)',
    );
  }
  const capabilities = isRecord(declared) ? declared : {};
  for (const key of keys) {
    const entry = inputRequests[key];
    if (!isRecord(entry) || typeof entry.method !== 'string') {
      throw new JsonRpcError(
        RpcCode.InternalError,
        `Handler for tools/call returned an invalid input request '${key}': each inputRequests entry must be an embedded elicitation/create, sampling/createMessage, or roots/list request`,
      );
    }
    const required = requiredCapabilities(entry.method, isRecord(entry.params) ? entry.params : {});
    if (required === undefined) {
      throw new JsonRpcError(
        RpcCode.InternalError,
        `Handler for tools/call returned an input request '${key}' of kind '${entry.method}', which is not an embedded request the 2026-07-28 revision defines`,
      );
    }
    const missing = missingCapabilities(required, capabilities);
    if (missing !== undefined) {
      throw new JsonRpcError(
        MISSING_CLIENT_CAPABILITY,
        `Cannot request input '${key}' (${entry.method}): the request's client capabilities do not declare the required capability`,
        { requiredCapabilities: missing },
      );
    }
  }
}

function requiredCapabilities(
  method: string,
  params: Record<string, unknown>,
): Record<string, Record<string, unknown>> | undefined {
  switch (method) {
    case 'elicitation/create':
      return params.mode === 'url' ? { elicitation: { url: {} } } : { elicitation: { form: {} } };
    case 'sampling/createMessage':
      return params.tools !== undefined || params.toolChoice !== undefined
        ? { sampling: { tools: {} } }
        : { sampling: {} };
    case 'roots/list':
      return { roots: {} };
    default:
      return undefined;
  }
}

/**
 * The required capabilities not declared: a capability counts when its key is declared and each
 * member it names is too, except that a bare `elicitation` (no mode) declares `form`.
 */
function missingCapabilities(
  required: Record<string, Record<string, unknown>>,
  declared: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const missing: Record<string, unknown> = {};
  for (const [capability, members] of Object.entries(required)) {
    const value = declared[capability];
    if (value === undefined) {
      missing[capability] = members;
      continue;
    }
    if (!isRecord(value)) continue;
    const absent: Record<string, unknown> = {};
    for (const [member, requirement] of Object.entries(members)) {
      const bareElicitation =
        capability === 'elicitation' && member === 'form' && value.form === undefined && value.url === undefined;
      if (value[member] === undefined && !bareElicitation) absent[member] = requirement;
    }
    if (Object.keys(absent).length > 0) missing[capability] = absent;
  }
  return Object.keys(missing).length > 0 ? missing : undefined;
}

/** `Object.values(record).every(test)` for a plain (JSON) object, without the array. */
function everyValue(record: Record<string, unknown>, test: (value: unknown) => boolean): boolean {
  for (const key in record) if (!test(record[key])) return false;
  return true;
}

function isString(value: unknown): boolean {
  return typeof value === 'string';
}

function onlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
