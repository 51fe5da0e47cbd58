import { afterEach, describe, expect, it } from 'vitest';
import { connectHttpAgent } from './support/agents.js';
import { startHttpGateway, stdioFixture } from './support/gateway.js';
import { cleanupAll } from './support/processes.js';

afterEach(async () => {
  await cleanupAll();
});

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** A 2025-era session opened by hand: no standalone GET stream, so nothing keeps it alive. */
async function openBareSession(mcpUrl: string): Promise<string> {
  const response = await fetch(mcpUrl, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bare', version: '1' } },
    }),
  });
  await response.text();
  const id = response.headers.get('mcp-session-id');
  if (!id) throw new Error(`no session id (HTTP ${response.status})`);
  await fetch(mcpUrl, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  }).then((r) => r.text());
  return id;
}

async function ping(mcpUrl: string, sessionId: string): Promise<number> {
  const response = await fetch(mcpUrl, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  await response.text();
  return response.status;
}

describe('idle 2025-era HTTP sessions', () => {
  it('closes a session that sees no request and has no open stream, and keeps one whose agent holds its stream', async () => {
    const gateway = await startHttpGateway({
      server: { sessionIdleTimeoutMs: 1_500 },
      upstreams: { a: stdioFixture('fixture-a') },
    });
    // The SDK client keeps the standalone GET stream open: that session is in use however quiet it is.
    const listening = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
    const bare = await openBareSession(gateway.mcpUrl);
    expect(await ping(gateway.mcpUrl, bare)).toBe(200);

    // Expiry is measured from the last request: keep polling slower than the timeout would allow.
    await new Promise((done) => setTimeout(done, 3_500));
    expect(await ping(gateway.mcpUrl, bare)).toBe(404);
    expect((await listening.listToolsPage()).names.length).toBeGreaterThan(0);
  });
});
