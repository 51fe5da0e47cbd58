import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectHttpAgent } from './support/agents.js';
import { stdioFixture } from './support/gateway.js';
import { cleanupAll, eventually, FIXTURE_BIN, tempDir, waitFor, writeConfig } from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

// `portcullis upstream …` and `portcullis apply` driven as an admin would, against running
// `portcullis serve` instances sharing one Postgres store.

let releasePostgres: (() => void) | undefined;
const databases: FreshDatabase[] = [];
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(async () => {
  await cleanupAll();
  for (const db of databases) await db.drop().catch(() => undefined);
  releasePostgres?.();
});
afterEach(cleanupAll);

/** Processes whose command line contains `marker`. */
function processesWith(marker: string): number {
  const out = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes(marker) && !line.includes('ps -eo')).length;
}

async function cliJson<T>(args: string[]): Promise<T> {
  const run = await runCli(args);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as T;
}

/**
 * Waits until the agent lists `tool`, or lists no tool of the upstream `prefix`. A `list_changed`
 * the test awaited may be a late one of the previous change, so the list read right after it can
 * still be the one before this change (whose own notification follows).
 */
function eventuallyHasTool(agent: { allToolNames(): Promise<string[]> }, tool: string): Promise<void> {
  return eventually(async () => (await agent.allToolNames()).includes(tool), `${tool} listed`);
}

function eventuallyNoToolOf(agent: { allToolNames(): Promise<string[]> }, prefix: string): Promise<void> {
  return eventually(
    async () => !(await agent.allToolNames()).some((name) => name.startsWith(prefix)),
    `no ${prefix}* tool listed`,
  );
}

interface Row {
  name: string;
  source: string;
  status: string;
  tools: number | null;
  era: string | null;
  protocolVersion: string | null;
}

