import type { Client } from '@modelcontextprotocol/client';
import type { UpstreamPool } from '@portcullis/upstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, providerFromPool } from '../src/index.js';
import { connectClient, connectedPool, silentLogger, stdioFixtureConfig, textOf, until } from './support.js';

const DEBOUNCE_MS = 400;
const config = () => stdioFixtureConfig('demo', 'shared', { listChangedDebounceMs: DEBOUNCE_MS });

let pool: UpstreamPool;
let gateway: Gateway;
const clients: Client[] = [];

beforeAll(async () => {
  pool = await connectedPool(config());
  gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await gateway?.close();
  await pool?.close();
});

async function agent(): Promise<{ client: Client; changes: string[] }> {
  const client = await connectClient(gateway);
  const changes: string[] = [];
  client.setNotificationHandler('notifications/tools/list_changed', () => {
    changes.push('tools');
  });
  clients.push(client);
  return { client, changes };
}

describe('debounced list_changed', () => {
  it('tells the sessions that started before the change, not one that started while it was debounced', async () => {
    const before = await agent();
    const version = gateway.catalog.version;
    const added = textOf(await before.client.callTool({ name: 'demo__fixture_add_tool', arguments: {} }));
    // The upstream's list_changed has invalidated the catalog; its notification waits for the debounce.
    await until(() => gateway.catalog.version !== version, 'the catalog to be invalidated');
    const startedAt = Date.now();
    const during = await agent();
    // Started inside the debounce window (the check would say nothing if the window had passed).
    expect(Date.now() - startedAt).toBeLessThan(DEBOUNCE_MS);
    expect(before.changes).toEqual([]);
    // Its first list already holds the new tool, so a notification would only make it list again.
    expect((await during.client.listTools()).tools.map((tool) => tool.name)).toContain(`demo__${added}`);

    await until(() => before.changes.length > 0, 'list_changed for the session that started before the change');
    expect(before.changes).toEqual(['tools']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(during.changes).toEqual([]);

    // A later change reaches both.
    const next = gateway.catalog.version;
    await during.client.callTool({ name: 'demo__fixture_add_tool', arguments: {} });
    await until(() => gateway.catalog.version !== next, 'the second invalidation');
    await until(() => during.changes.length > 0 && before.changes.length > 1, 'list_changed for both sessions');
    expect(during.changes).toEqual(['tools']);
    expect(before.changes).toEqual(['tools', 'tools']);
  });
});
