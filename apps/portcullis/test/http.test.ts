import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type Agent,
  connectHttpAgent,
  expectProgressPrefix,
  firstText,
  HTTP_AGENT_KINDS,
  samplingText,
} from './support/agents.js';
import {
  type HttpFixture,
  type HttpGateway,
  httpUpstream,
  startHttpFixture,
  startHttpGateway,
  stdioFixture,
} from './support/gateway.js';
import { cleanupAll, onCleanup } from './support/processes.js';

/**
 * One `portcullis serve` with two upstreams exposing the same tool names: `a` is the fixture as a
 * stdio child (per-session), `b` the fixture over Streamable HTTP (shared). Every agent kind
 * drives the same scenarios through it.
 */
let gateway: HttpGateway;
let fixtureB: HttpFixture;
const agents: Agent[] = [];

beforeAll(async () => {
  fixtureB = await startHttpFixture('fixture-b');
  gateway = await startHttpGateway({
    upstreams: { a: stdioFixture('fixture-a'), b: httpUpstream(fixtureB.url) },
    gateway: { pageSize: 5 },
  });
});

afterEach(async () => {
  await Promise.allSettled(agents.splice(0).map((agent) => agent.close()));
});

afterAll(async () => {
  await cleanupAll();
});

async function agentOf(kind: (typeof HTTP_AGENT_KINDS)[number]): Promise<Agent> {
  const agent = await connectHttpAgent(kind, gateway.mcpUrl);
  agents.push(agent);
  return agent;
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

for (const kind of HTTP_AGENT_KINDS) {
  describe(`HTTP front, ${kind}`, () => {
    it('lists clashing tools of both upstreams under their prefixes and routes calls', async () => {
      const agent = await agentOf(kind);
      const names = await agent.allToolNames();
      expect(names).toContain('a__test_simple_text');
      expect(names).toContain('b__test_simple_text');
      expect(names).not.toContain('test_simple_text');
      expect(new Set(names).size).toBe(names.length);
      for (const name of ['a__test_simple_text', 'b__test_simple_text']) {
        expect(firstText(await agent.callTool(name))).toBe('This is a simple text response for testing.');
      }
      const echoed = await agent.callTool('a__fixture_echo', { via: kind });
      expect(JSON.parse(firstText(echoed))).toEqual({ via: kind });
    });

    it('propagates tools/list_changed and routes the new tool to the upstream that added it', async () => {
      const agent = await agentOf(kind);
      await agent.allToolNames();
      const changed = agent.nextToolsChanged();
      const added = firstText(await agent.callTool('b__fixture_add_tool'));
      expect(added).toMatch(/^dynamic_\d+$/);
      await changed;
      const names = await agent.allToolNames();
      expect(names).toContain(`b__${added}`);
      expect(names).not.toContain(`a__${added}`);
      expect(firstText(await agent.callTool(`b__${added}`))).toBe(`${added} called`);
      await expect(agent.callTool(`a__${added}`)).rejects.toThrow(/Unknown tool/);
    });

    it('pages the merged list 5 at a time and rejects a forged cursor with -32602', async () => {
      const agent = await agentOf(kind);
      const first = await agent.listToolsPage();
      if (kind.startsWith('v2')) {
        // The v2 client aggregates every page when no cursor is given.
        expect(first.names.length).toBeGreaterThan(5);
      } else {
        expect(first.names).toHaveLength(5);
        expect(first.nextCursor).toBeTypeOf('string');
      }
      const walked: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await (cursor === undefined && kind.startsWith('v1')
          ? agent.listToolsPage()
          : agent.listToolsPage(cursor));
        if (cursor !== undefined) expect(page.names.length).toBeLessThanOrEqual(5);
        walked.push(...page.names);
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor !== undefined && pages < 100);
      expect(walked.filter((name) => name.startsWith('a__')).length).toBeGreaterThan(5);
      expect(walked.filter((name) => name.startsWith('b__')).length).toBeGreaterThan(5);
      expect(new Set(walked).size).toBe(walked.length);
      const forged = await agent.listToolsPage('eyJmb3JnZWQiOnRydWV9').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(errorCode(forged)).toBe(-32602);
    });

    it('relays progress with the agent’s own token from both upstreams', async () => {
      const agent = await agentOf(kind);
      for (const name of ['a__fixture_slow', 'b__fixture_slow']) {
        const seen: number[] = [];
        const result = await agent.callTool(
          name,
          { ms: 60, steps: 3 },
          { onprogress: (progress) => seen.push(progress.progress) },
        );
        expect(firstText(result)).toContain('finished');
        expect(expectProgressPrefix(seen, [1, 2, 3]), `${name} progress ${JSON.stringify(seen)}`).toBe(true);
      }
    });

    it('cancels a slow call and stays usable', async () => {
      const agent = await agentOf(kind);
      const controller = new AbortController();
      const started = Date.now();
      const call = agent.callTool(
        'a__fixture_slow',
        { ms: 20_000, steps: 200 },
        { signal: controller.signal, onprogress: () => controller.abort(new Error('e2e cancels')) },
      );
      await expect(call).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(firstText(await agent.callTool('a__test_simple_text'))).toContain('simple text');
      expect(firstText(await agent.callTool('b__test_simple_text'))).toContain('simple text');
    });

    it('round-trips sampling and elicitation to the agent', async () => {
      const agent = await agentOf(kind);
      const sampled = await agent.callTool('a__test_sampling', { prompt: 'hello gateway' });
      expect(firstText(sampled)).toBe(`LLM response: ${samplingText('hello gateway')}`);
      const elicited = await agent.callTool('a__test_elicitation', { message: 'your name?' });
      expect(firstText(elicited)).toBe('User response: action=accept, content={"response":"from-e2e"}');
    });

    it('lists rewritten resource URIs and templates, and reads through them', async () => {
      const agent = await agentOf(kind);
      const uris = await agent.listResourceUris();
      expect(uris).toContain('a+test://static-text');
      expect(uris).toContain('b+test://static-text');
      expect(uris).not.toContain('test://static-text');
      expect(await agent.readResourceText('b+test://static-text')).toBe(
        'This is the content of the static text resource.',
      );
      const templates = await agent.listTemplateUris();
      expect(templates).toContain('a+test://template/{id}/data');
      expect(templates).toContain('b+test://template/{id}/data');
      expect(JSON.parse(await agent.readResourceText('a+test://template/7/data'))).toMatchObject({ id: '7' });
    });
  });
}

