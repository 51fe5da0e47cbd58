import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectV2Client, type V2Handle } from './support/clients.js';
import { stdioFixture } from './support/gateway.js';
import { cleanupAll, tempDir } from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  type ServedGateway,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

/**
 * The admin API of a running `portcullis serve` (`/admin/v1/…`), end to end: reviewers decide a
 * held call through `portcullis approvals … --gateway URL --key KEY` in another process, and the
 * API key — not a self-asserted `--as` — is who decides. Real Postgres, real SDK agent.
 */

interface ToolResult {
  readonly structuredContent?: Record<string, unknown>;
  readonly isError?: boolean;
}

interface CreatedKey {
  readonly name: string;
  readonly key: string;
}

let db: FreshDatabase;
let releasePostgres: () => void;
let configFile: string;
let gateway: ServedGateway;
let base: string;
let agent: V2Handle;
let agentKey: CreatedKey;
let bob: CreatedKey;
let mallory: CreatedKey;

async function createKey(name: string, groups: string): Promise<CreatedKey> {
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

async function approvalFor(marker: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await db.query<{ id: string }>(
      `select id from portcullis_approvals where arguments->>'m' = $1 and status = 'pending'`,
      [marker],
    );
    if (rows[0] !== undefined) return rows[0].id;
    if (Date.now() > deadline) throw new Error(`no pending approval for ${marker}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const viaGateway = (key: string, ...args: string[]) => runCli(['approvals', ...args, '--gateway', base, '--key', key]);

async function api(
  method: string,
  path: string,
  key: string | undefined,
  body?: unknown,
): Promise<{ status: number; json: { error?: { reason: string; message: string } } & Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}/admin/v1/${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as never };
}

beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
  db = await freshDatabase();
  const policy = join(tempDir(), 'policy.yaml');
  writeFileSync(
    policy,
    `
version: 1
default: { action: allow }
rules:
  - name: hold-echo
    match: { tool: fixture_echo }
    action: approve
    approve: { reviewers: { groups: [sre] }, timeout: 2m }
`,
  );
  // Anonymous MCP access is on: the admin API must refuse anonymous callers all the same.
  configFile = sessionLogConfig(
    { fx: stdioFixture('fx') },
    { url: db.url },
    {},
    { policy: { file: policy }, approval: { heartbeatMs: 150, pollMs: 100 } },
  );
  agentKey = await createKey('agent-bot', 'agents,sre');
  bob = await createKey('bob', 'sre');
  mallory = await createKey('mallory', 'dev');
  gateway = await serve(configFile);
  base = gateway.mcpUrl.replace(/\/mcp$/, '');
  agent = await connectV2Client(
    new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${agentKey.key}` } },
    }),
    'legacy',
  );
}, 60_000);

afterAll(async () => {
  await cleanupAll();
  await db?.drop();
  releasePostgres?.();
});

