import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { UpstreamSpec } from '@portcullis/config';
import { type Logger, pino } from 'pino';

const SUPPORT_DIR = dirname(fileURLToPath(import.meta.url));
export const SERVER_SCRIPT = join(SUPPORT_DIR, 'upstream-server.mjs');
/** A hand-written 2025-era server (`raw-server.mjs`): exact control over writes and exits. */
export const RAW_SERVER_SCRIPT = join(SUPPORT_DIR, 'raw-server.mjs');
/** A legacy HTTP+SSE server on the SDK v1 (`sse-server.mjs`). */
export const SSE_SERVER_SCRIPT = join(SUPPORT_DIR, 'sse-server.mjs');

const require = createRequire(import.meta.url);
/** The reference server's entry point (SDK v1: a 2025-era-only server over stdio, SSE or Streamable HTTP). */
export const EVERYTHING_SCRIPT = join(
  dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist/index.js',
);

type Common = Pick<UpstreamSpec, 'era' | 'requestTimeoutMs' | 'healthCheckIntervalMs' | 'isolation' | 'disabled'>;

export function stdioSpec(
  name: string,
  args: readonly string[] = [SERVER_SCRIPT, 'stdio'],
  overrides: Partial<Common> & { readonly command?: string } = {},
): UpstreamSpec {
  return {
    transport: 'stdio',
    command: process.execPath,
    args: [...args],
    env: {},
    era: 'auto',
    disabled: false,
    requestTimeoutMs: 10_000,
    healthCheckIntervalMs: 0,
    isolation: 'per-session',
    ...overrides,
    name,
    namePrefix: name,
  };
}

export function httpSpec(
  name: string,
  url: string,
  transport: 'streamable-http' | 'sse' = 'streamable-http',
  overrides: Partial<Common> = {},
): UpstreamSpec {
  return {
    transport,
    url,
    headers: {},
    era: 'auto',
    disabled: false,
    requestTimeoutMs: 10_000,
    healthCheckIntervalMs: 0,
    isolation: 'shared',
    ...overrides,
    name,
    namePrefix: name,
  };
}

export interface CapturedLog {
  readonly logger: Logger;
  readonly lines: Array<Record<string, unknown>>;
}

/** A pino logger whose records are kept in memory. */
export function captureLogger(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines };
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Whether `pid` is a running process. A zombie counts as dead: in this sandbox PID 1 does not reap
 * re-parented orphans, so a killed grandchild may linger as a zombie that holds nothing but its pid.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface HttpPeer {
  readonly url: string;
  readonly process: ChildProcess;
  /** The method counts the peer has seen (own test server only). */
  stats(): Promise<{ aborted: number; methods: Record<string, number> }>;
  close(): Promise<void>;
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/**
 * Starts a test server in HTTP mode on a random loopback port (default: `upstream-server.mjs http`;
 * any script that prints "LISTENING <port>"). `path` is the MCP endpoint (`/sse` for SSE servers).
 */
export async function startTestHttpServer(
  args: readonly string[] = [SERVER_SCRIPT, 'http'],
  path = '/mcp',
): Promise<HttpPeer> {
  const child = spawn(process.execPath, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr?.resume();
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /LISTENING (\d+)/.exec(output);
      if (match?.[1]) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`test server exited with ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}${path}`,
    process: child,
    stats: async () =>
      (await (await fetch(`${base}/stats`)).json()) as { aborted: number; methods: Record<string, number> },
    close: () => killAndWait(child),
  };
}

/** A loopback port that was free a moment ago (for servers that cannot report a port-0 binding). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Starts the reference server (`sse` or `streamableHttp`) and waits until it accepts connections. */
export async function startEverythingServer(kind: 'sse' | 'streamableHttp'): Promise<HttpPeer> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING_SCRIPT, kind], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PORT: String(port) },
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (/running on port|listening on port/i.test(output)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`reference server exited with ${code}: ${output}`)));
  });
  child.stderr?.resume();
  const base = `http://127.0.0.1:${port}`;
  return {
    url: kind === 'sse' ? `${base}/sse` : `${base}/mcp`,
    process: child,
    stats: () => Promise.reject(new Error('the reference server keeps no stats')),
    close: () => killAndWait(child),
  };
}

/** A `fetch` that counts the `server/discover` probes it carries. */
export function probeCountingFetch(): { fetch: typeof fetch; probes: () => number } {
  let probes = 0;
  return {
    fetch: async (input, init) => {
      if (typeof init?.body === 'string' && init.body.includes('"server/discover"')) probes += 1;
      return fetch(input, init);
    },
    probes: () => probes,
  };
}
