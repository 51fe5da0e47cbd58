import type { RpcParams, RpcResult } from '@portcullis/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createUpstreamConnection,
  EraVerdictCache,
  type ProgressUpdate,
  type UpstreamConnection,
  type UpstreamStatus,
} from '../src/index.js';
import {
  eventually,
  httpSpec,
  RAW_SERVER_SCRIPT,
  SERVER_SCRIPT,
  SSE_SERVER_SCRIPT,
  silentLogger,
  startTestHttpServer,
  stdioSpec,
  waitFor,
} from './support/peers.js';

const open: UpstreamConnection[] = [];
const peers: Array<{ close(): Promise<void> }> = [];
function track(connection: UpstreamConnection): UpstreamConnection {
  open.push(connection);
  return connection;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((connection) => connection.close()));
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

function textOf(result: RpcResult): string {
  return (result.content as Array<{ text?: string }>).map((block) => block.text ?? '').join('');
}
function callTool(connection: UpstreamConnection, name: string, args: RpcParams = {}) {
  return connection.request('tools/call', { name, arguments: args });
}

/** Calls `burst`, whose progress and result reach us in one read, and checks every update came first. */
async function expectEveryProgressBeforeResult(connection: UpstreamConnection, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const updates: ProgressUpdate[] = [];
    let atResult: number[] = [];
    await connection
      .request(
        'tools/call',
        { name: 'burst', arguments: { steps: 3 } },
        { onProgress: (update) => updates.push(update) },
      )
      .then((result) => {
        atResult = updates.map((update) => update.progress);
        expect(textOf(result)).toBe('3 steps');
      });
    expect(atResult).toEqual([1, 2, 3]);
  }
}

describe('progress sent in the same read as the result', () => {
  it('stdio: every progress notification is delivered before the result', async () => {
    const connection = track(
      createUpstreamConnection(stdioSpec('raw', [RAW_SERVER_SCRIPT, 'stdio'], { era: 'legacy' }), {
        logger: silentLogger,
      }),
    );
    await connection.ready();
    await expectEveryProgressBeforeResult(connection, 50);
  });

  it('Streamable HTTP (one SSE chunk): every progress notification is delivered before the result', async () => {
    const peer = await startTestHttpServer([RAW_SERVER_SCRIPT, 'http']);
    peers.push(peer);
    const connection = track(
      createUpstreamConnection(httpSpec('raw', peer.url, 'streamable-http', { era: 'legacy' }), {
        logger: silentLogger,
      }),
    );
    await connection.ready();
    await expectEveryProgressBeforeResult(connection, 50);
  });
});

describe('era auto against a stdio server that exits on the probe', () => {
  it('records a legacy verdict and reconnects with initialize, without a failure or backoff', async () => {
    const eraCache = new EraVerdictCache();
    const spec = stdioSpec('strict', [RAW_SERVER_SCRIPT, 'stdio', '--strict']);
    const connection = track(
      createUpstreamConnection(spec, { logger: silentLogger, eraCache, backoff: { initialMs: 5_000, maxMs: 5_000 } }),
    );
    const statuses: UpstreamStatus[] = [];
    connection.onStatus((status) => statuses.push(status));
    const started = Date.now();
    await connection.ready();
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(connection.era).toBe('legacy');
    expect(statuses).not.toContain('failing');
    expect(eraCache.get(spec)).toEqual({ kind: 'legacy' });
    expect(textOf(await callTool(connection, 'echo', { text: 'hello' }))).toBe('hello');

    // A second connection goes straight to initialize: no probe, so the child survives.
    const second = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await second.ready();
    expect(textOf(await callTool(second, 'echo', { text: 'again' }))).toBe('again');
  });

  it('a child that dies on initialize too is a failure, and leaves no legacy verdict behind', async () => {
    const eraCache = new EraVerdictCache();
    const spec = stdioSpec('broken', [SERVER_SCRIPT, 'stdio', '--exit']);
    const connection = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await expect(connection.ready()).rejects.toMatchObject({ code: 'upstream.unavailable' });
    expect(eraCache.get(spec)).toBeUndefined();
  });
});

describe('legacy SSE upstream', () => {
  it('cancels: the upstream tool sees its abort signal', async () => {
    const peer = await startTestHttpServer([SSE_SERVER_SCRIPT], '/sse');
    peers.push(peer);
    const connection = track(
      createUpstreamConnection(httpSpec('sse', peer.url, 'sse', { era: 'legacy' }), { logger: silentLogger }),
    );
    await connection.ready();
    const controller = new AbortController();
    const call = connection.request(
      'tools/call',
      { name: 'slow', arguments: { ms: 10_000 } },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort('agent cancelled'), 200);
    await expect(call).rejects.toMatchObject({ code: 'upstream.cancelled' });
    await eventually(async () => (await peer.stats()).aborted === 1, 'abort to reach the upstream tool');
    // Still usable afterwards.
    const quick = await callTool(connection, 'slow', { ms: 1 });
    expect(textOf(quick)).toBe('done');
  });
});

