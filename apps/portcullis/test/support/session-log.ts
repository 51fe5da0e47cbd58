import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { holdPostgresExclusive, holdPostgresShared } from '../../../../packages/store/test/support/pg-lock.js';
import { gatewayConfig } from './gateway.js';
import { GATEWAY_BIN, ROOT, type Spawned, spawnProcess, tempDir, waitForStderr, writeConfig } from './processes.js';

export { holdPostgresExclusive, holdPostgresShared };

/** The server the Postgres tests use: `PORTCULLIS_TEST_DATABASE_URL` (CI), else the local `test` database. */
export const ADMIN_URL = process.env.PORTCULLIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const COUNTING_UPSTREAM = join(ROOT, 'apps/portcullis/test/support/counting-upstream.mjs');

export interface FreshDatabase {
  readonly url: string;
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** Creates a database of its own beside `ADMIN_URL`; `drop()` removes it. */
export async function freshDatabase(): Promise<FreshDatabase> {
  const name = `portcullis_e2e_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await withClient(ADMIN_URL, (client) => client.query(`CREATE DATABASE "${name}"`));
  const parsed = new URL(ADMIN_URL);
  parsed.pathname = `/${name}`;
  const url = parsed.toString();
  return {
    url,
    query: async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
      withClient(url, async (client) => (await client.query<T>(text, values)).rows),
    drop: () =>
      withClient(ADMIN_URL, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }),
  };
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A gateway configuration file with a session log section. */
export function sessionLogConfig(
  upstreams: Record<string, unknown>,
  database: Record<string, unknown>,
  audit: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): string {
  return writeConfig({
    ...gatewayConfig({ upstreams }),
    database,
    audit: { batch: { intervalMs: 20 }, spoolDir: join(tempDir(), 'spool'), ...audit },
    ...extra,
  });
}

export interface ServedGateway {
  readonly proc: Spawned;
  readonly mcpUrl: string;
}

export async function serve(configFile: string): Promise<ServedGateway> {
  const proc = spawnProcess(process.execPath, [GATEWAY_BIN, 'serve', '--config', configFile, '--port', '0']);
  const match = await waitForStderr(proc, /portcullis listening on (http:\/\/\S+\/mcp)/, 40_000);
  return { proc, mcpUrl: match[1] ?? '' };
}

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built `portcullis` command to completion. */
export function runCli(args: string[]): Promise<CliRun> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [GATEWAY_BIN, ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolveRun({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------- the shared Postgres server

const CLUSTER_VERSION = (): string =>
  execFileSync('ls', ['/etc/postgresql'], { encoding: 'utf8' }).trim().split('\n')[0] ?? '';

function pgctl(action: 'start' | 'stop'): void {
  const args = ['--skip-systemctl-redirect', CLUSTER_VERSION(), 'main', action];
  if (action === 'stop') args.push('-m', 'fast');
  execFileSync('pg_ctlcluster', args, { stdio: 'pipe', timeout: 60_000 });
}

/**
 * Whether the server the tests use is the machine's own cluster that `pg_ctlcluster` can stop and
 * start (127.0.0.1:5432, a cluster under /etc/postgresql): the outage tests need that.
 */
export function canRestartPostgres(): boolean {
  const url = new URL(ADMIN_URL);
  if (!['127.0.0.1', 'localhost'].includes(url.hostname) || (url.port !== '' && url.port !== '5432')) return false;
  try {
    execFileSync('sh', ['-c', 'command -v pg_ctlcluster'], { stdio: 'pipe', timeout: 10_000 });
    return CLUSTER_VERSION() !== '';
  } catch {
    return false;
  }
}

export function isPostgresReady(): boolean {
  try {
    execFileSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q'], { stdio: 'pipe', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

export function stopPostgres(): void {
  pgctl('stop');
}

/** Starts the shared server if it is down and waits until it accepts connections. */
export async function startPostgres(): Promise<void> {
  if (!isPostgresReady()) {
    try {
      pgctl('start');
    } catch (error) {
      // Already running (a concurrent start) is fine; anything else shows in the readiness wait.
      if (!isPostgresReady()) process.stderr.write(`pg_ctlcluster start: ${String(error)}\n`);
    }
  }
  const deadline = Date.now() + 60_000;
  while (!isPostgresReady()) {
    if (Date.now() > deadline) throw new Error('Postgres did not come back within 60 s');
    await new Promise((done) => setTimeout(done, 200));
  }
}
