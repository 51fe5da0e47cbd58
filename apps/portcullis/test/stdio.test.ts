import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  type Agent,
  connectV1,
  connectV2,
  expectProgressPrefix,
  firstText,
  samplingText,
  stdioAgentTransportV1,
  stdioAgentTransportV2,
} from './support/agents.js';
import { gatewayConfig, stdioEverything, stdioFixture, stdioGatewayParams } from './support/gateway.js';
import { cleanupAll, GATEWAY_BIN, spawnProcess, writeConfig } from './support/processes.js';

const upstreams = {
  a: stdioFixture('fixture-a'),
  b: stdioFixture('fixture-b', { isolation: 'shared' }),
  everything: stdioEverything(),
};
const agents: Agent[] = [];

afterEach(async () => {
  await Promise.allSettled(agents.splice(0).map((agent) => agent.close()));
});

afterAll(async () => {
  await cleanupAll();
});

const KINDS = {
  'v2 stdio (2025 era)': () =>
    connectV2(
      'v2-stdio-legacy',
      stdioAgentTransportV2(stdioGatewayParams({ upstreams, gateway: { pageSize: 5 } })),
      'legacy',
    ),
  'v2 stdio (2026 era)': () =>
    connectV2(
      'v2-stdio-modern',
      stdioAgentTransportV2(stdioGatewayParams({ upstreams, gateway: { pageSize: 5 } })),
      'modern',
    ),
  'v1 stdio': () =>
    connectV1('v1-stdio', stdioAgentTransportV1(stdioGatewayParams({ upstreams, gateway: { pageSize: 5 } }))),
} as const;

for (const [kind, connect] of Object.entries(KINDS)) {
  describe(`stdio front, ${kind}`, () => {
    it('routes clashing names, relays progress, sampling and elicitation, and reaches server-everything', async () => {
      const agent = await connect();
      agents.push(agent);
      const names = await agent.allToolNames();
      expect(names).toContain('a__test_simple_text');
      expect(names).toContain('b__test_simple_text');
      expect(names).toContain('everything__echo');
      expect(new Set(names).size).toBe(names.length);
      expect(firstText(await agent.callTool('b__test_simple_text'))).toContain('simple text');
      expect(firstText(await agent.callTool('everything__echo', { message: 'hi everything' }))).toContain(
        'hi everything',
      );
      const seen: number[] = [];
      await agent.callTool(
        'a__fixture_slow',
        { ms: 60, steps: 3 },
        { onprogress: (progress) => seen.push(progress.progress) },
      );
      expect(expectProgressPrefix(seen, [1, 2, 3]), `progress ${JSON.stringify(seen)}`).toBe(true);
      expect(firstText(await agent.callTool('b__test_sampling', { prompt: 'over stdio' }))).toBe(
        `LLM response: ${samplingText('over stdio')}`,
      );
      expect(firstText(await agent.callTool('a__test_elicitation', { message: 'name?' }))).toContain('from-e2e');
    });

    it('cancels a slow call, stays usable, and propagates list_changed from per-session and shared upstreams', async () => {
      const agent = await connect();
      agents.push(agent);
      const controller = new AbortController();
      const call = agent.callTool(
        'a__fixture_slow',
        { ms: 20_000, steps: 200 },
        { signal: controller.signal, onprogress: () => controller.abort(new Error('e2e cancels')) },
      );
      await expect(call).rejects.toThrow();
      expect(firstText(await agent.callTool('a__test_simple_text'))).toContain('simple text');
      // Per-session upstream: the notification reaches the agent. (Its new tool does not show in
      // tools/list yet — the catalog lists the primary connection only; see the report.)
      const fromPerSession = agent.nextToolsChanged();
      await agent.callTool('a__fixture_add_tool');
      await fromPerSession;
      // Shared upstream: notification, then the new tool is listed and callable.
      const changed = agent.nextToolsChanged();
      const added = firstText(await agent.callTool('b__fixture_add_tool'));
      await changed;
      const names = await agent.allToolNames();
      expect(names).toContain(`b__${added}`);
      expect(firstText(await agent.callTool(`b__${added}`))).toBe(`${added} called`);
    });
  });
}

describe('stdio front, bad input', () => {
  it('answers malformed JSON, invalid requests, unknown methods and oversized lines, and stays usable', async () => {
    const configFile = writeConfig(
      gatewayConfig({ upstreams: { a: stdioFixture('fixture-a') }, server: { maxMessageBytes: 4096 } }),
    );
    const gateway = spawnProcess(process.execPath, [GATEWAY_BIN, 'stdio', '--config', configFile], { stdinPipe: true });
    const stdin = gateway.child.stdin;
    const stdout = gateway.child.stdout;
    if (!stdin || !stdout) throw new Error('no stdio pipes');
    const lines = createInterface({ input: stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<{ id?: unknown; error?: { code: number; message: string }; result?: unknown }> => {
      for (;;) {
        const line = await lines.next();
        if (line.done) throw new Error(`gateway closed stdout; stderr:\n${gateway.stderr()}`);
        const message = JSON.parse(line.value) as {
          id?: unknown;
          method?: string;
          error?: { code: number; message: string };
          result?: unknown;
        };
        // Notifications (list_changed while upstreams settle, logging) are not answers.
        if (message.method === undefined) return message;
      }
    };
    const send = (text: string): void => {
      stdin.write(`${text}\n`);
    };

    send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    );
    expect(await next()).toMatchObject({ id: 1, result: { protocolVersion: '2025-06-18' } });
    send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));

    send('{"jsonrpc": "2.0", "id": 2, "method": ');
    expect((await next()).error?.code).toBe(-32700);
    send(JSON.stringify({ jsonrpc: '1.0', id: 3, method: 7 }));
    expect((await next()).error?.code).toBe(-32600);
    send(JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'no/such/method', params: {} }));
    expect(await next()).toMatchObject({ id: 4, error: { code: -32601 } });
    send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'a__fixture_echo', arguments: { pad: 'x'.repeat(10_000) } },
      }),
    );
    const oversized = await next();
    expect(oversized.error?.message).toMatch(/size limit/);
    send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 6,
        method: 'tools/call',
        params: { name: 'a__fixture_echo', arguments: { still: 'usable' } },
      }),
    );
    expect(await next()).toMatchObject({ id: 6, result: { structuredContent: { still: 'usable' } } });

    stdin.end();
    expect(await gateway.exited).toBe(0);
  });
});