describe('admin API: approvals decided by an authenticated reviewer', () => {
  it('refuses callers without a valid API key (401), even with anonymous MCP access on', async () => {
    const none = await api('GET', 'approvals', undefined);
    expect(none.status).toBe(401);
    expect(none.json.error?.reason).toBe('auth.required');
    const bad = await api('GET', 'approvals', `pcs_${'x'.repeat(43)}`);
    expect(bad.status).toBe(401);
    expect(bad.json.error?.reason).toBe('auth.invalid');
    const post = await api('POST', 'approvals/apr_nope/approve', undefined, {});
    expect(post.status).toBe(401);
    const cli = await viaGateway(`pcs_${'y'.repeat(43)}`, 'list');
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('the gateway refused the API key (401)');
    expect(cli.stderr).not.toContain('pcs_');
    const noKey = await runCli(['approvals', 'list', '--gateway', base]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--gateway needs an API key');
  });

  it('a key of the named group releases the held call and is recorded as the reviewer; others are refused', async () => {
    const pending = agent.client.callTool(
      { name: 'fx__fixture_echo', arguments: { m: 'held-1' } },
      {
        timeout: 60_000,
      },
    ) as Promise<ToolResult>;
    const id = await approvalFor('held-1');

    const listed = await viaGateway(bob.key, 'list', '--output', 'json');
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as Array<{ id: string; status: string; subject: string }>;
    expect(rows.find((r) => r.id === id)).toMatchObject({ status: 'pending', subject: 'agent-bot' });
    const shown = await viaGateway(bob.key, 'show', id);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('arguments: {"m":"held-1"}');

    const stranger = await viaGateway(mallory.key, 'approve', id);
    expect(stranger.code).toBe(4);
    expect(stranger.stderr).toContain('mallory is not a reviewer');
    const strangerApi = await api('POST', `approvals/${id}/approve`, mallory.key, {});
    expect(strangerApi).toMatchObject({ status: 403, json: { error: { reason: 'approval.not_reviewer' } } });
    // A key that may not decide it does not see it either: another agent's arguments stay private.
    const strangerList = await api('GET', 'approvals?status=all', mallory.key);
    expect(strangerList.status).toBe(200);
    expect(JSON.stringify(strangerList.json)).not.toContain(id);
    const strangerShow = await api('GET', `approvals/${id}`, mallory.key);
    expect(strangerShow).toMatchObject({ status: 404, json: { error: { reason: 'approval.not_found' } } });

    const self = await viaGateway(agentKey.key, 'approve', id);
    expect(self.code).toBe(4);
    expect(self.stderr).toContain('cannot decide its own approval');

    const asserted = await viaGateway(bob.key, 'approve', id, '--as', 'carol', '--groups', 'sre');
    expect(asserted.code).toBe(2);
    expect(asserted.stderr).toContain('the API key decides who you are');

    const noReason = await api('POST', `approvals/${id}/deny`, bob.key, {});
    expect(noReason).toMatchObject({ status: 400, json: { error: { reason: 'body.invalid' } } });

    const approved = await viaGateway(bob.key, 'approve', id, '--note', 'looks fine');
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout.trim()).toBe(`approval ${id}: approved by bob`);
    const result = await pending;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ m: 'held-1' });

    const votes = await db.query<{ reviewer: string; reviewer_groups: unknown; note: string }>(
      'select reviewer, reviewer_groups, note from portcullis_approval_votes where approval_id = $1',
      [id],
    );
    expect(votes).toHaveLength(1);
    expect(votes[0]).toMatchObject({ reviewer: 'bob', note: 'looks fine' });
    const decided = await db.query<{ decided_by: string }>(
      'select decided_by from portcullis_approvals where id = $1',
      [id],
    );
    expect(decided[0]?.decided_by).toBe('bob');

    const again = await api('POST', `approvals/${id}/approve`, bob.key, {});
    expect(again.status).toBe(409);
    expect(again.json.error?.reason).toBe('approval.decided');
    const againCli = await viaGateway(bob.key, 'deny', id, '--reason', 'too late');
    expect(againCli.code).toBe(3);
    const unknown = await api('GET', 'approvals/apr_nope', bob.key);
    expect(unknown).toMatchObject({ status: 404, json: { error: { reason: 'approval.not_found' } } });
    const unknownCli = await viaGateway(bob.key, 'approve', 'apr_nope');
    expect(unknownCli.code).toBe(3);
    expect(unknownCli.stderr).toContain('no approval apr_nope');

    for (const { key } of [agentKey, bob, mallory]) {
      expect(gateway.proc.stderr()).not.toContain(key);
    }
  }, 60_000);

  it('denies through the API with the reviewer’s reason (gateway and key from the environment)', async () => {
    const pending = agent.client.callTool(
      { name: 'fx__fixture_echo', arguments: { m: 'held-2' } },
      {
        timeout: 60_000,
      },
    ) as Promise<ToolResult>;
    const id = await approvalFor('held-2');
    process.env.PORTCULLIS_GATEWAY_URL = gateway.mcpUrl;
    process.env.PORTCULLIS_API_KEY = bob.key;
    let denied: Awaited<ReturnType<typeof runCli>>;
    try {
      denied = await runCli(['approvals', 'deny', id, '--reason', 'not today', '--output', 'json']);
    } finally {
      delete process.env.PORTCULLIS_GATEWAY_URL;
      delete process.env.PORTCULLIS_API_KEY;
    }
    expect(denied.code, denied.stderr).toBe(0);
    expect(JSON.parse(denied.stdout)).toMatchObject({ id, status: 'denied', decidedBy: 'bob', reason: 'not today' });
    const result = await pending;
    expect(result.isError).toBe(true);
  }, 60_000);
});
