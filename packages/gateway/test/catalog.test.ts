import type { FixtureHttpServer } from '@portcullis/fixture-server';
import type { UpstreamPool } from '@portcullis/upstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog } from '../src/index.js';
import { configFor, connectedPool, silentLogger, startFixture, textOf } from './support.js';

let first: FixtureHttpServer;
let second: FixtureHttpServer;
let pool: UpstreamPool;
let catalog: Catalog;
/** The fixture's own tool names, as one upstream lists them. */
let fixtureTools: string[];

beforeAll(async () => {
  first = await startFixture('fixture-one');
  second = await startFixture('fixture-two');
  const config = configFor([
    { name: 'a', url: first.url },
    { name: 'b', url: second.url },
    { name: 'plain-one', url: first.url, prefix: false },
    { name: 'plain-two', url: second.url, prefix: false },
  ]);
  pool = await connectedPool(config);
  const specs = pool.names().map((name) => pool.spec(name));
  catalog = new Catalog(
    { specs: () => specs, primary: (name) => pool.primary(name) },
    { separator: '__' },
    silentLogger,
  );
  const listed = await pool.primary('a').request('tools/list', {});
  fixtureTools = (listed.tools as Array<{ name: string }>).map((tool) => tool.name);
});

afterAll(async () => {
  await pool?.close();
  await first?.close();
  await second?.close();
});

describe('Catalog over real upstreams', () => {
  it('namespaces prefixed upstreams and keeps the first of two clashing unprefixed ones', async () => {
    expect(fixtureTools).toContain('test_simple_text');
    const tools = await catalog.list('tools');
    const exposed = tools.map((entry) => entry.exposed);
    expect(exposed).toEqual([
      ...fixtureTools.map((name) => `a__${name}`),
      ...fixtureTools.map((name) => `b__${name}`),
      ...fixtureTools,
    ]);
    const unprefixed = tools.filter((entry) => entry.exposed === 'test_simple_text');
    expect(unprefixed).toHaveLength(1);
    expect(unprefixed[0]?.upstream).toBe('plain-one');
    const prefixed = tools.find((entry) => entry.exposed === 'b__test_simple_text');
    expect(prefixed).toMatchObject({ upstream: 'b', original: 'test_simple_text' });
    expect(prefixed?.item.name).toBe('b__test_simple_text');
    expect(prefixed?.item.description).toBe('Returns simple text content');
  });

  it('resolves tool names in canonical form', async () => {
    const upper = await catalog.resolveName('tools', 'A__Test_Simple_Text');
    const lower = await catalog.resolveName('tools', 'a__test_simple_text');
    expect(upper).toBeDefined();
    expect(upper).toBe(lower);
    expect(upper).toMatchObject({ upstream: 'a', original: 'test_simple_text' });
    expect(await catalog.resolveName('tools', 'ＴＥＳＴ_simple_text')).toMatchObject({ upstream: 'plain-one' });
    expect(await catalog.resolveName('tools', 'c__test_simple_text')).toBeUndefined();
    expect(await catalog.resolveName('prompts', 'B__TEST_SIMPLE_PROMPT')).toMatchObject({
      upstream: 'b',
      original: 'test_simple_prompt',
    });
  });

  it('prefixes listed resources and templates', async () => {
    const resources = (await catalog.list('resources')).map((entry) => entry.exposed);
    expect(resources).toContain('a+test://static-text');
    expect(resources).toContain('b+test://static-text');
    expect(resources.filter((uri) => uri === 'test://static-text')).toHaveLength(1);
    const templates = await catalog.list('resourceTemplates');
    const template = templates.find((entry) => entry.exposed === 'a+test://template/{id}/data');
    expect(template?.item.uriTemplate).toBe('a+test://template/{id}/data');
    expect(template?.original).toBe('test://template/{id}/data');
  });

  it('resolves prefixed URIs, listed unprefixed URIs and unprefixed template matches', async () => {
    expect(await catalog.resolveUri('a+test://static-text')).toEqual({ upstream: 'a', original: 'test://static-text' });
    expect(await catalog.resolveUri('b+test://template/42/data')).toEqual({
      upstream: 'b',
      original: 'test://template/42/data',
    });
    expect(await catalog.resolveUri('test://static-text')).toEqual({
      upstream: 'plain-one',
      original: 'test://static-text',
    });
    expect(await catalog.resolveUri('test://template/7/data')).toEqual({
      upstream: 'plain-one',
      original: 'test://template/7/data',
    });
    // Neither prefixed nor listed, and two unprefixed upstreams serve resources: no owner.
    expect(await catalog.resolveUri('test://nowhere')).toBeUndefined();
    expect(await catalog.resolveUri('zz+test://static-text')).toBeUndefined();
  });

  it('keeps a list until invalidated, and bumps the version on invalidation', async () => {
    const before = (await catalog.list('tools')).map((entry) => entry.exposed);
    const added = await pool.primary('b').request('tools/call', { name: 'fixture_add_tool', arguments: {} });
    const dynamicName = textOf(added);
    expect(dynamicName).toMatch(/^dynamic_/);
    // Memoised: the upstream's change is not seen until the catalog is told.
    expect((await catalog.list('tools')).map((entry) => entry.exposed)).toEqual(before);
    const version = catalog.version;
    catalog.invalidate('b', ['tools']);
    expect(catalog.version).toBe(version + 1);
    const after = (await catalog.list('tools')).map((entry) => entry.exposed);
    expect(after).toContain(`b__${dynamicName}`);
    expect(after).not.toContain(`a__${dynamicName}`);
    catalog.invalidateAll();
    expect(catalog.version).toBe(version + 2);
  });
});

describe('Catalog with a single unprefixed upstream', () => {
  it('routes an unlisted URI to the only unprefixed upstream that serves resources', async () => {
    const specs = pool
      .names()
      .filter((name) => name !== 'plain-two')
      .map((name) => pool.spec(name));
    const single = new Catalog(
      { specs: () => specs, primary: (name) => pool.primary(name) },
      { separator: '__' },
      silentLogger,
    );
    expect(await single.resolveUri('test://not-listed-anywhere')).toEqual({
      upstream: 'plain-one',
      original: 'test://not-listed-anywhere',
    });
  });

  it('hides tools whose namespaced name is not a valid tool name', async () => {
    const specs = [{ ...pool.spec('a'), namePrefix: 'x'.repeat(120) }];
    const narrow = new Catalog(
      { specs: () => specs, primary: (name) => pool.primary(name) },
      { separator: '__' },
      silentLogger,
    );
    const exposed = (await narrow.list('tools')).map((entry) => entry.exposed);
    expect(exposed.every((name) => name.length <= 128)).toBe(true);
    expect(exposed.length).toBeLessThan(fixtureTools.length);
  });
});