describe('HTTP front, bad input', () => {
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  };
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

  it('answers /healthz and /readyz', async () => {
    const health = await fetch(`${gateway.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${gateway.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true });
  });

  it('returns 400 for malformed JSON', async () => {
    const response = await fetch(gateway.mcpUrl, { method: 'POST', headers, body: '{"jsonrpc": "2.0", "id": 1,' });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: -32700 } });
  });

  it('returns 413 for a body over maxMessageBytes and stays usable', async () => {
    const huge = JSON.stringify({
      ...initialize,
      params: { ...initialize.params, padding: 'x'.repeat(5 * 1024 * 1024) },
    });
    const response = await fetch(gateway.mcpUrl, { method: 'POST', headers, body: huge });
    expect(response.status).toBe(413);
    const ok = await fetch(gateway.mcpUrl, { method: 'POST', headers, body: JSON.stringify(initialize) });
    expect(ok.status).toBe(200);
    const sessionId = ok.headers.get('mcp-session-id');
    expect(sessionId).toBeTruthy();
    await ok.body?.cancel();
    if (sessionId) {
      onCleanup(() => fetch(gateway.mcpUrl, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } }));
    }
  });

  it('returns 403 for a foreign Origin and a foreign Host', async () => {
    const origin = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...headers, origin: 'https://evil.example' },
      body: JSON.stringify(initialize),
    });
    expect(origin.status).toBe(403);
    // fetch() does not let a caller set Host; use node:http.
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        gateway.mcpUrl,
        { method: 'POST', headers: { ...headers, host: 'evil.example:80' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(initialize));
    });
    expect(status).toBe(403);
  });

  it('returns 404 for an unknown Mcp-Session-Id', async () => {
    const response = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(404);
  });
});
