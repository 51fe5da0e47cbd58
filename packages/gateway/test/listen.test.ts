import { PassThrough } from 'node:stream';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import { anonymousIdentity } from '@portcullis/core';
import { type FixtureHttpServer, startFixtureHttp } from '@portcullis/fixture-server';
import type { UpstreamConnection, UpstreamPool } from '@portcullis/upstream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
// The front is the real consumer of the listen tracking; it is loaded from source (it depends on this package).
import { type HttpFront, serveGatewayOverHttp, serveGatewayOverStdio } from '../../front/src/index.js';
import { Gateway, ListenTracker, providerFromPool } from '../src/index.js';
import { configFor, connectedPool, silentLogger, until } from './support.js';

const WATCHED = 'test://watched-resource';
let fixture: FixtureHttpServer;
let pool: UpstreamPool;
let gateway: Gateway;
let primary: UpstreamConnection;

const config = () => configFor([{ name: 'w', url: fixture.url }]);

beforeAll(async () => {
  fixture = await startFixtureHttp({ host: '127.0.0.1', port: 0, name: 'watched', watchedIntervalMs: 40 });
  pool = await connectedPool(config());
  primary = pool.primary('w');
});

afterEach(async () => {
  vi.restoreAllMocks();
  await gateway?.close();
});

afterAll(async () => {
  await pool?.close();
  await fixture?.close();
});

function spyOnSubscriptions(): { subscribed: string[]; unsubscribed: string[] } {
  const subscribed: string[] = [];
  const unsubscribed: string[] = [];
  const subscribe = primary.subscribeResource.bind(primary);
  const unsubscribe = primary.unsubscribeResource.bind(primary);
  vi.spyOn(primary, 'subscribeResource').mockImplementation((uri) => {
    subscribed.push(uri);
    return subscribe(uri);
  });
  vi.spyOn(primary, 'unsubscribeResource').mockImplementation((uri) => {
    unsubscribed.push(uri);
    return unsubscribe(uri);
  });
  return { subscribed, unsubscribed };
}

describe('2026-era subscriptions/listen drives upstream resource subscriptions', () => {
  it('over HTTP: subscribes on the primary while a stream listens, delivers updates, unsubscribes after', async () => {
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    const calls = spyOnSubscriptions();
    const front: HttpFront = await serveGatewayOverHttp(gateway, {
      server: { ...config().server, port: 0, host: '127.0.0.1' },
      logger: silentLogger,
    });
    const client = new Client(
      { name: 'modern-listener', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const updates: string[] = [];
    client.setNotificationHandler('notifications/resources/updated', (notification) => {
      updates.push(notification.params.uri);
    });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${front.url}/mcp`)));
      const first = await client.listen({ resourceSubscriptions: [`w+${WATCHED}`] });
      const second = await client.listen({ resourceSubscriptions: [`w+${WATCHED}`] });
      await until(() => updates.length >= 2, 'resources/updated through the listen stream');
      expect(new Set(updates)).toEqual(new Set([`w+${WATCHED}`]));
      // Two streams, one upstream subscription (reference-counted).
      expect(calls.subscribed).toEqual([WATCHED]);
      expect(gateway.isListened(`w+${WATCHED}`)).toBe(true);
      await first.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(gateway.isListened(`w+${WATCHED}`)).toBe(true);
      expect(calls.unsubscribed).toEqual([]);
      await second.close();
      await until(() => calls.unsubscribed.length > 0, 'the upstream unsubscription');
      expect(calls.unsubscribed).toEqual([WATCHED]);
      expect(gateway.isListened(`w+${WATCHED}`)).toBe(false);
    } finally {
      await client.close();
      await front.close();
    }
  });

  it('over stdio: follows listen and its cancellation on the connection', async () => {
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    const calls = spyOnSubscriptions();
    const input = new PassThrough();
    const output = new PassThrough();
    const lines: Array<Record<string, unknown>> = [];
    let buffered = '';
    output.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        lines.push(JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    });
    const front = serveGatewayOverStdio(gateway, {
      identity: anonymousIdentity(),
      maxMessageBytes: 1_000_000,
      input,
      output,
    });
    const envelope = {
      [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
      [CLIENT_INFO_META_KEY]: { name: 'raw-stdio', version: '1' },
      [CLIENT_CAPABILITIES_META_KEY]: {},
    };
    const send = (message: Record<string, unknown>) =>
      input.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
    try {
      send({
        id: 'listen-1',
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: [`w+${WATCHED}`] }, _meta: envelope },
      });
      const updated = () =>
        lines.filter(
          (line) =>
            line.method === 'notifications/resources/updated' &&
            (line.params as { uri?: string } | undefined)?.uri === `w+${WATCHED}`,
        );
      await until(() => updated().length >= 2, 'resources/updated on the stdio listen stream');
      expect(calls.subscribed).toEqual([WATCHED]);
      send({ method: 'notifications/cancelled', params: { requestId: 'listen-1' } });
      await until(() => calls.unsubscribed.length > 0, 'the upstream unsubscription after cancel');
      expect(calls.unsubscribed).toEqual([WATCHED]);
    } finally {
      await front.close();
    }
  });

  it('the tracker pairs listen ids with releases and releases the rest on close', () => {
    const released: string[][] = [];
    const tracker = new ListenTracker({
      listen: (uris) => () => {
        released.push([...uris]);
      },
    });
    expect(tracker.observe({ jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBe(false);
    expect(tracker.observe({ id: 1, method: 'subscriptions/listen', params: { notifications: {} } })).toBe(false);
    expect(
      tracker.observe({
        id: 2,
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: ['a'] } },
      }),
    ).toBe(true);
    expect(
      tracker.observe({
        id: 3,
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: ['b'] } },
      }),
    ).toBe(true);
    tracker.observe({ method: 'notifications/cancelled', params: { requestId: 2 } });
    expect(released).toEqual([['a']]);
    tracker.close();
    expect(released).toEqual([['a'], ['b']]);
    expect(tracker.openCount).toBe(0);
  });
});
