import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectV1Client,
  connectV2Client,
  E2E_ROOT,
  type FeatureClient,
  fromV1,
  fromV2,
  SAMPLED,
  textOf,
  type V2Handle,
  v1Http,
  v1Stdio,
  v2Http,
  v2Stdio,
} from './support/clients.js';
import {
  type HttpFixture,
  type HttpGateway,
  httpUpstream,
  startHttpFixture,
  startHttpGateway,
  stdioFixture,
  stdioGatewayParams,
} from './support/gateway.js';
import { cleanupAll } from './support/processes.js';

/**
 * Resource subscriptions, prompts and completion, logging, the 2026-era multi-round-trip
 * (input_required), roots and the 2026 header checks, through one `portcullis serve` (HTTP agents)
 * and one `portcullis stdio` per stdio agent. Upstreams: `a` the fixture as a stdio child
 * (per-session), `l` the same pinned to the 2025 era, `w1` and `w2` the same fixture process over Streamable HTTP (shared) under two
 * names, so that one upstream tick yields one update per gateway URI.
 */
const WATCHED = 'test://watched-resource';
let fixture: HttpFixture;
let gateway: HttpGateway;

function upstreams(): Record<string, unknown> {
  return {
    a: stdioFixture('fixture-a'),
    // The fixture over stdio sends resource updates only to 2025-era resources/subscribe (not to a
    // 2026-era subscriptions/listen filter), so the stdio subscription path uses a 2025-era upstream.
    l: stdioFixture('fixture-l', { era: 'legacy' }),
    w1: httpUpstream(fixture.url),
    w2: httpUpstream(fixture.url),
  };
}

beforeAll(async () => {
  fixture = await startHttpFixture('fixture-w');
  gateway = await startHttpGateway({ upstreams: upstreams() });
});

afterAll(async () => {
  await cleanupAll();
});

const LEGACY_KINDS = {
  'v2 HTTP (2025 era)': async () =>
    fromV2('v2 HTTP (2025 era)', await connectV2Client(v2Http(gateway.mcpUrl), 'legacy')),
  'v1 HTTP': async () => fromV1('v1 HTTP', await connectV1Client(v1Http(gateway.mcpUrl))),
  'v2 stdio (2025 era)': async () =>
    fromV2(
      'v2 stdio (2025 era)',
      await connectV2Client(v2Stdio(stdioGatewayParams({ upstreams: upstreams() })), 'legacy'),
    ),
  'v1 stdio': async () =>
    fromV1('v1 stdio', await connectV1Client(v1Stdio(stdioGatewayParams({ upstreams: upstreams() })))),
} as const;

const modernHandles = new Map<string, Promise<V2Handle>>();
const MODERN_KINDS = {
  'v2 HTTP (2026 era)': () => connectV2Client(v2Http(gateway.mcpUrl), 'modern'),
  'v2 stdio (2026 era)': () => connectV2Client(v2Stdio(stdioGatewayParams({ upstreams: upstreams() })), 'modern'),
} as const;

/** One client per kind for the whole file (stdio kinds each own a gateway process). */
const clients = new Map<string, Promise<FeatureClient>>();
function clientOf(kind: string, connect: () => Promise<FeatureClient>): Promise<FeatureClient> {
  let client = clients.get(kind);
  if (client === undefined) {
    client = connect();
    clients.set(kind, client);
  }
  return client;
}
function modernHandleOf(kind: keyof typeof MODERN_KINDS): Promise<V2Handle> {
  let handle = modernHandles.get(kind);
  if (handle === undefined) {
    handle = MODERN_KINDS[kind]();
    modernHandles.set(kind, handle);
  }
  return handle;
}