describe('portcullis upstream against running gateways', () => {
  it('adds, disables, enables, changes and removes an upstream on two live gateways; secrets are never printed', async () => {
    const db = await freshDatabase();
    databases.push(db);
    const config = sessionLogConfig({ demo: stdioFixture('demo', { isolation: 'shared' }) }, { url: db.url });
    const first = await serve(config);
    const second = await serve(config);
    const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', first.mcpUrl);
    const other = await connectHttpAgent('v1 Streamable HTTP', second.mcpUrl);
    expect((await agent.allToolNames()).some((name) => name.startsWith('extra__'))).toBe(false);

    const secretFile = join(tempDir(), 'secret.txt');
    writeFileSync(secretFile, 'file-secret-value\n');
    const marker = `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const changed = agent.nextToolsChanged();
    const otherChanged = other.nextToolsChanged();
    const add = await runCli([
      'upstream',
      'add',
      'extra',
      '-c',
      config,
      '--stdio',
      `"${process.execPath}" ${FIXTURE_BIN} --name ${marker}`,
      '--isolation',
      'shared',
      '--env',
      'API_TOKEN=s3cr3t-literal',
      '--env',
      `OTHER=file:${secretFile}`,
      '--as',
      'alice',
    ]);
    expect(add.code, add.stderr).toBe(0);
    // Arrives within about a second on both instances.
    await changed;
    await otherChanged;
    // The first list_changed comes with the change, another once the new upstream has connected.
    await eventuallyHasTool(agent, 'extra__test_simple_text');
    await eventuallyHasTool(other, 'extra__test_simple_text');
    const result = await agent.callTool('extra__test_simple_text');
    expect(JSON.stringify(result.content)).toContain('simple text response');
    await waitFor(() => processesWith(marker) === 2, 10_000, 'one child per gateway');

    // list / show: status from the gateways, never a secret value.
    let rows: Row[] = [];
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      rows = await cliJson<Row[]>(['upstream', 'list', '-c', config, '--output', 'json']);
      if (
        rows.find((row) => row.name === 'extra')?.status === 'connected' &&
        (rows.find((r) => r.name === 'extra')?.tools ?? 0) > 0
      )
        break;
      await new Promise((done) => setTimeout(done, 300));
    }
    const extra = rows.find((row) => row.name === 'extra');
    expect(extra).toMatchObject({ source: 'store', status: 'connected' });
    expect(extra?.tools).toBeGreaterThan(0);
    expect(extra?.protocolVersion).toBeTruthy();
    expect(rows.find((row) => row.name === 'demo')).toMatchObject({ source: 'config', status: 'connected' });
    const listText = await runCli(['upstream', 'list', '-c', config]);
    expect(listText.stdout).toMatch(/NAME\s+SOURCE\s+TRANSPORT\s+STATUS/);
    const show = await cliJson<{ tools: string[]; definition: { env: Record<string, string> } }>([
      'upstream',
      'show',
      'extra',
      '-c',
      config,
      '--output',
      'json',
    ]);
    expect(show.tools).toContain('extra__test_simple_text');
    expect(show.definition.env).toEqual({ API_TOKEN: '[redacted]', OTHER: `file:${secretFile}` });
    for (const args of [
      ['upstream', 'list', '-c', config, '--output', 'json'],
      ['upstream', 'list', '-c', config],
      ['upstream', 'show', 'extra', '-c', config],
      ['upstream', 'show', 'extra', '-c', config, '--output', 'json'],
    ]) {
      const out = (await runCli(args)).stdout;
      expect(out).not.toContain('s3cr3t-literal');
      expect(out).not.toContain('file-secret-value');
    }
    // The admin audit names who did it, and holds no secret either.
    const audit = await db.query<{ actor: string; action: string; target: string; details: unknown }>(
      'select actor, action, target, details from portcullis_admin_audit order by occurred_at',
    );
    expect(audit).toContainEqual(expect.objectContaining({ actor: 'alice', action: 'upstream.add', target: 'extra' }));
    expect(JSON.stringify(audit)).not.toContain('s3cr3t-literal');

    // upstream test: connects from the CLI itself.
    const test = await cliJson<{ ok: boolean; steps: { step: string; ms: number }[]; era: string }>([
      'upstream',
      'test',
      'extra',
      '-c',
      config,
      '--output',
      'json',
    ]);
    expect(test.ok).toBe(true);
    expect(test.steps.map((step) => step.step)).toEqual(expect.arrayContaining(['connect', 'tools/list']));

    // disable → tools leave, children gone; enable → back.
    let next = agent.nextToolsChanged();
    expect((await runCli(['upstream', 'disable', 'extra', '-c', config])).code).toBe(0);
    await next;
    await waitFor(() => processesWith(marker) === 0, 10_000, 'children of the disabled upstream gone');
    await eventuallyNoToolOf(agent, 'extra__');
    const disabled = await cliJson<Row[]>(['upstream', 'list', '-c', config, '--output', 'json']);
    expect(disabled.find((row) => row.name === 'extra')?.status).toBe('disabled');
    next = agent.nextToolsChanged();
    expect((await runCli(['upstream', 'enable', 'extra', '-c', config])).code).toBe(0);
    await next;
    await waitFor(() => processesWith(marker) === 2, 10_000, 'children back');
    await eventuallyHasTool(agent, 'extra__test_simple_text');

    // set (new args) → reconnects with the new command line.
    const marker2 = `${marker}x`;
    next = agent.nextToolsChanged();
    const set = await runCli([
      'upstream',
      'set',
      'extra',
      '-c',
      config,
      '--stdio',
      `${process.execPath} ${FIXTURE_BIN} --name ${marker2}`,
    ]);
    expect(set.code, set.stderr).toBe(0);
    await next;
    await waitFor(() => processesWith(marker2) === 2, 10_000, 'reconnected with the new args');
    await eventuallyHasTool(agent, 'extra__test_simple_text');
    expect(processesWith(`--name ${marker} `) + processesWith(`--name ${marker}\n`)).toBe(0);

    // remove → its children are gone and its tools leave the list.
    next = agent.nextToolsChanged();
    expect((await runCli(['upstream', 'remove', 'extra', '-c', config])).code).toBe(0);
    await next;
    await waitFor(() => processesWith(marker2) === 0, 10_000, 'children of the removed upstream gone');
    await eventuallyNoToolOf(agent, 'extra__');
    expect(await agent.allToolNames()).toContain('demo__test_simple_text');

    // Unknown names: a clear error and exit 3.
    for (const verb of ['show', 'remove', 'disable', 'test']) {
      const run = await runCli(['upstream', verb, 'nope', '-c', config]);
      expect(run.code).toBe(3);
      expect(run.stderr).toContain('no upstream named "nope"');
    }
    const dup = await runCli(['upstream', 'add', 'demo', '-c', config, '--stdio', 'node x.js']);
    expect(dup.code).toBe(2);
    await agent.close();
    await other.close();
  }, 120_000);

  it('apply --dry-run shows the diff and changes nothing; apply reconciles', async () => {
    const db = await freshDatabase();
    databases.push(db);
    const config = sessionLogConfig({ demo: stdioFixture('demo', { isolation: 'shared' }) }, { url: db.url });
    const gateway = await serve(config);
    const agent = await connectHttpAgent('v2 Streamable HTTP (2026 era)', gateway.mcpUrl);
    const desired = writeConfig(
      {
        database: { url: db.url },
        upstreams: {
          demo: stdioFixture('demo', { isolation: 'shared', requestTimeoutMs: 30_000 }),
          second: stdioFixture('second', { isolation: 'shared', env: { TOKEN: 'literal-secret' } }),
        },
      },
      'desired.yaml',
    );
    const dry = await runCli(['apply', '-f', desired, '-c', config, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('+ second');
    expect(dry.stdout).toContain('~ demo (requestTimeoutMs)');
    expect(dry.stdout).not.toContain('literal-secret');
    const dryJson = await cliJson<{ added: string[]; applied: boolean }>([
      'apply',
      '-f',
      desired,
      '-c',
      config,
      '--dry-run',
      '--output',
      'json',
    ]);
    expect(dryJson).toMatchObject({ added: ['second'], applied: false });
    expect(await db.query('select name from portcullis_managed_upstreams')).toEqual([]);
    // Not on a terminal without --yes: refused.
    expect((await runCli(['apply', '-f', desired, '-c', config])).code).toBe(2);

    const next = agent.nextToolsChanged();
    const applied = await runCli(['apply', '-f', desired, '-c', config, '--yes']);
    expect(applied.code, applied.stderr).toBe(0);
    await next;
    await waitFor(() => true);
    const deadline = Date.now() + 10_000;
    let names: string[] = [];
    while (Date.now() < deadline) {
      names = await agent.allToolNames();
      if (names.includes('second__test_simple_text')) break;
      await new Promise((done) => setTimeout(done, 200));
    }
    expect(names).toContain('second__test_simple_text');
    const again = await cliJson<{ added: string[]; changed: unknown[]; removed: string[] }>([
      'apply',
      '-f',
      desired,
      '-c',
      config,
      '--dry-run',
      '--output',
      'json',
    ]);
    expect(again).toMatchObject({ added: [], changed: [], removed: [] });

    // Removing from the file removes from the gateway.
    const smaller = writeConfig(
      { database: { url: db.url }, upstreams: { second: stdioFixture('second') } },
      'smaller.yaml',
    );
    const removal = await cliJson<{ removed: string[]; applied: boolean }>([
      'apply',
      '-f',
      smaller,
      '-c',
      config,
      '--yes',
      '--output',
      'json',
    ]);
    expect(removal).toMatchObject({ removed: ['demo'], applied: true });
    await waitFor(() => true);
    const rows = await cliJson<Row[]>(['upstream', 'list', '-c', config, '--output', 'json']);
    expect(rows.map((row) => row.name)).toEqual(['second']);
    await agent.close();
  }, 120_000);
});
