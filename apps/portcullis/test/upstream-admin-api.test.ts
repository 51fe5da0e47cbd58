import { join } from 'node:path';
import { createApiKey, openStore } from '@portcullis/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, connectHttpAgent } from './support/agents.js';
import { gatewayConfig, stdioFixture } from './support/gateway.js';
import { cleanupAll, eventually, FIXTURE_BIN, tempDir, writeConfig } from './support/processes.js';
import { type CliRun, runCli, type ServedGateway, serve } from './support/session-log.js';

/**
 * `portcullis upstream … --gateway URL` and `apply --gateway URL` against a running `portcullis
 * serve` on the EMBEDDED database (PGlite: the gateway holds the data directory, so the CLI could
 * not open the store): the admin API makes the change inside the gateway, the API key is the actor,
 * and agents see it within about a second. Real processes, real SDK agent, real fixture upstreams.
 */

interface Row {
  readonly name: string;
  readonly source: string;
  readonly status: string;
  readonly tools: number | null;
}

interface AuditRow {
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly details: Record<string, unknown>;
}

let dir: string;
let configFile: string;
let gateway: ServedGateway;
let base: string;
let agent: Agent;
const keys: Record<'root' | 'bob' | 'opsy', string> = { root: '', bob: '', opsy: '' };
/** `apply --dry-run` through the gateway, compared with the same on the store once it stops. */
let dryRunViaGateway = '';
let desiredFile = '';

