import { createServer, request, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
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

describe('the keep-alive pool towards HTTP upstreams', () => {
  it('reuses a socket while it is busy, and closes it itself once idle (before the server would)', async () => {
    const sockets: Socket[] = [];
    const closedAt: number[] = [];
    server = createServer((_req, res) => res.end('ok'));
    // A server that keeps idle connections far longer than the pool: only the pool closes them here.
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      sockets.push(socket);
      socket.once('close', () => closedAt.push(Date.now()));
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');

    await get(address.port);
    await get(address.port);
    expect(sockets).toHaveLength(1);
    const idleSince = Date.now();
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error('the idle socket was not closed')),
        FREE_SOCKET_IDLE_MS + 3_000,
      );
      const poll = setInterval(() => {
        if (closedAt.length === 0) return;
        clearInterval(poll);
        clearTimeout(deadline);
        resolve();
      }, 50);
    });
    const idle = (closedAt[0] ?? 0) - idleSince;
    expect(idle).toBeGreaterThanOrEqual(FREE_SOCKET_IDLE_MS - 100);
    expect(idle).toBeLessThan(FREE_SOCKET_IDLE_MS + 2_000);
    // The next call opens a fresh connection.
    await get(address.port);
    expect(sockets).toHaveLength(2);
  }, 15_000);
});