describe('server→client requests (2025 era)', () => {
  it('relays sampling and roots through onServerRequest, with the upstream params', async () => {
    const seen: Array<{ method: string; params: RpcParams }> = [];
    const connection = track(
      createUpstreamConnection(stdioSpec('local', undefined, { era: 'legacy' }), {
        logger: silentLogger,
        capabilities: { sampling: {}, roots: { listChanged: true } },
        onServerRequest: async (method, params) => {
          seen.push({ method, params });
          if (method === 'sampling/createMessage') {
            return { role: 'assistant', content: { type: 'text', text: 'sampled!' }, model: 'test-model' };
          }
          return { roots: [{ uri: 'file:///work', name: 'work' }] };
        },
      }),
    );
    await connection.ready();
    const sampled = JSON.parse(textOf(await callTool(connection, 'sample', { prompt: 'hi' }))) as {
      content: { text: string };
      model: string;
    };
    expect(sampled).toMatchObject({ content: { text: 'sampled!' }, model: 'test-model' });
    const roots = JSON.parse(textOf(await callTool(connection, 'roots'))) as { roots: unknown[] };
    expect(roots.roots).toEqual([{ uri: 'file:///work', name: 'work' }]);
    expect(seen.map((entry) => entry.method)).toEqual(['sampling/createMessage', 'roots/list']);
    expect(seen[0]?.params).toMatchObject({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] });
  });

  it('an undeclared capability is neither declared nor relayed', async () => {
    let calls = 0;
    const connection = track(
      createUpstreamConnection(stdioSpec('local', undefined, { era: 'legacy' }), {
        logger: silentLogger,
        capabilities: {},
        onServerRequest: async () => {
          calls += 1;
          return {};
        },
      }),
    );
    await connection.ready();
    // The upstream's roots/list is refused by the client SDK (-32601), which the tool reports.
    const result = await callTool(connection, 'roots');
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain('Method not found');
    expect(calls).toBe(0);
  });
});

describe('2026-era subscriptions/listen over Streamable HTTP', () => {
  it('delivers list_changed and resources/updated for subscribed URIs', async () => {
    const peer = await startTestHttpServer();
    peers.push(peer);
    const connection = track(createUpstreamConnection(httpSpec('remote', peer.url), { logger: silentLogger }));
    const received: Array<{ method: string; params: RpcParams }> = [];
    connection.onNotification((method, params) => received.push({ method, params }));
    await connection.ready();
    expect(connection.era).toBe('modern');
    await eventually(async () => {
      await callTool(connection, 'add-tool', { name: 'x' });
      return received.some((entry) => entry.method === 'notifications/tools/list_changed');
    }, 'tools/list_changed over the listen stream');

    await connection.subscribeResource('mem://counter');
    await eventually(async () => {
      await callTool(connection, 'bump');
      return received.some(
        (entry) => entry.method === 'notifications/resources/updated' && entry.params.uri === 'mem://counter',
      );
    }, 'resources/updated for the subscribed URI');
  });
});

describe('subscriptions survive a reconnect', () => {
  for (const era of ['legacy', 'auto'] as const) {
    it(`stdio, era ${era}: resources/updated still arrives after the child crashed and came back`, async () => {
      const connection = track(
        createUpstreamConnection(stdioSpec('local', undefined, { era }), {
          logger: silentLogger,
          killGraceMs: 200,
          backoff: { initialMs: 50, maxMs: 200 },
        }),
      );
      const updates: string[] = [];
      connection.onNotification((method, params) => {
        if (method === 'notifications/resources/updated') updates.push(String(params.uri));
      });
      await connection.ready();
      expect(connection.era).toBe(era === 'legacy' ? 'legacy' : 'modern');
      await connection.subscribeResource('mem://counter');
      await callTool(connection, 'bump');
      await waitFor(() => updates.length === 1, 5_000, 'the first update');

      // The child exits 10 ms after answering: on a loaded machine the exit can be seen first.
      await callTool(connection, 'crash').catch(() => undefined);
      await waitFor(() => connection.status !== 'connected', 5_000, 'the crash to be noticed');
      await connection.ready().catch(() => undefined);
      await waitFor(() => connection.status === 'connected', 10_000, 'the reconnect');
      await eventually(async () => {
        await callTool(connection, 'bump');
        return updates.length >= 2;
      }, 'an update after the reconnect');
      expect(updates.every((uri) => uri === 'mem://counter')).toBe(true);
    });
  }
});
