import { createServer } from 'node:net';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, connectHttpAgent, connectV1, firstText } from './support/agents.js';
import { type HttpGateway, httpUpstream, startHttpGateway } from './support/gateway.js';
import { cleanupAll, EVERYTHING_BIN, type Spawned, spawnProcess, waitForStderr } from './support/processes.js';

/**
 * server-everything served over Streamable HTTP and over legacy SSE (it reads its port from
 * `PORT`), as `transport: streamable-http` and `transport: sse` upstreams of one gateway.
 */
let gateway: HttpGateway;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function startEverything(mode: 'streamableHttp' | 'sse'): Promise<{ proc: Spawned; port: number }> {
  const port = await freePort();
  const proc = spawnProcess(process.execPath, [EVERYTHING_BIN, mode], { env: { PORT: String(port) } });
  await waitForStderr(proc, mode === 'sse' ? /running on port/ : /listening on port/);
  return { proc, port };
}

beforeAll(async () => {
  const [streamable, sse] = await Promise.all([startEverything('streamableHttp'), startEverything('sse')]);
  gateway = await startHttpGateway({
    upstreams: {
      http: httpUpstream(`http://127.0.0.1:${streamable.port}/mcp`),
      sse: { transport: 'sse', url: `http://127.0.0.1:${sse.port}/sse` },
    },
  });
});

afterAll(async () => {
  await cleanupAll();
});

describe('server-everything over HTTP as an upstream', () => {
  const check = async (agent: Agent): Promise<void> => {
    const names = await agent.allToolNames();
    expect(names).toContain('http__echo');
    expect(names).toContain('sse__echo');
    expect(firstText(await agent.callTool('http__echo', { message: 'via streamable http' }))).toBe(
      'Echo: via streamable http',
    );
    expect(firstText(await agent.callTool('sse__echo', { message: 'via sse' }))).toBe('Echo: via sse');
  };

  it('calls echo through the streamable-http and sse upstreams (v1 agent)', async () => {
    await check(await connectV1('everything-http', new V1HttpTransport(new URL(gateway.mcpUrl))));
  });

  it('calls echo through the streamable-http and sse upstreams (v2 agent, 2026 era)', async () => {
    await check(await connectHttpAgent('v2 Streamable HTTP (2026 era)', gateway.mcpUrl));
  });
});
