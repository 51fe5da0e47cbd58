import { writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayConfig, httpUpstream, startHttpFixture, stdioFixture } from './support/gateway.js';
import { cleanupAll, onCleanup, tempDir, writeConfig } from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  type ServedGateway,
  serve,
} from './support/session-log.js';

/**
 * Identity over HTTP with gateway-issued API keys, and stored policy versions, end to end: keys and
 * versions through the spawned CLI, real SDK agents through `portcullis serve`, the HTTP fixture as
 * the upstream `fx` behind a proxy that records every header the upstream receives.
 */

const V1 = `
default: { action: deny, reason: not allowed by v1 }
rules:
  - name: agents-may
    match: { groups: agents }
    action: allow
`;

const V2 = `
default: { action: deny, reason: not allowed by v2 }
rules:
  - name: no-simple-text-in-v2
    match: { tool: fx__test_simple_text }
    action: deny
    reason: v2 switched test_simple_text off
  - name: agents-may
    match: { groups: agents }
    action: allow
`;

const BAD = `
default: { action: deny }
rules:
  - name: broken
    match: { tool: x }
    when: args.path.startsWith(
    action: deny
`;

interface ToolResult {
  readonly content?: readonly { type: string; text?: string }[];
  readonly isError?: boolean;
}

function file(text: string, name: string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  return path;
}

