import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { urlToHttpOptions } from 'node:url';
import { encodeMcpHeaderValue, JsonRpcError, PortcullisError, type RpcParams, type RpcResult } from '@portcullis/core';
import { createParser } from 'eventsource-parser';
import { UpstreamErrorCode, unavailableError } from './errors.js';
import { keepAliveAgents } from './http-fetch.js';
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
      // Given up or broken: the exchange cannot be reused.
      outgoing.destroy();
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

    const onResponse = (response: IncomingMessage): void => {
      const status = response.statusCode ?? 0;
      const type = (response.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      response.setEncoding('utf8');
      // A connection lost mid-answer ends the exchange (`close` also follows a normal end: then it is a no-op).
      response.once('error', fail);
      response.once('close', () => fail('the connection closed before the answer'));
      const ok = status >= 200 && status < 300;
      if (!ok || type !== 'text/event-stream') {
        let text = '';
        response.on('data', (chunk: string) => {
          // An error page is kept for the message only.
          if (ok || text.length < 64_000) text += chunk;
        });
        response.on('end', () => {
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
        });
        return;
      }
      const parser = createParser({
        onEvent: (event) => {
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
        },
      });
      response.on('data', (chunk: string) => parser.feed(chunk));
      response.on('end', () => fail('the response stream ended before the answer'));
    };

    const secure = peer.url.protocol === 'https:';
    const agents = keepAliveAgents();
    const outgoing = (secure ? httpsRequest : httpRequest)(
      {
        ...requestTarget(peer.url),
        method: 'POST',
        agent: secure ? agents.https : agents.http,
        headers: {
          ...requestHeaders,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'content-length': Buffer.byteLength(body),
        },
      },
      onResponse,
    );
    outgoing.once('error', fail);
    signal?.addEventListener('abort', onAbort, { once: true });
    peer.closed.addEventListener('abort', onClosed, { once: true });
    armTimer();
    outgoing.end(body);
  });
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

/** The URL as request options, converted once per URL object (node converts a URL on every call). */
function requestTarget(url: URL): RequestOptions {
  let target = targets.get(url);
  if (target === undefined) {
    target = urlToHttpOptions(url);
    targets.set(url, target);
  }
  return target;
}

const targets = new WeakMap<URL, RequestOptions>();

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
