import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectV2Client, type V2Handle, v2Http } from './support/clients.js';
import { stdioFixture } from './support/gateway.js';
import { cleanupAll, tempDir, waitFor } from './support/processes.js';
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
 * Approval holds end to end: real SDK agents through real `portcullis serve` processes on one real
 * Postgres, reviewers deciding through the `portcullis approvals` CLI in another process.
 */

interface ToolResult {
  readonly content?: readonly { type: string; text?: string }[];
  readonly structuredContent?: Record<string, unknown>;
  readonly isError?: boolean;
}

const text = (result: ToolResult): string => result.content?.[0]?.text ?? '';

let db: FreshDatabase;
let releasePostgres: () => void;
let webhook: Server;
const hooks: Array<{ text: string; event: string; approval: string }> = [];
let configFile: string;
let gateway: ServedGateway;
let agent: V2Handle;

function policy(webhookUrl: string): string {
  const file = join(tempDir(), 'policy.yaml');
  writeFileSync(
    file,
    `
version: 1
default: { action: allow }
rules:
  - name: expire-fast
    match: { tool: fixture_echo }
    when: has(args.expire)
    action: approve
    approve: { reviewers: { groups: [sre] }, timeout: 1500ms }
  - name: retry-echo
    match: { tool: fixture_echo }
    when: has(args.retry)
    action: approve
    approve: { reviewers: { groups: [sre] }, mode: retry, timeout: 2m }
  - name: hold-echo
    match: { tool: fixture_echo }
    action: approve
    approve:
      reviewers: { groups: [sre], subjects: [carol] }
      timeout: 2m
      webhook: ${webhookUrl}
`,
  );
  return file;
}

async function call(handle: V2Handle, args: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return (await handle.client.callTool({ name: 'fx__fixture_echo', arguments: args }, extra)) as ToolResult;
}