async function expectPromptsAndCompletion(client: FeatureClient): Promise<void> {
  const names = await client.listPromptNames();
  expect(names).toContain('a__test_prompt_with_arguments');
  expect(names).toContain('w1__test_simple_prompt');
  expect(names).not.toContain('test_simple_prompt');
  const prompt = await client.getPrompt('a__test_prompt_with_arguments', { arg1: 'alpha', arg2: 'beta' });
  expect(textOf((prompt as { messages: { content: unknown }[] }).messages[0])).toBe(
    "Prompt with arguments: arg1='alpha', arg2='beta'",
  );
  const shared = await client.getPrompt('w2__test_simple_prompt', {});
  expect(textOf((shared as { messages: { content: unknown }[] }).messages[0])).toBe(
    'This is a simple prompt for testing.',
  );
  expect(
    await client.complete({ type: 'ref/prompt', name: 'a__test_prompt_with_arguments' }, { name: 'arg1', value: 'pa' }),
  ).toEqual(['paris', 'park', 'party']);
  expect(
    await client.complete({ type: 'ref/resource', uri: 'w1+test://template/{id}/data' }, { name: 'id', value: '1' }),
  ).toEqual(['1', '123']);
}

/** The fixture's input_required tools and what each answers given the canned client answers. */
const INPUT_REQUIRED_EXPECTATIONS: readonly [tool: string, expected: string][] = [
  ['test_input_required_result_elicitation', 'Hello, Ada!'],
  ['test_input_required_result_sampling', `Sampling result: ${SAMPLED}`],
  ['test_input_required_result_list_roots', `Found 1 root(s): ${E2E_ROOT.uri}`],
  ['test_input_required_result_request_state', 'state-ok: requestState validated (ok=true)'],
  ['test_input_required_result_multi_round', 'Multi-round complete for Ada who likes teal'],
  ['test_input_required_result_multiple_inputs', `Name: Ada; Greeting: ${SAMPLED}; Roots: 1`],
];

for (const [kind, connect] of Object.entries(LEGACY_KINDS)) {
  describe(`features, ${kind}`, () => {
    it('delivers resources/updated under the gateway URI while subscribed, and stops after unsubscribe', async () => {
      const client = await clientOf(kind, connect);
      const { seen } = client;
      const count = (uri: string): number => seen.updates.filter((seenUri) => seenUri === uri).length;
      const before = { l: count(`l+${WATCHED}`), w1: count(`w1+${WATCHED}`), w2: count(`w2+${WATCHED}`) };
      await client.subscribe(`l+${WATCHED}`);
      await client.subscribe(`w1+${WATCHED}`);
      await client.subscribe(`w2+${WATCHED}`);
      await seen.until(
        () =>
          count(`l+${WATCHED}`) > before.l && count(`w1+${WATCHED}`) > before.w1 && count(`w2+${WATCHED}`) > before.w2,
        8_000,
        () => `updates for l+, w1+ and w2+ (seen ${JSON.stringify(seen.updates)})`,
      );
      expect(seen.updates).not.toContain(WATCHED);
      await client.unsubscribe(`w1+${WATCHED}`);
      await client.unsubscribe(`l+${WATCHED}`);
      // w1 and w2 are one fixture process: once w2's next tick has arrived, w1's would have too.
      const afterUnsubscribe = { w1: count(`w1+${WATCHED}`), w2: count(`w2+${WATCHED}`) };
      await seen.until(() => count(`w2+${WATCHED}`) > afterUnsubscribe.w2, 8_000, 'the next w2 update');
      await client.callTool('a__test_simple_text');
      expect(count(`w1+${WATCHED}`)).toBe(afterUnsubscribe.w1);
      await client.unsubscribe(`w2+${WATCHED}`);
    });

    it('lists namespaced prompts, gets one with arguments, and completes prompt and template arguments', async () => {
      await expectPromptsAndCompletion(await clientOf(kind, connect));
    });

    it('relays notifications/message after logging/setLevel, from per-session and shared upstreams', async () => {
      const client = await clientOf(kind, connect);
      await client.setLogLevel('info');
      for (const tool of ['a__test_tool_with_logging', 'w1__test_tool_with_logging']) {
        const before = client.seen.logs.length;
        expect(textOf(await client.callTool(tool))).toBe('Tool with logging executed successfully');
        // The three messages precede the result on the upstream's stream; allow them to trail it here.
        await client.seen.until(() => client.seen.logs.length >= before + 3, 5_000, `log messages from ${tool}`);
        expect(client.seen.logs.slice(before)).toEqual(
          expect.arrayContaining(['Tool execution started', 'Tool processing data', 'Tool execution completed']),
        );
      }
    });

    it('turns the input_required tools into real elicitation, sampling and roots requests to the agent', async () => {
      const client = await clientOf(kind, connect);
      for (const [tool, expected] of INPUT_REQUIRED_EXPECTATIONS) {
        expect(textOf(await client.callTool(`a__${tool}`)), tool).toBe(expected);
      }
      expect(client.seen.serverRequests).toEqual(
        expect.arrayContaining(['elicitation/create', 'sampling/createMessage', 'roots/list']),
      );
    });

    it('forwards notifications/roots/list_changed to per-session upstreams and stays usable', async () => {
      const client = await clientOf(kind, connect);
      const rootsAsked = client.seen.serverRequests.filter((method) => method === 'roots/list').length;
      await client.sendRootsListChanged();
      expect(textOf(await client.callTool('a__test_input_required_result_list_roots'))).toBe(
        `Found 1 root(s): ${E2E_ROOT.uri}`,
      );
      expect(client.seen.serverRequests.filter((method) => method === 'roots/list').length).toBeGreaterThan(rootsAsked);
      if (kind.includes('HTTP')) expect(gateway.proc.stderr()).not.toMatch(/roots\/list_changed.*(error|fail)/i);
    });
  });
}