/** An HTTP proxy in front of the upstream that records the headers of every request it forwards. */
async function recordingProxy(target: string): Promise<{ url: string; headers: IncomingHttpHeaders[] }> {
  const headers: IncomingHttpHeaders[] = [];
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    headers.push({ ...req.headers });
    const forward = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  onCleanup(
    () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}${upstream.pathname}`, headers };
}

async function agent(mcpUrl: string, key: string | undefined, era: 'legacy' | 'modern' = 'legacy'): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    requestInit: key === undefined ? {} : { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client(
    { name: `identity-e2e-${era}`, version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  await client.connect(transport);
  onCleanup(() => client.close());
  return client;
}

async function call(client: Client, name: string): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: {} })) as ToolResult;
}

function text(result: ToolResult): string {
  return result.content?.[0]?.text ?? '';
}

/** A raw initialize, to look at the HTTP answer itself. */
async function rawInitialize(mcpUrl: string, authorization: string | undefined): Promise<Response> {
  return fetch(mcpUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
}

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 8_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((done) => setTimeout(done, 200));
  }
}

interface CreatedKey {
  readonly id: string;
  readonly name: string;
  readonly groups: string[];
  readonly key: string;
}

async function createKey(configFile: string, name: string, groups: string): Promise<CreatedKey> {
  const run = await runCli([
    'keys',
    'create',
    '--name',
    name,
    '--groups',
    groups,
    '-c',
    configFile,
    '--output',
    'json',
  ]);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as CreatedKey;
}

let releasePostgres: (() => void) | undefined;
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);

afterAll(async () => {
  await cleanupAll();
  releasePostgres?.();
});

describe('API keys and stored policy versions on Postgres (live changes)', () => {
  let db: FreshDatabase;
  let configFile: string;
  let gateway: ServedGateway;
  let proxy: { url: string; headers: IncomingHttpHeaders[] };
  let bot: CreatedKey;
  let outsider: CreatedKey;

  beforeAll(async () => {
    db = await freshDatabase();
    onCleanup(() => db.drop());
    const fixture = await startHttpFixture('fx');
    proxy = await recordingProxy(fixture.url);
    configFile = writeConfig({
      ...gatewayConfig({ upstreams: { fx: httpUpstream(proxy.url) }, auth: { anonymous: false } }),
      database: { url: db.url },
      audit: { batch: { intervalMs: 20 }, spoolDir: join(tempDir(), 'spool') },
      policy: { source: 'store' },
    });
    bot = await createKey(configFile, 'ci-bot', 'agents,ci');
    outsider = await createKey(configFile, 'outsider', 'guests');
    const applied = await runCli(['policy', 'apply', file(V1, 'v1.yaml'), '-c', configFile]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout.trim()).toBe('v1');
    gateway = await serve(configFile);
  }, 120_000);

  it('lists keys without their secrets', async () => {
    expect(bot.key).toMatch(/^pcs_[A-Za-z0-9_-]{43}$/);
    expect(bot.groups).toEqual(['agents', 'ci']);
    const run = await runCli(['keys', 'list', '-c', configFile, '--output', 'json']);
    expect(run.code, run.stderr).toBe(0);
    const listed = JSON.parse(run.stdout) as { name: string; groups: string[]; revokedAt: string | null }[];
    expect(listed.map((k) => [k.name, k.groups, k.revokedAt])).toEqual([
      ['ci-bot', ['agents', 'ci'], null],
      ['outsider', ['guests'], null],
    ]);
    expect(run.stdout).not.toContain(bot.key);
    expect(run.stdout).not.toContain(outsider.key);
    const rows = await db.query<{ secret_hash: string }>('select secret_hash from portcullis_api_keys');
    expect(JSON.stringify(rows)).not.toContain(bot.key);
    const again = await runCli(['keys', 'create', '--name', 'ci-bot', '-c', configFile]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists');
  });

  it("serves a key's identity: the rule for its group applies, in both eras; others are denied", async () => {
    const legacy = await agent(gateway.mcpUrl, bot.key, 'legacy');
    expect(text(await call(legacy, 'fx__test_simple_text'))).toContain('simple text');
    const modern = await agent(gateway.mcpUrl, bot.key, 'modern');
    expect(text(await call(modern, 'fx__test_simple_text'))).toContain('simple text');
    const guest = await agent(gateway.mcpUrl, outsider.key);
    const denied = await call(guest, 'fx__test_simple_text');
    expect(denied.isError).toBe(true);
    expect(text(denied)).toBe('not allowed by v1');
    const sessions = await eventually(
      () =>
        db.query<{ identity_subject: string; auth_method: string }>(
          'select identity_subject, auth_method from portcullis_sessions',
        ),
      (rows) => rows.length >= 3,
    );
    expect(sessions.map((s) => `${s.identity_subject}/${s.auth_method}`).sort()).toEqual([
      'ci-bot/api-key',
      'ci-bot/api-key',
      'outsider/api-key',
    ]);
  });

  it('refuses a missing, unknown or malformed key with 401 and WWW-Authenticate: Bearer', async () => {
    for (const authorization of [undefined, `Bearer pcs_${'x'.repeat(43)}`, 'Bearer nonsense', 'Basic Zm9vOmJhcg==']) {
      const response = await rawInitialize(gateway.mcpUrl, authorization);
      expect(response.status, String(authorization)).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="portcullis"/);
      const body = (await response.json()) as { jsonrpc: string; error: { code: number; message: string } };
      expect(body.jsonrpc).toBe('2.0');
      expect(body.error.message).toMatch(/^Unauthorized: /);
    }
    await expect(agent(gateway.mcpUrl, undefined)).rejects.toThrow();
  });

  it('never passes the agent key to the upstream, nor logs it', () => {
    expect(proxy.headers.length).toBeGreaterThan(0);
    const seen = JSON.stringify(proxy.headers);
    expect(seen).not.toContain(bot.key);
    expect(seen).not.toContain(outsider.key);
    expect(seen).not.toContain('pcs_');
    expect(proxy.headers.every((h) => h.authorization === undefined)).toBe(true);
    expect(gateway.proc.stderr()).not.toContain('pcs_');
  });

  it('applies a new version to the running gateway within seconds; a bad file is refused and the old version stays', async () => {
    const client = await agent(gateway.mcpUrl, bot.key);
    expect((await call(client, 'fx__test_simple_text')).isError).toBeFalsy();
    const applied = await runCli(['policy', 'apply', file(V2, 'v2.yaml'), '-c', configFile, '--output', 'json']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout)).toMatchObject({ version: 'v2', active: true });
    const started = Date.now();
    const denied = await eventually(
      () => call(client, 'fx__test_simple_text'),
      (result) => result.isError === true,
    );
    expect(text(denied)).toBe('v2 switched test_simple_text off');
    expect(Date.now() - started).toBeLessThan(5_000);

    const badFile = file(BAD, 'bad.yaml');
    const bad = await runCli(['policy', 'apply', badFile, '-c', configFile]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid policy');
    expect(bad.stderr).toContain(`${badFile}:`);
    expect(bad.stderr).toContain('rules[0].when');
    const versions = JSON.parse(
      (await runCli(['policy', 'versions', '-c', configFile, '--output', 'json'])).stdout,
    ) as {
      version: string;
      active: boolean;
    }[];
    expect(versions.map((v) => `${v.version}${v.active ? '*' : ''}`)).toEqual(['v2*', 'v1']);
    const explained = await runCli([
      'policy',
      'explain',
      '-c',
      configFile,
      '--as',
      'ci-bot',
      '--groups',
      'agents',
      '--tool',
      'fx__test_simple_text',
    ]);
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain('policy version: v2');
    expect(explained.stdout).toContain('decided by: rule "no-simple-text-in-v2"');
    await new Promise((done) => setTimeout(done, 1_500));
    expect(text(await call(client, 'fx__test_simple_text'))).toBe('v2 switched test_simple_text off');
  });

  it('records the deciding policy version with every tool call', async () => {
    const rows = await eventually(
      () =>
        db.query<{ identity_subject: string; decision: string; policy_version: string | null }>(
          'select identity_subject, decision, policy_version from portcullis_tool_calls order by requested_at',
        ),
      (found) => found.some((r) => r.policy_version === 'v2'),
    );
    expect(rows.filter((r) => r.identity_subject === 'ci-bot' && r.decision === 'allow')[0]?.policy_version).toBe('v1');
    expect(rows.filter((r) => r.decision === 'deny').map((r) => r.policy_version)).toContain('v2');
    expect(rows.every((r) => r.policy_version !== null)).toBe(true);
  });

  it('revokes a key: new and ongoing sessions are refused within seconds', async () => {
    const client = await agent(gateway.mcpUrl, outsider.key);
    await client.listTools();
    const revoked = await runCli(['keys', 'revoke', 'outsider', '-c', configFile, '--output', 'json']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ name: 'outsider' });
    const refused = await eventually(
      () =>
        client.listTools().then(
          () => 'served',
          (error: unknown) => String(error),
        ),
      (outcome) => outcome !== 'served',
      6_000,
    );
    expect(refused).toMatch(/401|Unauthorized/);
    const response = await rawInitialize(gateway.mcpUrl, `Bearer ${outsider.key}`);
    expect(response.status).toBe(401);
    const again = await runCli(['keys', 'revoke', 'outsider', '-c', configFile]);
    expect(again.code).toBe(3);
  });

  it('serves agents without a key as anonymous only with auth.anonymous: true', async () => {
    const anonymousConfig = writeConfig({
      ...gatewayConfig({ upstreams: { fx: httpUpstream(proxy.url) }, auth: { anonymous: true } }),
      database: { url: db.url },
      audit: { batch: { intervalMs: 20 }, spoolDir: join(tempDir(), 'spool') },
      policy: { source: 'store' },
    });
    const open = await serve(anonymousConfig);
    const anonymous = await agent(open.mcpUrl, undefined);
    const denied = await call(anonymous, 'fx__test_simple_text');
    expect(text(denied)).toBe('v2 switched test_simple_text off');
    const withKey = await agent(open.mcpUrl, bot.key);
    expect((await call(withKey, 'fx__test_error_handling')).content).toBeDefined();
    expect((await rawInitialize(open.mcpUrl, 'Bearer wrong')).status).toBe(401);
    await open.proc.stop();
  });
});

describe('API keys and stored policy versions on the embedded database (PGlite)', () => {
  let configFile: string;
  let bot: CreatedKey;

  beforeAll(async () => {
    configFile = writeConfig({
      ...gatewayConfig({ upstreams: { fx: stdioFixture('fx') }, auth: { anonymous: false } }),
      database: { dataDir: join(tempDir(), 'data') },
      audit: { batch: { intervalMs: 20 }, spoolDir: join(tempDir(), 'spool') },
      policy: { source: 'store' },
    });
    bot = await createKey(configFile, 'ci-bot', 'agents');
    expect((await runCli(['policy', 'apply', file(V1, 'v1.yaml'), '-c', configFile])).code).toBe(0);
  }, 120_000);

  it('serves the key over Streamable HTTP and SSE; a restarted gateway serves a newly applied version and refuses a revoked key', async () => {
    let gateway = await serve(configFile);
    const client = await agent(gateway.mcpUrl, bot.key);
    expect(text(await call(client, 'fx__test_simple_text'))).toContain('simple text');
    const sse = new V1Client({ name: 'identity-e2e-sse', version: '1.0.0' });
    await sse.connect(
      new SSEClientTransport(new URL(gateway.mcpUrl.replace(/\/mcp$/, '/sse')), {
        requestInit: { headers: { Authorization: `Bearer ${bot.key}` } },
      }),
    );
    onCleanup(() => sse.close());
    const viaSse = (await sse.callTool({ name: 'fx__test_simple_text', arguments: {} })) as ToolResult;
    expect(text(viaSse)).toContain('simple text');
    await expect(
      new V1Client({ name: 'no-key', version: '1' }).connect(
        new SSEClientTransport(new URL(gateway.mcpUrl.replace(/\/mcp$/, '/sse'))),
      ),
    ).rejects.toThrow();
    await client.close();
    await sse.close();
    await gateway.proc.stop();

    // One process per embedded data directory: the CLI works while the gateway is stopped.
    expect((await runCli(['policy', 'apply', file(V2, 'v2.yaml'), '-c', configFile])).stdout.trim()).toBe('v2');
    const bad = await runCli(['policy', 'apply', file(BAD, 'bad.yaml'), '-c', configFile]);
    expect(bad.code).toBe(2);
    const other = await createKey(configFile, 'other-bot', 'agents');
    expect((await runCli(['keys', 'revoke', 'ci-bot', '-c', configFile])).code).toBe(0);

    gateway = await serve(configFile);
    expect((await rawInitialize(gateway.mcpUrl, `Bearer ${bot.key}`)).status).toBe(401);
    const next = await agent(gateway.mcpUrl, other.key, 'modern');
    expect(text(await call(next, 'fx__test_simple_text'))).toBe('v2 switched test_simple_text off');
    await next.close();
    await gateway.proc.stop();

    const listed = JSON.parse((await runCli(['keys', 'list', '-c', configFile, '--output', 'json'])).stdout) as {
      name: string;
      revokedAt: string | null;
      lastUsedAt: string | null;
    }[];
    expect(listed.map((k) => [k.name, k.revokedAt !== null, k.lastUsedAt !== null])).toEqual([
      ['ci-bot', true, true],
      ['other-bot', false, true],
    ]);
  }, 180_000);
});
