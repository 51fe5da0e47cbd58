import { type ClientRequest, Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { FetchLike } from '@modelcontextprotocol/client';

/** Statuses whose responses carry no body (a `Response` with one would throw). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

export interface KeepAliveAgents {
  readonly http: HttpAgent;
  readonly https: HttpsAgent;
}

/**
 * How long a pooled socket may sit idle before the gateway closes it. Servers close idle keep-alive
 * connections too (Node.js and uvicorn after 5 s); a request written into a socket the server is
 * closing at that moment fails with ECONNRESET, and a call cannot be retried blindly (the server
 * may have run it). Closing first, a little earlier than those servers, leaves no such race.
 */
export const FREE_SOCKET_IDLE_MS = 4_000;

/** What Node's agent does with a socket that becomes free, plus the idle timeout (a free socket that times out is destroyed by the agent). */
function keepFreeSocket(socket: Socket): true {
  socket.setKeepAlive(true, 1_000);
  socket.unref();
  socket.setTimeout(FREE_SOCKET_IDLE_MS);
  return true;
}

/** `agent` with its free sockets closed after `FREE_SOCKET_IDLE_MS` of idleness, and kept open while reused. */
function closingIdleSockets<A extends HttpAgent>(agent: A): A {
  const reuse = agent.reuseSocket.bind(agent);
  agent.keepSocketAlive = keepFreeSocket;
  agent.reuseSocket = (socket: Socket, request: ClientRequest) => {
    socket.setTimeout(0);
    reuse(socket, request);
  };
  return agent;
}

function createAgents(maxSockets: number): KeepAliveAgents {
  const agentOptions = { keepAlive: true, maxSockets, scheduling: 'lifo' as const };
  return {
    http: closingIdleSockets(new HttpAgent(agentOptions)),
    https: closingIdleSockets(new HttpsAgent(agentOptions)),
  };
}

let processAgents: KeepAliveAgents | undefined;

/** The process's keep-alive pools towards HTTP upstreams (up to 256 sockets per origin). */
export function keepAliveAgents(): KeepAliveAgents {
  processAgents ??= createAgents(256);
  return processAgents;
}

/**
 * A `fetch` for the SDK's HTTP client transports built on `node:http` with keep-alive agents. Each
 * upstream call is one small POST; the global `fetch` turns its string body into a web stream and
 * writes it in several syscalls, and parses responses in WebAssembly. Here the body goes out with
 * the headers in one write and responses are parsed natively. Redirects are never followed (the
 * SDK asks for `redirect: 'manual'` and follows within the origin itself). Bodies other than
 * strings and byte arrays fall back to the global `fetch`.
 */
export function createNodeFetch(options: { maxSockets?: number } = {}): FetchLike {
  const { http: httpAgent, https: httpsAgent } =
    options.maxSockets === undefined ? keepAliveAgents() : createAgents(options.maxSockets);
  return (input, init) => {
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      return fetch(input, init);
    }
    const url = input instanceof URL ? input : new URL(String(input));
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const secure = url.protocol === 'https:';
    const method = init?.method ?? 'GET';
    return new Promise<Response>((resolve, reject) => {
      const onResponse = (res: IncomingMessage): void => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value === undefined) continue;
          if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
          else responseHeaders.set(name, value);
        }
        const status = res.statusCode ?? 502;
        const noBody = NULL_BODY_STATUSES.has(status) || method === 'HEAD';
        if (noBody) res.resume();
        resolve(
          new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            statusText: res.statusMessage ?? '',
            headers: responseHeaders,
          }),
        );
      };
      const request = (secure ? httpsRequest : httpRequest)(
        url,
        { method, headers, agent: secure ? httpsAgent : httpAgent, ...(init?.signal ? { signal: init.signal } : {}) },
        onResponse,
      );
      request.once('error', reject);
      request.end(body ?? undefined);
    });
  };
}
