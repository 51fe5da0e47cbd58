import { JsonRpcError, PortcullisError, type RpcParams, type RpcResult } from '@portcullis/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamConnection, EraVerdictCache, type UpstreamConnection } from '../src/index.js';
import {
  captureLogger,
  EVERYTHING_SCRIPT,
  eventually,
  type HttpPeer,
  httpSpec,
  probeCountingFetch,
  SERVER_SCRIPT,
  silentLogger,
  startEverythingServer,
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
  const content = result.content as Array<{ type: string; text?: string }>;
  return content.map((block) => block.text ?? '').join('');
}

function callTool(connection: UpstreamConnection, name: string, args: RpcParams = {}) {
  return connection.request('tools/call', { name, arguments: args });
}

describe('stdio upstream', () => {
  it('connects in the 2026 era with era auto and calls a tool', async () => {
    const connection = track(createUpstreamConnection(stdioSpec('local'), { logger: silentLogger }));
    await connection.ready();
    expect(connection.status).toBe('connected');
    expect(connection.era).toBe('modern');
    expect(connection.protocolVersion).toBe('2026-07-28');
    expect(connection.serverInfo?.name).toBe('upstream-test-server');
    expect(textOf(await callTool(connection, 'echo', { text: 'hi' }))).toBe('hi');
    expect(textOf(await callTool(connection, 'era'))).toBe('modern');
  });

  it('speaks the 2025 era when pinned legacy', async () => {
    const connection = track(
      createUpstreamConnection(stdioSpec('local', undefined, { era: 'legacy' }), { logger: silentLogger }),
    );
    await connection.ready();
    expect(connection.era).toBe('legacy');
    expect(textOf(await callTool(connection, 'era'))).toBe('legacy');
    expect(connection.instructions).toBe('test server');
  });

  it('falls back to the 2025 era against a 2025-only server and caches the verdict', async () => {
    const eraCache = new EraVerdictCache();
    const spec = stdioSpec('everything', [EVERYTHING_SCRIPT, 'stdio']);
    const first = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await first.ready();
    expect(first.era).toBe('legacy');
    expect(eraCache.get(spec)).toEqual({ kind: 'legacy' });
    const second = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await second.ready();
    expect(second.era).toBe('legacy');
    expect(textOf(await callTool(second, 'echo', { message: 'hello' }))).toContain('hello');
  });

  it("sends the child's stderr to the logger", async () => {
    const { logger, lines } = captureLogger();
    const connection = track(createUpstreamConnection(stdioSpec('local'), { logger }));
    await connection.ready();
    const controller = new AbortController();
    const call = connection.request(
      'tools/call',
      { name: 'slow', arguments: { ms: 5_000 } },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort('stop'), 100);
    await expect(call).rejects.toMatchObject({ code: 'upstream.cancelled' });
    await waitFor(() => lines.some((line) => String(line.msg).includes('slow: aborted')), 5_000, 'stderr line');
    expect(lines.find((line) => String(line.msg).includes('slow: aborted'))?.stream).toBe('stderr');
  });
});

describe('request semantics (2026 era over stdio)', () => {
  let connection: UpstreamConnection;
  beforeAll(async () => {
    connection = createUpstreamConnection(stdioSpec('local'), {
      logger: silentLogger,
      capabilities: { elicitation: {} },
    });
    await connection.ready();
  });
  afterAll(() => connection.close());

  it('relays progress with a token the SDK minted', async () => {
    const updates: unknown[] = [];
    const result = await connection.request(
      'tools/call',
      { name: 'progress', arguments: { steps: 3 }, _meta: { progressToken: 'agent-token' } },
      { onProgress: (update) => updates.push(update) },
    );
    expect(textOf(result)).toBe('3 steps');
    expect(updates).toEqual([
      { progress: 1, total: 3, message: 'step 1' },
      { progress: 2, total: 3, message: 'step 2' },
      { progress: 3, total: 3, message: 'step 3' },
    ]);
  });

  it('cancels: the upstream tool sees its abort signal', async () => {
    const before = JSON.parse(textOf(await callTool(connection, 'stats'))) as { aborted: number };
    const controller = new AbortController();
    const call = connection.request(
      'tools/call',
      { name: 'slow', arguments: { ms: 5_000 } },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort('agent cancelled'), 100);
    await expect(call).rejects.toMatchObject({ name: 'PortcullisError', code: 'upstream.cancelled' });
    await eventually(async () => {
      const after = JSON.parse(textOf(await callTool(connection, 'stats'))) as { aborted: number };
      return after.aborted === before.aborted + 1;
    }, 'abort to reach the upstream');
  });

  it('returns an input_required result raw instead of fulfilling it', async () => {
    const result = await callTool(connection, 'confirm');
    expect(result.resultType).toBe('input_required');
    expect(Object.keys(result.inputRequests as object)).toEqual(['confirm']);
  });

  it('turns a JSON-RPC error into a JsonRpcError', async () => {
    const unknownMethod = connection.request('nonexistent/method', {});
    await expect(unknownMethod).rejects.toBeInstanceOf(JsonRpcError);
    await expect(unknownMethod).rejects.toMatchObject({ code: -32601 });
    const missing = connection.request('resources/read', { uri: 'mem://missing' });
    await expect(missing).rejects.toMatchObject({ name: 'JsonRpcError', code: -32602, data: { uri: 'mem://missing' } });
  });

  it('times out with upstream.timeout', async () => {
    await expect(
      connection.request('tools/call', { name: 'slow', arguments: { ms: 2_000 } }, { timeoutMs: 100 }),
    ).rejects.toMatchObject({ code: 'upstream.timeout' });
  });
});

