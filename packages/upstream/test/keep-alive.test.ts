import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type DirectHttpPeer, directRequest } from '../src/direct-http.js';
import { FREE_SOCKET_IDLE_MS, keepAliveAgents } from '../src/http-fetch.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

function get(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: keepAliveAgents().http }, (res) => {
      res.resume();
      res.once('end', resolve);
    });
    req.once('error', reject);
    req.end();
  });
}

/** A POST of one `ping` the way the gateway sends routed requests (its own pool, not the agents above). */
function directPing(port: number): Promise<void> {
  const peer: DirectHttpPeer = {
    upstream: 'idle',
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    headers: () => ({}),
    notification: () => undefined,
    serverRequest: () => undefined,
    cancel: () => undefined,
    closed: new AbortController().signal,
  };
  return directRequest(peer, 'ping', undefined, { timeoutMs: 5_000 }).then(() => undefined);
}

/** Answers every request with an empty JSON-RPC result for its id. */
function answerPing(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    body += chunk;
  });
  req.on('end', () => {
    const id = body === '' ? null : (JSON.parse(body) as { id?: unknown }).id;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
  });
}

// Node's agents reuse a free socket at once; undici reuses a connection one event-loop turn after
// its response, so a call made at once may take a second one.
describe.each([
  ["the SDK transports' keep-alive agents", get, 1],
  ['the pool of routed requests', directPing, 2],
])('%s towards HTTP upstreams', (_name, call, mostSockets) => {
  it('reuses a socket while it is busy, and closes it itself once idle (before the server would)', async () => {
    const sockets: Socket[] = [];
    const closedAt: number[] = [];
    server = createServer(answerPing);
    // A server that keeps idle connections far longer than the pool: only the pool closes them here.
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      sockets.push(socket);
      socket.once('close', () => closedAt.push(Date.now()));
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');

    for (let i = 0; i < 6; i++) await call(address.port);
    expect(sockets.length).toBeGreaterThanOrEqual(1);
    expect(sockets.length).toBeLessThanOrEqual(mostSockets);
    const opened = sockets.length;
    const idleSince = Date.now();
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error('the idle sockets were not closed')),
        FREE_SOCKET_IDLE_MS + 3_000,
      );
      const poll = setInterval(() => {
        if (closedAt.length < opened) return;
        clearInterval(poll);
        clearTimeout(deadline);
        resolve();
      }, 50);
    });
    const idle = Math.min(...closedAt) - idleSince;
    expect(idle).toBeGreaterThanOrEqual(FREE_SOCKET_IDLE_MS - 100);
    expect(idle).toBeLessThan(FREE_SOCKET_IDLE_MS + 2_000);
    // The next call opens a fresh connection.
    await call(address.port);
    expect(sockets).toHaveLength(opened + 1);
  }, 15_000);
});
