import type { RpcParams, RpcResult } from '@portcullis/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createUpstreamConnection, type UpstreamConnection, type UpstreamStatus } from '../src/index.js';
import {
  httpSpec,
  isAlive,
  SERVER_SCRIPT,
  silentLogger,
  startTestHttpServer,
  stdioSpec,
  waitFor,
} from './support/peers.js';

const open: UpstreamConnection[] = [];
function track(connection: UpstreamConnection): UpstreamConnection {
  open.push(connection);
  return connection;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((connection) => connection.close()));
});

function textOf(result: RpcResult): string {
  return (result.content as Array<{ text?: string }>).map((block) => block.text ?? '').join('');
}
function callTool(connection: UpstreamConnection, name: string, args: RpcParams = {}) {
  return connection.request('tools/call', { name, arguments: args });
}

describe('stdio process groups', () => {
  it('close kills the child and the grandchild it spawned', async () => {
    const connection = track(createUpstreamConnection(stdioSpec('local'), { logger: silentLogger, killGraceMs: 500 }));
    await connection.ready();
    const { pid, sleeper } = JSON.parse(textOf(await callTool(connection, 'spawn-sleeper'))) as {
      pid: number;
      sleeper: number;
    };
    expect(isAlive(pid)).toBe(true);
    expect(isAlive(sleeper)).toBe(true);
    await connection.close();
    expect(connection.status).toBe('closed');
    await waitFor(() => !isAlive(pid) && !isAlive(sleeper), 3_000, 'the process group to die');
  });

  it('a crashed child is restarted with backoff, and its leftovers are killed', async () => {
    const connection = track(
      createUpstreamConnection(stdioSpec('local'), {
        logger: silentLogger,
        killGraceMs: 200,
        backoff: { initialMs: 50, maxMs: 400 },
      }),
    );
    const statuses: UpstreamStatus[] = [];
    connection.onStatus((status) => statuses.push(status));
    await connection.ready();
    const { pid, sleeper } = JSON.parse(textOf(await callTool(connection, 'spawn-sleeper'))) as {
      pid: number;
      sleeper: number;
    };
    await callTool(connection, 'crash');
    await waitFor(() => statuses.includes('failing'), 5_000, 'the crash to be noticed');
    await waitFor(() => connection.status === 'connected', 5_000, 'the reconnect');
    expect(statuses).toEqual(['connected', 'failing', 'connecting', 'connected']);
    const after = JSON.parse(textOf(await callTool(connection, 'stats'))) as { pid: number };
    expect(after.pid).not.toBe(pid);
    await waitFor(() => !isAlive(pid) && !isAlive(sleeper), 3_000, 'the old group to die');
  });

  it('backs off between failed starts', async () => {
    const connection = track(
      createUpstreamConnection(stdioSpec('broken', [SERVER_SCRIPT, 'stdio', '--exit']), {
        logger: silentLogger,
        backoff: { initialMs: 100, maxMs: 10_000 },
      }),
    );
    const attempts: number[] = [];
    connection.onStatus((status) => {
      if (status === 'connecting') attempts.push(Date.now());
    });
    await waitFor(() => attempts.length >= 3, 10_000, 'three reconnect attempts');
    const [first, second, third] = attempts as [number, number, number];
    // Jitter keeps each delay within [50 %, 100 %] of 100 ms, then 200 ms.
    expect(second - first).toBeGreaterThanOrEqual(50);
    expect(third - second).toBeGreaterThanOrEqual(100);
    expect(connection.lastError).toBeDefined();
  });
});

describe('notifications', () => {
  for (const era of ['legacy', 'modern'] as const) {
    it(`delivers list changes and subscribed resource updates in the ${era} era`, async () => {
      const connection = track(
        createUpstreamConnection(stdioSpec('local', undefined, { era: era === 'modern' ? 'modern' : 'legacy' }), {
          logger: silentLogger,
        }),
      );
      const received: Array<{ method: string; params: RpcParams }> = [];
      connection.onNotification((method, params) => received.push({ method, params }));
      await connection.ready();
      expect(connection.era).toBe(era);
      await connection.subscribeResource('mem://counter');
      // In the 2026 era the listen stream opens asynchronously after connect; let it settle.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await callTool(connection, 'add-tool', { name: 'extra' });
      await callTool(connection, 'bump');
      await waitFor(
        () =>
          received.some((n) => n.method === 'notifications/tools/list_changed') &&
          received.some((n) => n.method === 'notifications/resources/updated'),
        5_000,
        'notifications',
      );
      expect(received.find((n) => n.method === 'notifications/resources/updated')?.params.uri).toBe('mem://counter');

      await connection.unsubscribeResource('mem://counter');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const updatesBefore = received.filter((n) => n.method === 'notifications/resources/updated').length;
      await callTool(connection, 'bump');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received.filter((n) => n.method === 'notifications/resources/updated').length).toBe(updatesBefore);
    });
  }
});

describe('server-to-client requests', () => {
  it('relays elicitation to the handler in the 2025 era', async () => {
    const seen: Array<{ method: string; params: RpcParams }> = [];
    const connection = track(
      createUpstreamConnection(stdioSpec('local', undefined, { era: 'legacy' }), {
        logger: silentLogger,
        capabilities: { elicitation: {} },
        onServerRequest: async (method, params) => {
          seen.push({ method, params });
          return { action: 'accept', content: { name: 'Ada' } };
        },
      }),
    );
    await connection.ready();
    const result = await callTool(connection, 'ask');
    expect(JSON.parse(textOf(result))).toMatchObject({ action: 'accept', content: { name: 'Ada' } });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe('elicitation/create');
    expect(seen[0]?.params.message).toBe('Your name?');
  });
});

describe('health checks', () => {
  for (const era of ['legacy', 'modern'] as const) {
    it(`notice an HTTP upstream that went away (${era} era) and reconnect when it is back`, async () => {
      const peer = await startTestHttpServer();
      try {
        const connection = track(
          createUpstreamConnection(
            httpSpec('remote', peer.url, 'streamable-http', { era, healthCheckIntervalMs: 100 }),
            {
              logger: silentLogger,
              backoff: { initialMs: 50, maxMs: 200 },
            },
          ),
        );
        await connection.ready();
        expect(connection.era).toBe(era);
        await peer.close();
        await waitFor(() => connection.status !== 'connected', 5_000, 'the health check to fail');
        await expect(callTool(connection, 'echo', { text: 'x' })).rejects.toMatchObject({
          code: 'upstream.unavailable',
        });
      } finally {
        await peer.close();
      }
    });
  }
});
