import { StringDecoder } from 'node:string_decoder';
import { encodeMcpHeaderValue, JsonRpcError, PortcullisError, type RpcParams, type RpcResult } from '@portcullis/core';
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import { Agent, type Dispatcher } from 'undici';
import { UpstreamErrorCode, unavailableError } from './errors.js';
import { FREE_SOCKET_IDLE_MS } from './http-fetch.js';
import type { ProgressUpdate } from './types.js';

/** A JSON-RPC message as it crossed the wire, before anything is known of it. */
type WireMessage = Readonly<Record<string, unknown>>;

/** What a direct exchange needs from the connection it belongs to. */
export interface DirectHttpPeer {
  /** The upstream's name, for errors. */
  readonly upstream: string;
  readonly url: URL;
  /** The headers of every request on this session: configured ones, session id, protocol version. */
  headers(): Readonly<Record<string, string>>;
  /**
   * Present for a 2026-era upstream: the `_meta` envelope keys every request carries (protocol
   * version, client info, capabilities; a request's own keys take precedence). Requests then carry
   * `Mcp-Method`/`Mcp-Name` headers, and results their `resultType`.
   */
  readonly envelope?: Readonly<Record<string, unknown>>;
  /** A notification the upstream sent on the request's stream (other than the request's own progress). */
  notification(method: string, params: RpcParams): void;
  /** A request the upstream sent on the request's stream (sampling, elicitation, roots, ping); answered by the peer. */
  serverRequest(message: WireMessage): void;
  /** Tells the upstream the request was given up (`notifications/cancelled`). */
  cancel(requestId: string, reason: string): void;
  /** Aborted when the connection's session ends: requests still in flight fail as unavailable. */
  readonly closed: AbortSignal;
}

export interface DirectRequestOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ProgressUpdate) => void;
  /** Time without an answer (or progress) after which the request is cancelled. */
  readonly timeoutMs: number;
  /** Extra headers of this request (2026-era `Mcp-Param-*`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The param whose value a 2026-era request mirrors in `Mcp-Name`. */
const MCP_NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/**
 * Ids of direct requests are strings so that they never meet the SDK client's numeric ids on the
 * same upstream session (its health checks and handshakes keep using the SDK).
 */
let nextDirectId = 0;

/**
 * Sends one request to a Streamable HTTP upstream (either era) as a single POST on the keep-alive
 * pool and reads its answer (a JSON body or an SSE stream) without the SDK client: the request is
 * serialised once and the answer parsed once. Every message on the stream is still delivered:
 * progress for this request to `onProgress`, other notifications and server-to-client requests to
 * the peer, in the order they arrived, before the response settles the promise.
 */