describe('Streamable HTTP upstream', () => {
  let peer: HttpPeer;
  beforeAll(async () => {
    peer = await startTestHttpServer();
  });
  afterAll(() => peer.close());

  it('probes once, then connects from the cached verdict', async () => {
    const eraCache = new EraVerdictCache();
    const spec = httpSpec('remote', peer.url);
    const first = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await first.ready();
    expect(first.era).toBe('modern');
    expect(textOf(await callTool(first, 'echo', { text: 'over http' }))).toBe('over http');
    const probesAfterFirst = (await peer.stats()).methods['server/discover'];
    expect(probesAfterFirst).toBe(1);

    const second = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    const third = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache }));
    await Promise.all([second.ready(), third.ready()]);
    expect(second.era).toBe('modern');
    expect(textOf(await callTool(third, 'era'))).toBe('modern');
    expect((await peer.stats()).methods['server/discover']).toBe(1);
  });

  it('cancels over HTTP', async () => {
    const connection = track(createUpstreamConnection(httpSpec('remote', peer.url), { logger: silentLogger }));
    await connection.ready();
    const before = (await peer.stats()).aborted;
    const controller = new AbortController();
    const call = connection.request(
      'tools/call',
      { name: 'slow', arguments: { ms: 5_000 } },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort('agent cancelled'), 200);
    await expect(call).rejects.toMatchObject({ code: 'upstream.cancelled' });
    await eventually(async () => (await peer.stats()).aborted === before + 1, 'abort to reach the upstream');
  });

  it('speaks the 2025 era to the same endpoint when pinned legacy', async () => {
    const connection = track(
      createUpstreamConnection(httpSpec('remote', peer.url, 'streamable-http', { era: 'legacy' }), {
        logger: silentLogger,
      }),
    );
    await connection.ready();
    expect(connection.era).toBe('legacy');
    expect(textOf(await callTool(connection, 'era'))).toBe('legacy');
  });
});

describe('2025-only HTTP upstreams (reference server)', () => {
  it('connects over legacy SSE and calls a tool', async () => {
    const peer = await startEverythingServer('sse');
    try {
      const connection = track(
        createUpstreamConnection(httpSpec('sse', peer.url, 'sse', { era: 'legacy' }), { logger: silentLogger }),
      );
      await connection.ready();
      expect(connection.era).toBe('legacy');
      expect(textOf(await callTool(connection, 'echo', { message: 'via sse' }))).toContain('via sse');
    } finally {
      await Promise.all(open.splice(0).map((connection) => connection.close()));
      await peer.close();
    }
  });

  it('era auto against a 2025-only Streamable HTTP server: legacy, probed once', async () => {
    const peer = await startEverythingServer('streamableHttp');
    try {
      const counting = probeCountingFetch();
      const eraCache = new EraVerdictCache();
      const spec = httpSpec('everything', peer.url);
      const first = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache, fetch: counting.fetch }));
      await first.ready();
      expect(first.era).toBe('legacy');
      expect(counting.probes()).toBe(1);
      const second = track(createUpstreamConnection(spec, { logger: silentLogger, eraCache, fetch: counting.fetch }));
      await second.ready();
      expect(second.era).toBe('legacy');
      expect(textOf(await callTool(second, 'echo', { message: 'again' }))).toContain('again');
      expect(counting.probes()).toBe(1);
    } finally {
      await Promise.all(open.splice(0).map((connection) => connection.close()));
      await peer.close();
    }
  });
});

describe('failure', () => {
  it('an unreachable upstream fails fast with upstream.unavailable naming it', async () => {
    const connection = track(
      createUpstreamConnection(httpSpec('down', 'http://127.0.0.1:9/mcp'), { logger: silentLogger }),
    );
    const started = Date.now();
    const error = await connection.ready().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PortcullisError);
    expect(error).toMatchObject({ code: 'upstream.unavailable' });
    expect((error as Error).message).toContain('upstream "down" is unavailable');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(connection.status).toBe('failing');
    await expect(callTool(connection, 'echo', { text: 'x' })).rejects.toMatchObject({ code: 'upstream.unavailable' });
  });

  it('a stdio command that cannot start fails with upstream.unavailable', async () => {
    const connection = track(
      createUpstreamConnection(stdioSpec('broken', [SERVER_SCRIPT, 'stdio', '--exit']), { logger: silentLogger }),
    );
    await expect(connection.ready()).rejects.toMatchObject({ code: 'upstream.unavailable' });
    const missing = track(
      createUpstreamConnection(stdioSpec('missing', [], { command: '/nonexistent/binary' }), { logger: silentLogger }),
    );
    await expect(missing.ready()).rejects.toThrow(/upstream "missing" is unavailable/);
  });
});