async function createKey(name: string, ...flags: string[]): Promise<string> {
  const run = await runCli(['keys', 'create', '--name', name, ...flags, '-c', configFile, '--output', 'json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { key: string }).key;
}

const viaGateway = (key: string, ...args: string[]): Promise<CliRun> =>
  runCli([...args, '--gateway', base, '--key', key]);

async function jsonVia<T>(key: string, ...args: string[]): Promise<T> {
  const run = await viaGateway(key, ...args, '--output', 'json');
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as T;
}

const hasExtraTools = async (): Promise<boolean> =>
  (await agent.allToolNames()).some((name) => name.startsWith('extra__'));

beforeAll(async () => {
  dir = tempDir();
  configFile = writeConfig({
    ...gatewayConfig({
      upstreams: { demo: stdioFixture('demo', { isolation: 'shared' }) },
      // Agents are anonymous here; the admin API never is.
      auth: { anonymous: true, adminGroups: ['ops'] },
    }),
    database: { dataDir: join(dir, 'data') },
  });
  keys.root = await createKey('root', '--admin');
  // The other keys in one open of the store (each CLI run opens the embedded database anew).
  const store = await openStore({ dataDir: join(dir, 'data'), replaySpool: false });
  try {
    keys.bob = (await createApiKey(store, { name: 'bob', groups: ['dev'] })).secret;
    keys.opsy = (await createApiKey(store, { name: 'opsy', groups: ['ops'] })).secret;
  } finally {
    await store.close();
  }
  gateway = await serve(configFile);
  base = gateway.mcpUrl.replace(/\/mcp$/, '');
  agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
}, 60_000);

afterAll(cleanupAll);

describe('upstream management through the admin API of an embedded-store gateway', () => {
  it('an admin key adds an upstream; the open agent session gets list_changed and its tools within seconds', async () => {
    expect(await hasExtraTools()).toBe(false);
    const changed = agent.nextToolsChanged();
    const started = Date.now();
    const add = await viaGateway(
      keys.root,
      'upstream',
      'add',
      'extra',
      '--stdio',
      `"${process.execPath}" ${FIXTURE_BIN} --name extra`,
      '--isolation',
      'shared',
      '--env',
      'API_TOKEN=s3cr3t-literal',
      '--env',
      'DROP_ME=1',
    );
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('upstream extra added');
    await changed;
    await eventually(hasExtraTools, 'the new tools');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(JSON.stringify((await agent.callTool('extra__test_simple_text')).content)).toContain('simple text response');

    // The list carries this gateway's live status; show never prints a secret.
    await eventually(async () => {
      const rows = await jsonVia<Row[]>(keys.root, 'upstream', 'list');
      return rows.some((row) => row.name === 'extra' && row.status === 'connected' && (row.tools ?? 0) > 0);
    }, 'extra connected in upstream list');
    const [rows, text, show] = await Promise.all([
      jsonVia<Row[]>(keys.root, 'upstream', 'list'),
      viaGateway(keys.root, 'upstream', 'list'),
      jsonVia<{ tools: string[]; definition: { env: Record<string, string> } }>(keys.root, 'upstream', 'show', 'extra'),
    ]);
    expect(rows.map((row) => [row.name, row.source])).toEqual([
      ['demo', 'config'],
      ['extra', 'store'],
    ]);
    expect(text.stdout).toMatch(/NAME\s+SOURCE\s+TRANSPORT\s+STATUS/);
    expect(text.stdout).toMatch(/extra\s+store\s+stdio\s+connected/);
    expect(show.tools).toContain('extra__test_simple_text');
    expect(show.definition.env).toEqual({ API_TOKEN: '[redacted]', DROP_ME: '[redacted]' });

    // set --unset-env through the gateway: the entry goes, the redacted one keeps its stored value.
    const [unset, missing, test] = await Promise.all([
      viaGateway(keys.root, 'upstream', 'set', 'extra', '--unset-env', 'DROP_ME'),
      viaGateway(keys.root, 'upstream', 'set', 'extra', '--unset-env', 'NOPE'),
      // upstream test runs in the gateway.
      jsonVia<{ ok: boolean; steps: { step: string }[] }>(keys.root, 'upstream', 'test', 'extra'),
    ]);
    expect(unset.code, unset.stderr).toBe(0);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--unset-env NOPE');
    const after = await jsonVia<{ definition: { env: Record<string, string> } }>(
      keys.root,
      'upstream',
      'show',
      'extra',
    );
    expect(after.definition.env).toEqual({ API_TOKEN: '[redacted]' });
    expect(test.ok).toBe(true);
    expect(test.steps.map((step) => step.step)).toEqual(expect.arrayContaining(['connect', 'tools/list']));
  }, 30_000);

  it('refuses a key that is no admin (exit 4), --as with --gateway (exit 2), unknown names (exit 3)', async () => {
    const [refused, listRefused, as, bogus, show, remove, dup] = await Promise.all([
      viaGateway(keys.bob, 'upstream', 'add', 'other', '--url', 'http://127.0.0.1:9/mcp'),
      viaGateway(keys.bob, 'upstream', 'list'),
      viaGateway(keys.root, 'upstream', 'disable', 'extra', '--as', 'mallory'),
      viaGateway(`pcs_${'x'.repeat(43)}`, 'upstream', 'list'),
      viaGateway(keys.root, 'upstream', 'show', 'nope'),
      viaGateway(keys.root, 'upstream', 'remove', 'nope'),
      viaGateway(keys.root, 'upstream', 'add', 'demo', '--stdio', 'node x.js'),
    ]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('the API key "bob" is no admin');
    expect(listRefused.code).toBe(4);
    expect(as.code).toBe(2);
    expect(as.stderr).toContain('--as cannot be used with --gateway');
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('refused the API key');
    for (const run of [show, remove]) {
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toContain('no upstream named "nope"');
    }
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('exists already');

    const raw = await fetch(`${base}/admin/v1/upstreams`, { headers: { authorization: `Bearer ${keys.bob}` } });
    expect(raw.status).toBe(403);
    expect(((await raw.json()) as { error: { reason: string } }).error.reason).toBe('admin.required');
    expect((await fetch(`${base}/admin/v1/upstreams`)).status).toBe(401);
  }, 30_000);

  it('a key in auth.adminGroups is an admin: it disables the upstream; removing it takes its tools away', async () => {
    let next = agent.nextToolsChanged();
    const disable = await viaGateway(keys.opsy, 'upstream', 'disable', 'extra');
    expect(disable.code, disable.stderr).toBe(0);
    await next;
    await eventually(async () => !(await hasExtraTools()), 'the disabled tools gone');
    const rows = await jsonVia<Row[]>(keys.opsy, 'upstream', 'list');
    expect(rows.find((row) => row.name === 'extra')?.status).toBe('disabled');

    next = agent.nextToolsChanged();
    expect((await viaGateway(keys.opsy, 'upstream', 'enable', 'extra')).code).toBe(0);
    await next;
    await eventually(hasExtraTools, 'the tools back');

    next = agent.nextToolsChanged();
    const remove = await viaGateway(keys.root, 'upstream', 'remove', 'extra');
    expect(remove.code, remove.stderr).toBe(0);
    await next;
    await eventually(async () => !(await hasExtraTools()), 'the removed tools gone');
    expect(await agent.allToolNames()).toContain('demo__test_simple_text');
    const left = await jsonVia<Row[]>(keys.root, 'upstream', 'list');
    expect(left.map((row) => row.name)).toEqual(['demo']);
  }, 30_000);

  it('apply --dry-run --gateway shows the diff and changes nothing; apply --yes applies', async () => {
    const desired = writeConfig(
      {
        upstreams: {
          demo: stdioFixture('demo', { isolation: 'shared', requestTimeoutMs: 30_000 }),
          second: stdioFixture('second', { isolation: 'shared', env: { TOKEN: 'literal-secret', DROP_ME: '1' } }),
        },
      },
      'desired.yaml',
    );
    desiredFile = desired;
    const dry = await viaGateway(keys.root, 'apply', '-f', desired, '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe('+ second\n~ demo (requestTimeoutMs)\n1 to add, 1 to change, 0 to remove, 0 unchanged\n');
    const dryJson = await jsonVia<{ added: string[]; applied: boolean; dryRun: boolean }>(
      keys.root,
      'apply',
      '-f',
      desired,
      '--dry-run',
    );
    expect(dryJson).toMatchObject({ added: ['second'], applied: false, dryRun: true });
    expect((await jsonVia<Row[]>(keys.root, 'upstream', 'list')).map((row) => row.name)).toEqual(['demo']);
    expect((await viaGateway(keys.bob, 'apply', '-f', desired, '--dry-run')).code).toBe(4);
    // Not on a terminal without --yes: refused, nothing changed.
    expect((await viaGateway(keys.root, 'apply', '-f', desired)).code).toBe(2);

    const next = agent.nextToolsChanged();
    const applied = await viaGateway(keys.root, 'apply', '-f', desired, '--yes');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('applied;');
    expect(applied.stdout).not.toContain('literal-secret');
    await next;
    await eventually(
      async () => (await agent.allToolNames()).includes('second__test_simple_text'),
      'the applied upstream',
    );
    const again = await jsonVia<{ added: string[]; changed: unknown[]; removed: string[] }>(
      keys.root,
      'apply',
      '-f',
      desired,
      '--dry-run',
    );
    expect(again).toMatchObject({ added: [], changed: [], removed: [] });

    // --unset-env on a definition whose other literal the gateway only shows redacted.
    const unset = await viaGateway(keys.root, 'upstream', 'set', 'second', '--unset-env', 'DROP_ME');
    expect(unset.code, unset.stderr).toBe(0);
    const drift = await viaGateway(keys.root, 'apply', '-f', desired, '--dry-run');
    expect(drift.stdout).toBe('~ second (env)\n0 to add, 1 to change, 0 to remove, 1 unchanged\n');
    dryRunViaGateway = drift.stdout;
  }, 30_000);

  it('the admin audit names each key as the actor, via the admin API; the store kept the redacted value', async () => {
    await agent.close();
    await gateway.proc.stop();
    const store = await openStore({ dataDir: join(dir, 'data'), migrate: false, replaySpool: false });
    let audit: AuditRow[];
    let definitions: Record<string, unknown>;
    try {
      audit = (await store.db
        .selectFrom('portcullis_admin_audit')
        .select(['actor', 'action', 'target', 'details'])
        .orderBy('occurred_at')
        .execute()) as AuditRow[];
      const rows = await store.db.selectFrom('portcullis_managed_upstreams').select(['name', 'definition']).execute();
      definitions = Object.fromEntries(rows.map((row) => [row.name, row.definition]));
    } finally {
      await store.close();
    }
    const upstreamRows = audit.filter((row) => row.action.startsWith('upstream.'));
    // One apply writes its changes at one instant: compare without order.
    expect(upstreamRows).toHaveLength(8);
    expect(upstreamRows.map((row) => [row.actor, row.action, row.target])).toEqual(
      expect.arrayContaining([
        ['root', 'upstream.add', 'extra'],
        ['root', 'upstream.set', 'extra'],
        ['opsy', 'upstream.disable', 'extra'],
        ['opsy', 'upstream.enable', 'extra'],
        ['root', 'upstream.remove', 'extra'],
        ['root', 'upstream.apply.add', 'second'],
        ['root', 'upstream.apply.set', 'demo'],
        ['root', 'upstream.set', 'second'],
      ]),
    );
    for (const row of upstreamRows) expect(row.details.via).toBe('admin-api');
    expect(JSON.stringify(audit)).not.toContain('s3cr3t-literal');
    expect(JSON.stringify(audit)).not.toContain('literal-secret');
    // `[redacted]` in the edited definition kept the stored literal; the removed upstream is a tombstone.
    expect(definitions.second).toMatchObject({ env: { TOKEN: 'literal-secret' } });
    expect(definitions.extra).toEqual({});

    // The same command directly on the store, now that the gateway has let it go, prints the same.
    const local = await runCli(['apply', '-f', desiredFile, '-c', configFile, '--dry-run']);
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toBe(dryRunViaGateway);
    const listed = await runCli(['keys', 'list', '-c', configFile]);
    expect(listed.stdout).toMatch(/^root .* role=admin /m);
    expect(listed.stdout).toMatch(/^bob .* role=agent /m);
  }, 30_000);
});