export function directRequest(
  peer: DirectHttpPeer,
  method: string,
  params: RpcParams | undefined,
  options: DirectRequestOptions,
): Promise<RpcResult> {
  const id = `pc-${++nextDirectId}`;
  const envelope = peer.envelope;
  let sentParams = options.onProgress ? withProgressToken(params, id) : params;
  const requestHeaders: Record<string, string> = { ...peer.headers(), ...options.headers };
  if (envelope !== undefined) {
    const meta = isRecord(sentParams?._meta) ? sentParams._meta : undefined;
    sentParams = { ...sentParams, _meta: { ...envelope, ...meta } };
    requestHeaders['mcp-method'] = method;
    const nameSource = MCP_NAME_SOURCE[method];
    const name = nameSource === undefined ? undefined : sentParams[nameSource];
    if (typeof name === 'string') requestHeaders['mcp-name'] = encodeMcpHeaderValue(name);
  }
  const body = JSON.stringify(
    sentParams === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params: sentParams },
  );
  const { signal } = options;
  if (signal?.aborted) {
    return Promise.reject(cancelledError(peer.upstream, signal.reason));
  }
  return new Promise<RpcResult>((resolve, reject) => {
    let settled = false;
    /** The dispatcher's handle on the exchange, once it is on a connection. */
    let controller: Dispatcher.DispatchController | undefined;
    /** The response has ended or failed: there is nothing left to abort. */
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (error: unknown, result?: RpcResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      peer.closed.removeEventListener('abort', onClosed);
      if (error === undefined && result !== undefined) {
        // The upstream ends the stream once it has answered; the socket goes back to the pool.
        resolve(result);
        return;
      }
      reject(error);
      // Given up or broken: a connection still carrying the exchange cannot be reused.
      if (!ended) controller?.abort(givenUp());
    };
    // Errors are built only when they settle the exchange (an Error captures a stack trace).
    const fail = (reason: unknown): void => {
      if (!settled) finish(unavailableError(peer.upstream, reason));
    };
    const giveUp = (reason: string, error: unknown): void => {
      if (settled) return;
      peer.cancel(id, reason);
      finish(error);
    };
    const armTimer = (): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          giveUp(
            'request timed out',
            new PortcullisError(UpstreamErrorCode.Timeout, `upstream "${peer.upstream}" did not answer in time`),
          ),
        options.timeoutMs,
      );
      timer.unref();
    };
    const onAbort = (): void => giveUp('cancelled by the agent', cancelledError(peer.upstream, signal?.reason));
    const onClosed = (): void => fail('connection closed');

    const deliver = (message: unknown): void => {
      if (settled || typeof message !== 'object' || message === null || Array.isArray(message)) return;
      const wire = message as WireMessage;
      if (typeof wire.method === 'string') {
        if (wire.id !== undefined && wire.id !== null) {
          peer.serverRequest(wire);
          return;
        }
        const notificationParams = isRecord(wire.params) ? (wire.params as RpcParams) : {};
        if (wire.method === 'notifications/progress' && notificationParams.progressToken === id) {
          armTimer();
          try {
            options.onProgress?.(toProgress(notificationParams));
          } catch {
            // The caller's callback failing must not end the exchange (the SDK client ignores it too).
          }
          return;
        }
        peer.notification(wire.method, notificationParams);
        return;
      }
      if (wire.id !== id) return;
      if (isRecord(wire.error)) {
        const { code, message: text, data } = wire.error;
        finish(
          new JsonRpcError(
            typeof code === 'number' ? code : -32603,
            typeof text === 'string' ? text : 'upstream error',
            data,
          ),
        );
        return;
      }
      if (!isRecord(wire.result)) {
        finish(
          new PortcullisError(
            UpstreamErrorCode.InvalidResult,
            `upstream "${peer.upstream}" sent an invalid result: result is not a JSON object`,
          ),
        );
        return;
      }
      const decoded = envelope === undefined ? wire.result : decodeModernResult(wire.result);
      if (typeof decoded === 'string') {
        finish(
          new PortcullisError(
            UpstreamErrorCode.InvalidResult,
            `upstream "${peer.upstream}" sent an invalid result: ${decoded}`,
          ),
        );
        return;
      }
      finish(undefined, decoded as RpcResult);
    };

    // The answer, read off the dispatcher's callbacks: a JSON body is collected and parsed at its
    // end; an SSE stream is parsed as it arrives, each message delivered in order.
    let status = 0;
    let type = '';
    let ok = false;
    let text = '';
    let events: EventSourceParser | undefined;
    const decoder = new StringDecoder('utf8');
    const onEvent = (event: EventSourceMessage): void => {
      // Priming events (an id and empty data) only enable resumption.
      if (event.data === '' || (event.event !== undefined && event.event !== 'message')) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(event.data);
      } catch {
        fail('an event on the response stream is not valid JSON');
        return;
      }
      deliver(parsed);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (started) => {
        controller = started;
        if (settled) started.abort(givenUp());
      },
      onResponseStart: (_controller, statusCode, headers) => {
        // 1xx answers are informational: the response follows.
        if (statusCode < 200) return;
        status = statusCode;
        ok = status < 300;
        const contentType = headers['content-type'];
        type =
          ((Array.isArray(contentType) ? contentType[0] : contentType) ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (ok && type === 'text/event-stream') events = createParser({ onEvent });
      },
      onResponseData: (_controller, chunk) => {
        if (settled) return;
        const piece = decoder.write(chunk);
        if (events !== undefined) events.feed(piece);
        // An error page is kept for the message only.
        else if (ok || text.length < 64_000) text += piece;
      },
      onResponseEnd: () => {
        ended = true;
        if (settled) return;
        const rest = decoder.end();
        if (events !== undefined) {
          if (rest !== '') events.feed(rest);
          fail('the response stream ended before the answer');
          return;
        }
        text += rest;
        // A JSON answer carries the response; a 2026-era server also answers a request it refuses
        // (a header that disagrees with the body) with a JSON-RPC error and an HTTP error status.
        const parsed = type === 'application/json' ? parseOrUndefined(text) : undefined;
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) deliver(message);
        if (ok && type === 'application/json') {
          fail(
            parsed === undefined ? 'the response body is not valid JSON' : 'the response did not answer the request',
          );
        } else {
          fail(`HTTP ${status} (${type || 'no content type'}): ${text.slice(0, 500)}`);
        }
      },
      // A refused or lost connection, also mid-answer.
      onResponseError: (_controller, error) => {
        ended = true;
        fail(error);
      },
    };

    signal?.addEventListener('abort', onAbort, { once: true });
    peer.closed.addEventListener('abort', onClosed, { once: true });
    armTimer();
    try {
      upstreamDispatcher().dispatch(
        {
          origin: peer.url.origin,
          path: `${peer.url.pathname}${peer.url.search}`,
          method: 'POST',
          headers: {
            ...requestHeaders,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body,
        },
        handler,
      );
    } catch (error) {
      ended = true;
      fail(error);
    }
  });
}