async function approvalFor(marker: string, status = 'pending'): Promise<string> {
  let id: string | undefined;
  const deadline = Date.now() + 15_000;
  while (id === undefined) {
    const rows = await db.query<{ id: string }>(
      `select id from portcullis_approvals where arguments->>'m' = $1 and status = $2 order by requested_at desc`,
      [marker, status],
    );
    id = rows[0]?.id;
    if (id === undefined) {
      if (Date.now() > deadline) throw new Error(`no ${status} approval for ${marker}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return id;
}

async function statusOf(id: string): Promise<string> {
  const rows = await db.query<{ status: string }>('select status from portcullis_approvals where id = $1', [id]);
  return rows[0]?.status ?? 'missing';
}

async function approvalEvents(id: string): Promise<string[]> {
  const rows = await db.query<{ method: string }>(
    `select method from portcullis_events where kind = 'approval' and payload->>'approval' = $1 order by occurred_at, seq`,
    [id],
  );
  return rows.map((r) => r.method);
}

const cli = (...args: string[]) => runCli(['approvals', ...args, '-c', configFile]);

beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
  db = await freshDatabase();
  webhook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      hooks.push(JSON.parse(body) as { text: string; event: string; approval: string });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  const port = (webhook.address() as AddressInfo).port;
  configFile = sessionLogConfig(
    { fx: stdioFixture('fx') },
    { url: db.url },
    {},
    { policy: { file: policy(`http://127.0.0.1:${port}/hook`) }, approval: { heartbeatMs: 150, pollMs: 100 } },
  );
  gateway = await serve(configFile);
  agent = await connectV2Client(v2Http(gateway.mcpUrl), 'legacy');
}, 60_000);

afterAll(async () => {
  await cleanupAll();
  await new Promise((resolve) => webhook?.close(resolve));
  await db?.drop();
  releasePostgres?.();
});

describe('approval holds', () => {
  it('holds a call (heartbeats) until a reviewer approves it from the CLI, then forwards exactly it', async () => {
    const progress: string[] = [];
    const pending = call(
      agent,
      { m: 'approved-1' },
      {
        onprogress: (p: { message?: string }) => progress.push(p.message ?? ''),
        timeout: 60_000,
        resetTimeoutOnProgress: true,
      },
    );
    const id = await approvalFor('approved-1');
    await waitFor(() => progress.length > 0, 10_000, 'a heartbeat');
    expect(progress[0]).toBe(`waiting for approval ${id} by group sre or subject carol`);
    const listed = await cli('list', '--output', 'json');
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((r) => r.id)).toContain(id);
    const shown = await cli('show', id);
    expect(shown.stdout).toContain('arguments: {"m":"approved-1"}');
    const approved = await cli('approve', id, '--as', 'bob', '--groups', 'sre', '--note', 'fine');
    expect(approved).toMatchObject({ code: 0 });
    const result = await pending;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ m: 'approved-1' });
    expect(await statusOf(id)).toBe('consumed');
    await waitFor(() => hooks.filter((h) => h.approval === id).length >= 2, 5_000, 'webhooks');
    expect(hooks.find((h) => h.approval === id && h.event === 'requested')?.text).toContain(`Approval ${id} requested`);
    expect(hooks.find((h) => h.approval === id && h.event === 'approved')?.text).toContain('approved by bob');
    await new Promise((r) => setTimeout(r, 200));
    expect(await approvalEvents(id)).toEqual(['approval/requested', 'approval/approved', 'approval/consumed']);
    const again = await cli('approve', id, '--as', 'dave', '--groups', 'sre');
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('already decided');
  });

  it('answers a denial as a tool error carrying the reviewer’s reason', async () => {
    const pending = call(agent, { m: 'denied-1' });
    const id = await approvalFor('denied-1');
    const denied = await cli('deny', id, '--as', 'bob', '--groups', 'sre', '--reason', 'not during the freeze');
    expect(denied.code).toBe(0);
    const result = await pending;
    expect(result.isError).toBe(true);
    expect(text(result)).toBe(`denied: approval ${id} was denied by bob: not during the freeze`);
    const unknown = await cli('deny', 'apr_nope', '--as', 'bob', '--groups', 'sre', '--reason', 'x');
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no approval apr_nope');
  });

  it('refuses self-approval and reviewers the rule does not name (exit 4); a named subject may decide', async () => {
    const pending = call(agent, { m: 'self-1' });
    const id = await approvalFor('self-1');
    const self = await cli('approve', id, '--as', 'anonymous', '--groups', 'sre');
    expect(self.code).toBe(4);
    expect(self.stderr).toContain('cannot decide its own approval');
    const stranger = await cli('approve', id, '--as', 'mallory', '--groups', 'dev');
    expect(stranger.code).toBe(4);
    expect(stranger.stderr).toContain('is not a reviewer');
    expect((await cli('approve', id, '--as', 'carol')).code).toBe(0);
    expect((await pending).structuredContent).toEqual({ m: 'self-1' });
  });

  it('denies a call whose approval expired, and the expired approval cannot be decided', async () => {
    const result = await call(agent, { m: 'expire-1', expire: true });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^denied: approval apr_[0-9a-f]+ expired after 1500ms$/);
    const id = await approvalFor('expire-1', 'expired');
    const late = await cli('approve', id, '--as', 'bob', '--groups', 'sre');
    expect(late.code).toBe(3);
    expect(late.stderr).toContain('expired');
  });

  it('withdraws the approval when the agent cancels its request', async () => {
    const controller = new AbortController();
    const pending = call(agent, { m: 'cancel-1' }, { signal: controller.signal }).catch((error: unknown) => error);
    const id = await approvalFor('cancel-1');
    controller.abort(new Error('the agent gives up'));
    await pending;
    const deadline = Date.now() + 10_000;
    while ((await statusOf(id)) !== 'withdrawn' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await statusOf(id)).toBe('withdrawn');
    await new Promise((r) => setTimeout(r, 200));
    expect(await approvalEvents(id)).toEqual(['approval/requested', 'approval/withdrawn']);
  });

  it('retry mode: answers at once; the identical call goes through once approved, consumed exactly once', async () => {
    const first = await call(agent, { m: 'retry-1', retry: true });
    expect(first.isError).toBe(true);
    const id = await approvalFor('retry-1');
    expect(text(first)).toContain(`approval ${id} required`);
    expect(text(first)).toContain('identical call');
    const early = await call(agent, { m: 'retry-1', retry: true });
    expect(text(early)).toContain(`approval ${id} is still pending`);
    const other = await call(agent, { m: 'retry-1', retry: 'different' });
    expect(text(other)).not.toContain(id);
    expect((await cli('approve', id, '--as', 'bob', '--groups', 'sre')).code).toBe(0);
    const [a, b] = await Promise.all([
      call(agent, { m: 'retry-1', retry: true }),
      call(agent, { m: 'retry-1', retry: true }),
    ]);
    const through = [a, b].filter((r) => !r.isError);
    expect(through).toHaveLength(1);
    expect(through[0]?.structuredContent).toEqual({ m: 'retry-1', retry: true });
    expect(await statusOf(id)).toBe('consumed');
  });

  it('keeps a pending approval across a gateway restart; the identical retry goes through once approved', async () => {
    const controller = new AbortController();
    void call(agent, { m: 'restart-1' }, { signal: controller.signal }).catch(() => undefined);
    const id = await approvalFor('restart-1');
    await gateway.proc.stop();
    controller.abort();
    expect(await statusOf(id)).toBe('pending');
    expect((await cli('approve', id, '--as', 'bob', '--groups', 'sre')).code).toBe(0);
    gateway = await serve(configFile);
    agent = await connectV2Client(v2Http(gateway.mcpUrl), 'legacy');
    const result = await call(agent, { m: 'restart-1' });
    expect(result.structuredContent).toEqual({ m: 'restart-1' });
    expect(await statusOf(id)).toBe('consumed');
  }, 60_000);

  it('releases a call held by one gateway process when the CLI approves it (two gateways, one Postgres)', async () => {
    const second = await serve(configFile);
    const other = await connectV2Client(v2Http(second.mcpUrl), 'legacy');
    const started = Date.now();
    const pending = call(other, { m: 'two-1' });
    const id = await approvalFor('two-1');
    const before = Date.now();
    expect((await cli('approve', id, '--as', 'bob', '--groups', 'sre')).code).toBe(0);
    const approvedAt = Date.now();
    const result = await pending;
    expect(result.structuredContent).toEqual({ m: 'two-1' });
    // Released through NOTIFY, well before the Postgres polling fallback (5 × pollMs) would matter.
    expect(Date.now() - approvedAt).toBeLessThan(2_000);
    expect(before).toBeGreaterThanOrEqual(started);
    await second.proc.stop();
  }, 60_000);
});