for (const kind of Object.keys(MODERN_KINDS) as (keyof typeof MODERN_KINDS)[]) {
  describe(`features, ${kind}`, () => {
    const client = async (): Promise<FeatureClient> => fromV2(kind, await modernHandleOf(kind));

    it('lists namespaced prompts, gets one with arguments, and completes prompt and template arguments', async () => {
      await expectPromptsAndCompletion(await client());
    });

    it('relays log messages for a request that carries a log level', async () => {
      const agent = await client();
      const before = agent.seen.logs.length;
      const result = await agent.callTool('a__test_tool_with_logging', {}, { [LOG_LEVEL_META_KEY]: 'info' });
      expect(textOf(result)).toBe('Tool with logging executed successfully');
      await agent.seen.until(() => agent.seen.logs.length >= before + 3, 5_000, 'log messages');
      expect(agent.seen.logs.slice(before)).toEqual(
        expect.arrayContaining(['Tool execution started', 'Tool processing data', 'Tool execution completed']),
      );
    });

    it('drives the input_required tools through its own SDK (per-session and shared upstreams)', async () => {
      const agent = await client();
      for (const [tool, expected] of INPUT_REQUIRED_EXPECTATIONS) {
        expect(textOf(await agent.callTool(`a__${tool}`)), `a__${tool}`).toBe(expected);
      }
      for (const [tool, expected] of INPUT_REQUIRED_EXPECTATIONS) {
        expect(textOf(await agent.callTool(`w1__${tool}`)), `w1__${tool}`).toBe(expected);
      }
    });

    // The gateway subscribes upstream for the listen filter's resource URIs and relays the updates
    // under the gateway URI.
    it('receives resources/updated under the gateway URI through subscriptions/listen', async () => {
      const handle = await modernHandleOf(kind);
      // Upstreams connect in the background; a listing waits for them.
      await handle.client.listResources();
      const before = handle.seen.updates.length;
      const subscription = await handle.client.listen({ resourceSubscriptions: [`w1+${WATCHED}`, `l+${WATCHED}`] });
      try {
        await handle.seen.until(() => handle.seen.updates.length > before, 4_500, 'a resources/updated');
        expect(handle.seen.updates.slice(before).every((uri) => uri.startsWith('w1+') || uri.startsWith('l+'))).toBe(
          true,
        );
      } finally {
        await subscription.close();
      }
    });
  });
}

describe('2026-era HTTP header validation at the front', () => {
  const body = (method: string, params: Record<string, unknown>) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
          [CLIENT_INFO_META_KEY]: { name: 'raw', version: '1' },
          [CLIENT_CAPABILITIES_META_KEY]: {},
        },
      },
    });
  const headers = (method: string) => ({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': method,
  });

  it('answers a matching request, and rejects an Mcp-Method header that disagrees with the body with -32020', async () => {
    const ok = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers('tools/list'),
      body: body('tools/list', {}),
    });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('a__test_simple_text');
    const mismatch = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers('prompts/list'),
      body: body('tools/list', {}),
    });
    expect(mismatch.status).toBe(400);
    expect(await mismatch.json()).toMatchObject({ error: { code: -32020 } });
  });
});
