import type { Client } from '@modelcontextprotocol/client';
import { JsonRpcError, type RequestContext, type Stage } from '@portcullis/core';
import type { FixtureHttpServer } from '@portcullis/fixture-server';
import type { UpstreamPool } from '@portcullis/upstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, providerFromPool } from '../src/index.js';
import { configFor, connectClient, connectedPool, silentLogger, startFixture, textOf } from './support.js';

let first: FixtureHttpServer;
let second: FixtureHttpServer;
let pool: UpstreamPool;
const gateways: Gateway[] = [];
const clients: Client[] = [];

const config = () =>
  configFor(
    [
      { name: 'a', url: first.url },
      { name: 'b', url: second.url },
      { name: 'plain', url: first.url, prefix: false },
    ],
    { pageSize: 7 },
  );

beforeAll(async () => {
  first = await startFixture('fixture-one');
  second = await startFixture('fixture-two');
  pool = await connectedPool(config());
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
});

afterAll(async () => {
  await pool?.close();
  await first?.close();
  await second?.close();
});

async function start(stages: readonly Stage[] = []): Promise<{ gateway: Gateway; client: Client }> {
  const gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger, stages });
  gateways.push(gateway);
  const client = await connectClient(gateway);
  clients.push(client);
  return { gateway, client };
}

describe('Gateway end to end (in-memory agent, real upstreams)', () => {
  it('lists the merged tools page by page with signed cursors', async () => {
    const { gateway, client } = await start();
    const expected = (await gateway.catalog.list('tools')).map((entry) => entry.exposed);
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      // Without a cursor the SDK client aggregates every page itself, so the first page is asked for raw.
      const page =
        cursor === undefined
          ? await client.request({ method: 'tools/list', params: {} })
          : await client.listTools({ cursor });
      expect(page.tools.length).toBeLessThanOrEqual(7);
      names.push(...page.tools.map((tool) => tool.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(Math.ceil(expected.length / 7));
    expect(names).toEqual(expected);
    expect(names).toContain('a__test_simple_text');
    expect(names).toContain('b__fixture_echo');
    expect(names).toContain('test_simple_text');
    expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(expected);
  });

  it('refuses a forged or stale cursor with -32602', async () => {
    const { gateway, client } = await start();
    await expect(client.listTools({ cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: -32602 });
    const page = await client.request({ method: 'tools/list', params: {} });
    expect(page.nextCursor).toBeDefined();
    expect((await client.listTools({ cursor: page.nextCursor })).tools).toHaveLength(7);
    gateway.catalog.invalidate('b', ['tools']);
    await expect(client.listTools({ cursor: page.nextCursor })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/stale/i),
    });
  });

  it('routes calls by canonical name to the right upstream with the original name', async () => {
    const { client } = await start();
    expect(textOf(await client.callTool({ name: 'A__Test_Simple_Text', arguments: {} }))).toBe(
      'This is a simple text response for testing.',
    );
    const echoed = await client.callTool({ name: 'b__fixture_echo', arguments: { hello: 'world', n: 1 } });
    expect(JSON.parse(textOf(echoed))).toEqual({ hello: 'world', n: 1 });
    expect(echoed.structuredContent).toEqual({ hello: 'world', n: 1 });
    expect(textOf(await client.callTool({ name: 'test_simple_text', arguments: {} }))).toContain('simple text');
  });

  it('answers an unknown tool with -32602', async () => {
    const { client } = await start();
    await expect(client.callTool({ name: 'nope__test_simple_text', arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });
  });

  it('rewrites resource URIs in results and routes prefixed resource reads', async () => {
    const { client } = await start();
    const embedded = await client.callTool({ name: 'a__test_embedded_resource', arguments: {} });
    const block = (embedded.content as Array<{ type: string; resource?: { uri: string } }>).find(
      (item) => item.type === 'resource',
    );
    expect(block?.resource?.uri).toBe('a+test://embedded-resource');

    const read = await client.readResource({ uri: 'b+test://static-text' });
    expect(read.contents[0]).toMatchObject({
      uri: 'b+test://static-text',
      text: 'This is the content of the static text resource.',
    });
    const templated = await client.readResource({ uri: 'a+test://template/42/data' });
    expect(templated.contents[0]?.uri).toBe('a+test://template/42/data');
    const unprefixed = await client.readResource({ uri: 'test://static-text' });
    expect(unprefixed.contents[0]?.uri).toBe('test://static-text');

    const resources = await client.listResources({});
    expect(resources.resources.map((resource) => resource.uri)).toContain('a+test://static-text');
    const templates = await client.listResourceTemplates({});
    expect(templates.resourceTemplates.map((template) => template.uriTemplate)).toContain(
      'b+test://template/{id}/data',
    );
  });

  it('gets a prompt through its namespaced name', async () => {
    const { client } = await start();
    const prompt = await client.getPrompt({ name: 'b__test_simple_prompt' });
    expect(prompt.messages[0]?.content).toMatchObject({ type: 'text', text: 'This is a simple prompt for testing.' });
  });

  it('lets an authorize stage deny a tool, and a transform stage change results', async () => {
    const seen: Array<{ method: string; target: RequestContext['target'] }> = [];
    const record: Stage = {
      name: 'record',
      handle: async (ctx, next) => {
        seen.push({ method: ctx.method, target: ctx.target });
        return next();
      },
    };
    const deny: Stage = {
      name: 'authorize',
      handle: async (ctx, next) => {
        if (ctx.target?.originalName === 'fixture_echo' && ctx.target.upstream === 'a') {
          throw new JsonRpcError(-32003, `Denied: ${ctx.target.namespacedName}`, { rule: 'no-echo' });
        }
        return next();
      },
    };
    const transform: Stage = {
      name: 'transform',
      handle: async (ctx, next) => {
        const result = await next();
        if (ctx.method !== 'tools/call') return result;
        return { ...result, content: [{ type: 'text', text: 'redacted' }] };
      },
    };
    const { client } = await start([transform, deny, record]);
    await expect(client.callTool({ name: 'A__Fixture_Echo', arguments: { secret: 1 } })).rejects.toMatchObject({
      code: -32003,
      message: expect.stringContaining('Denied: a__fixture_echo'),
      data: { rule: 'no-echo' },
    });
    const allowed = await client.callTool({ name: 'b__fixture_echo', arguments: { secret: 1 } });
    expect(textOf(allowed)).toBe('redacted');
    expect(seen.filter((entry) => entry.method === 'tools/call')).toEqual([
      {
        method: 'tools/call',
        target: { upstream: 'a', originalName: 'fixture_echo', namespacedName: 'a__fixture_echo' },
      },
      {
        method: 'tools/call',
        target: { upstream: 'b', originalName: 'fixture_echo', namespacedName: 'b__fixture_echo' },
      },
    ]);
  });

  it('answers an unexpected stage failure as an internal error without leaking it', async () => {
    const broken: Stage = {
      name: 'hold',
      handle: async () => {
        throw new Error('secret internal detail');
      },
    };
    const { client } = await start([broken]);
    const failure = await client.callTool({ name: 'a__test_simple_text', arguments: {} }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ code: -32603 });
    expect(String((failure as Error).message)).not.toContain('secret internal detail');
  });

  it('refuses a stage for an unknown slot', () => {
    const bogus = { name: 'audit', handle: async () => ({}) } as unknown as Stage;
    expect(
      () => new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger, stages: [bogus] }),
    ).toThrow(/unknown pipeline stage "audit"/);
  });
});
