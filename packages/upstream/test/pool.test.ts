import type { RpcResult } from '@portcullis/core';
import { afterEach, describe, expect, it } from 'vitest';
import { StaticUpstreamRegistry, UpstreamPool, type UpstreamsChange } from '../src/index.js';
import {
  type HttpPeer,
  httpSpec,
  isAlive,
  silentLogger,
  startTestHttpServer,
  stdioSpec,
  waitFor,
} from './support/peers.js';

const pools: UpstreamPool[] = [];
const peers: HttpPeer[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

function startPool(registry: StaticUpstreamRegistry): UpstreamPool {
  const pool = new UpstreamPool(registry, { logger: silentLogger, killGraceMs: 500 });
  pools.push(pool);
  pool.start();
  return pool;
}

function pidOf(result: RpcResult): number {
  const text = (result.content as Array<{ text?: string }>)[0]?.text ?? '{}';
  return (JSON.parse(text) as { pid: number }).pid;
}

describe('UpstreamPool', () => {
  it('gives each session of a per-session upstream its own child, and releases it', async () => {
    const pool = startPool(new StaticUpstreamRegistry([stdioSpec('local')]));
    await pool.primary('local').ready();
    const first = pool.acquire('local', 'session-a');
    const again = pool.acquire('local', 'session-a');
    const second = pool.acquire('local', 'session-b');
    expect(again).toBe(first);
    expect(second).not.toBe(first);
    await Promise.all([first.ready(), second.ready()]);
    const primaryPid = pidOf(await pool.primary('local').request('tools/call', { name: 'stats', arguments: {} }));
    const pidA = pidOf(await first.request('tools/call', { name: 'stats', arguments: {} }));
    const pidB = pidOf(await second.request('tools/call', { name: 'stats', arguments: {} }));
    expect(new Set([primaryPid, pidA, pidB]).size).toBe(3);
    expect(pool.report()).toEqual([
      expect.objectContaining({ name: 'local', status: 'connected', era: 'modern', sessionConnections: 2 }),
    ]);

    await pool.releaseSession('session-a');
    expect(first.status).toBe('closed');
    await waitFor(() => !isAlive(pidA), 3_000, 'the session child to die');
    expect(isAlive(pidB)).toBe(true);
    expect(pool.report()[0]?.sessionConnections).toBe(1);
  });

  it('shares the primary for shared isolation', async () => {
    const peer = await startTestHttpServer();
    peers.push(peer);
    const pool = startPool(new StaticUpstreamRegistry([httpSpec('remote', peer.url)]));
    expect(pool.acquire('remote', 'session-a')).toBe(pool.primary('remote'));
    expect(pool.acquire('remote', 'session-b')).toBe(pool.primary('remote'));
    await pool.primary('remote').ready();
    expect(pool.report()[0]).toMatchObject({ name: 'remote', transport: 'streamable-http', sessionConnections: 0 });
  });

  it('rejects an unknown upstream and reports a disabled one', () => {
    const pool = startPool(new StaticUpstreamRegistry([stdioSpec('off', undefined, { disabled: true })]));
    expect(() => pool.acquire('nope', 's')).toThrow(expect.objectContaining({ code: 'upstream.unknown' }));
    expect(() => pool.acquire('off', 's')).toThrow(expect.objectContaining({ code: 'upstream.disabled' }));
    expect(pool.report()).toEqual([expect.objectContaining({ name: 'off', status: 'disabled' })]);
  });

  it('follows registry replacement: adds, removes (killing the group) and re-creates changed upstreams', async () => {
    const registry = new StaticUpstreamRegistry([stdioSpec('one')]);
    const pool = startPool(registry);
    const changes: UpstreamsChange[] = [];
    pool.onUpstreamsChanged((change) => changes.push(change));
    const one = pool.primary('one');
    await one.ready();
    const onePid = pidOf(await one.request('tools/call', { name: 'stats', arguments: {} }));
    const session = pool.acquire('one', 'session-a');
    await session.ready();

    registry.replace([stdioSpec('two')]);
    await pool.settled();
    expect(pool.names()).toEqual(['two']);
    expect(one.status).toBe('closed');
    expect(session.status).toBe('closed');
    await waitFor(() => !isAlive(onePid), 3_000, 'the removed upstream to die');
    expect(() => pool.primary('one')).toThrow(expect.objectContaining({ code: 'upstream.unknown' }));
    await pool.primary('two').ready();
    expect(changes).toContainEqual({ added: ['two'], removed: ['one'], changed: [], reconnected: [] });

    const before = pool.primary('two');
    registry.replace([stdioSpec('two', undefined, { requestTimeoutMs: 5_000 })]);
    await pool.settled();
    expect(before.status).toBe('closed');
    expect(pool.primary('two')).not.toBe(before);
    expect(pool.primary('two').spec.requestTimeoutMs).toBe(5_000);
    expect(changes.at(-1)).toEqual({ added: [], removed: [], changed: ['two'], reconnected: [] });
  });

  it('relays primary notifications tagged with the upstream name', async () => {
    const pool = startPool(new StaticUpstreamRegistry([stdioSpec('local', undefined, { era: 'legacy' })]));
    const received: string[] = [];
    pool.onNotification((upstream, method) => received.push(`${upstream}:${method}`));
    await pool.primary('local').ready();
    await pool.primary('local').request('tools/call', { name: 'add-tool', arguments: { name: 'x' } });
    await waitFor(() => received.includes('local:notifications/tools/list_changed'), 5_000, 'list_changed');
  });

  it('close() kills every child', async () => {
    const registry = new StaticUpstreamRegistry([stdioSpec('a'), stdioSpec('b')]);
    const pool = new UpstreamPool(registry, { logger: silentLogger, killGraceMs: 500 });
    pool.start();
    const pids: number[] = [];
    for (const name of ['a', 'b']) {
      const session = pool.acquire(name, 's1');
      await Promise.all([pool.primary(name).ready(), session.ready()]);
      pids.push(pidOf(await pool.primary(name).request('tools/call', { name: 'stats', arguments: {} })));
      pids.push(pidOf(await session.request('tools/call', { name: 'stats', arguments: {} })));
    }
    expect(pids.every(isAlive)).toBe(true);
    await pool.close();
    await waitFor(() => !pids.some(isAlive), 3_000, 'every child to die');
    expect(pool.report()).toEqual([]);
  });
});
