import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { connectV1, firstText } from './support/agents.js';
import { httpUpstream, marker, startHttpFixture, startHttpGateway, stdioFixture } from './support/gateway.js';
import {
  childPids,
  cleanupAll,
  GATEWAY_BIN,
  isAlive,
  spawnProcess,
  waitFor,
  writeConfig,
} from './support/processes.js';

afterEach(async () => {
  await cleanupAll();
});

describe('upstream failure', () => {
  it('fails only the calls routed to a crashed upstream, naming it, and recovers when it returns', async () => {
    const first = await startHttpFixture('fixture-b');
    const port = new URL(first.url).port;
    const gateway = await startHttpGateway({
      upstreams: { a: stdioFixture('fixture-a'), b: httpUpstream(first.url, { healthCheckIntervalMs: 300 }) },
    });
    const agent = await connectV1('crash', new V1HttpTransport(new URL(gateway.mcpUrl)));
    expect(firstText(await agent.callTool('b__test_simple_text'))).toContain('simple text');

    let killed = false;
    const call = agent.callTool(
      'b__fixture_slow',
      { ms: 20_000, steps: 200 },
      {
        onprogress: () => {
          if (killed) return;
          killed = true;
          first.proc.child.kill('SIGKILL');
        },
      },
    );
    await expect(call).rejects.toThrow(/\bb\b/);
    expect(killed).toBe(true);
    expect(firstText(await agent.callTool('a__test_simple_text'))).toContain('simple text');
    // While b is down its tools stay listed, so a call fails naming the upstream, not as an unknown tool.
    await expect(agent.callTool('b__test_simple_text')).rejects.toThrow(/upstream "b"/);

    await startHttpFixture('fixture-b', Number(port));
    const deadline = Date.now() + 20_000;
    let recovered = '';
    while (recovered === '' && Date.now() < deadline) {
      recovered = await agent.callTool('b__test_simple_text').then(
        (result) => firstText(result),
        async () => {
          await new Promise((done) => setTimeout(done, 200));
          return '';
        },
      );
    }
    expect(recovered).toContain('simple text');
    expect(firstText(await agent.callTool('a__test_simple_text'))).toContain('simple text');
  });
});

describe('process lifecycle', () => {
  it('leaves no upstream child behind after SIGTERM', async () => {
    const tag = marker();
    const gateway = await startHttpGateway({
      upstreams: { a: stdioFixture(`${tag}-a`), b: stdioFixture(`${tag}-b`) },
    });
    const agent = await connectV1('orphans', new V1HttpTransport(new URL(gateway.mcpUrl)));
    // Per-session upstreams: these calls spawn dedicated children besides the primaries.
    expect(firstText(await agent.callTool('a__test_simple_text'))).toContain('simple text');
    expect(firstText(await agent.callTool('b__test_simple_text'))).toContain('simple text');
    const children = childPids(gateway.proc.pid);
    expect(children.length).toBeGreaterThanOrEqual(4);
    expect(await gateway.proc.stop(10_000)).toBe(0);
    await waitFor(() => children.every((pid) => !isAlive(pid)), 10_000, 'upstream children to exit');
  });

  it('exits non-zero on a config error, naming the file, the path and the reason, without a stack trace', async () => {
    const file = writeConfig({ upstreams: { a: { transport: 'carrier-pigeon', command: 'node' } } }, 'broken.yaml');
    const proc = spawnProcess(process.execPath, [GATEWAY_BIN, 'serve', '--config', file, '--port', '0']);
    const code = await proc.exited;
    expect(code).not.toBe(0);
    const stderr = proc.stderr();
    expect(stderr).toContain(file);
    expect(stderr).toMatch(/upstreams\.a/);
    expect(stderr).toMatch(/transport/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
