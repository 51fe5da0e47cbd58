import { Client } from '@modelcontextprotocol/client';
import { InMemoryTransport } from '@modelcontextprotocol/server';
import type { UpstreamPool } from '@portcullis/upstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, providerFromPool } from '../src/index.js';
import { connectedPool, silentLogger, stdioFixtureConfig, textOf, until } from './support.js';

/** One `per-session` stdio upstream (each agent session gets its own fixture child). */
const config = () => stdioFixtureConfig('kid', 'per-session', { pageSize: 5, listChangedDebounceMs: 10 });

let pool: UpstreamPool;
let gateway: Gateway;
const clients: Client[] = [];

beforeAll(async () => {
  pool = await connectedPool(config());
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await gateway?.close();
});

afterAll(async () => {
  await pool?.close();
});

interface Agent {
  readonly client: Client;
  /** list_changed notifications received, by method. */
  readonly changes: string[];
}

async function agent(): Promise<Agent> {
  const session = gateway.createSession({ era: 'legacy', frontTransport: 'stdio' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await session.server.connect(serverSide);
  const client = new Client({ name: 'per-session-agent', version: '1.0.0' });
  const changes: string[] = [];
  client.setNotificationHandler('notifications/tools/list_changed', () => {
    changes.push('tools');
  });
  await client.connect(clientSide);
  clients.push(client);
  return { client, changes };
}

async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((tool) => tool.name);
}

describe('per-session catalogs (stdio fixture child per agent session)', () => {
  it("lists, routes and notifies a tool added on the session's own connection for that session only", async () => {
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    const a = await agent();
    const b = await agent();
    const sharedVersion = gateway.catalog.version;

    const added = await a.client.callTool({ name: 'kid__fixture_add_tool', arguments: {} });
    const name = textOf(added);
    expect(name).toMatch(/^dynamic_\d+$/);
    await until(() => a.changes.length > 0, "list_changed on the adding session's stream");

    expect(await toolNames(a.client)).toContain(`kid__${name}`);
    expect(textOf(await a.client.callTool({ name: `kid__${name}`, arguments: {} }))).toBe(`${name} called`);

    // The other session (its own child, which never added the tool) neither sees nor can call it.
    expect(await toolNames(b.client)).not.toContain(`kid__${name}`);
    await expect(b.client.callTool({ name: `kid__${name}`, arguments: {} })).rejects.toMatchObject({ code: -32602 });
    expect(b.changes).toEqual([]);
    // The shared catalog was not invalidated by a dedicated connection's change.
    expect(gateway.catalog.version).toBe(sharedVersion);
  });

  it("binds cursors to the session's view: a change there makes them stale, forged ones stay refused", async () => {
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    const a = await agent();
    // The first call creates the session's own connection; lists come from it from then on.
    await a.client.callTool({ name: 'kid__test_simple_text', arguments: {} });
    const first = await a.client.request({ method: 'tools/list', params: {} });
    expect(first.nextCursor).toBeDefined();
    expect((await a.client.listTools({ cursor: first.nextCursor })).tools).toHaveLength(5);

    await a.client.callTool({ name: 'kid__fixture_add_tool', arguments: {} });
    await until(() => a.changes.length > 0, 'list_changed');
    await expect(a.client.listTools({ cursor: first.nextCursor })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/stale/i),
    });
    await expect(a.client.listTools({ cursor: `${first.nextCursor}x` })).rejects.toMatchObject({ code: -32602 });
    const again = await a.client.request({ method: 'tools/list', params: {} });
    expect((await a.client.listTools({ cursor: again.nextCursor })).tools.length).toBeGreaterThan(0);
  });

  it('keeps serving the shared catalog without a per-session connection (no per-session state)', async () => {
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    const a = await agent();
    const names = await toolNames(a.client);
    expect(names).toEqual((await gateway.catalog.list('tools')).map((entry) => entry.exposed));
  });
});