let dispatcher: Agent | undefined;

/**
 * The process's connection pools towards Streamable HTTP upstreams (undici: one pool per origin,
 * up to 256 connections each). Idle connections close after `FREE_SOCKET_IDLE_MS` (or sooner when
 * the server's keep-alive hint says so), before the server closes them under a request. Its own
 * header and body timeouts are off: the exchange keeps its own timer, which progress re-arms.
 */
function upstreamDispatcher(): Agent {
  dispatcher ??= new Agent({
    connections: 256,
    keepAliveTimeout: FREE_SOCKET_IDLE_MS,
    keepAliveMaxTimeout: FREE_SOCKET_IDLE_MS,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  return dispatcher;
}

/** The reason a request given up by the gateway is aborted with (never seen by a caller: the exchange has already settled). */
function givenUp(): Error {
  return new Error('the request was given up');
}

/**
 * A 2026-era result as the SDK client hands it over: `complete` without its `resultType`;
 * `input_required` with only what the agent needs to answer it (it is relayed, not fulfilled here).
 * A string says why the result is invalid.
 */
function decodeModernResult(result: Record<string, unknown>): Record<string, unknown> | string {
  const { resultType, ...rest } = result;
  if (resultType === 'complete') return rest;
  if (resultType === 'input_required') {
    const { requestState, _meta } = result;
    const inputRequests = isRecord(result.inputRequests) ? result.inputRequests : {};
    if (Object.keys(inputRequests).length === 0 && typeof requestState !== 'string') {
      return 'input_required carries neither inputRequests nor requestState';
    }
    return {
      resultType,
      inputRequests,
      ...(typeof requestState === 'string' && { requestState }),
      ...(isRecord(_meta) && { _meta }),
    };
  }
  return resultType === undefined
    ? 'missing required resultType'
    : `unsupported result type ${JSON.stringify(resultType)}`;
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function cancelledError(upstream: string, cause: unknown): PortcullisError {
  return new PortcullisError(UpstreamErrorCode.Cancelled, `request to upstream "${upstream}" was cancelled`, { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function withProgressToken(params: RpcParams | undefined, token: string): RpcParams {
  const meta = isRecord(params?._meta) ? params._meta : {};
  return { ...params, _meta: { ...meta, progressToken: token } };
}

function toProgress(params: RpcParams): ProgressUpdate {
  return {
    progress: typeof params.progress === 'number' ? params.progress : 0,
    ...(typeof params.total === 'number' && { total: params.total }),
    ...(typeof params.message === 'string' && { message: params.message }),
  };
}
