import {
  EVERYTHING_BIN,
  FIXTURE_BIN,
  GATEWAY_BIN,
  type Spawned,
  spawnProcess,
  waitForStderr,
  writeConfig,
} from './processes.js';

/** A unique marker put into upstream args so tests can find the processes a gateway spawned. */
export function marker(): string {
  return `e2e-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

export function stdioFixture(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: [FIXTURE_BIN, '--name', name], ...extra };
}

export function stdioEverything(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { transport: 'stdio', command: process.execPath, args: [EVERYTHING_BIN, 'stdio'], ...extra };
}

export function httpUpstream(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { transport: 'streamable-http', url, ...extra };
}

export interface GatewayConfig {
  readonly upstreams: Record<string, unknown>;
  readonly server?: Record<string, unknown>;
  readonly gateway?: Record<string, unknown>;
  /** Default `{ anonymous: true }`: HTTP tests serve the anonymous identity. */
  readonly auth?: Record<string, unknown>;
  /** Any other top-level sections (policy, identity, redaction, ...). */
  readonly extra?: Record<string, unknown>;
}

export function gatewayConfig(config: GatewayConfig): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0, ...config.server },
    gateway: { listChangedDebounceMs: 20, ...config.gateway },
    logging: { level: 'warn' },
    auth: config.auth ?? { anonymous: true },
    // The session log in an in-memory embedded database, so suites that do not look at the log skip
    // the on-disk initdb (the session-log suites set `database` themselves).
    database: { dataDir: 'memory://' },
    ...config.extra,
    upstreams: config.upstreams,
  };
}

export interface HttpGateway {
  readonly proc: Spawned;
  /** `http://127.0.0.1:PORT/mcp` */
  readonly mcpUrl: string;
  /** `http://127.0.0.1:PORT` */
  readonly baseUrl: string;
  readonly configFile: string;
}

/** Starts `portcullis serve` on a free port and waits for its printed URL. */
export async function startHttpGateway(config: GatewayConfig): Promise<HttpGateway> {
  const configFile = writeConfig(gatewayConfig(config));
  const proc = spawnProcess(process.execPath, [GATEWAY_BIN, 'serve', '--config', configFile, '--port', '0']);
  const match = await waitForStderr(proc, /portcullis listening on (http:\/\/\S+\/mcp)/);
  const mcpUrl = match[1] ?? '';
  return { proc, mcpUrl, baseUrl: mcpUrl.replace(/\/mcp$/, ''), configFile };
}

export interface HttpFixture {
  readonly proc: Spawned;
  readonly url: string;
}

/** Starts the fixture over Streamable HTTP on `port` (0: a free one). */
export async function startHttpFixture(name: string, port = 0): Promise<HttpFixture> {
  const proc = spawnProcess(process.execPath, [FIXTURE_BIN, '--http', '--port', String(port), '--name', name]);
  const match = await waitForStderr(proc, /listening on (http:\/\/\S+)/);
  return { proc, url: match[1] ?? '' };
}

/** Arguments for the gateway's stdio mode, for the SDK stdio client transports. */
export function stdioGatewayParams(config: GatewayConfig): {
  command: string;
  args: string[];
  cwd: string;
  stderr: 'pipe';
} {
  const configFile = writeConfig(gatewayConfig(config));
  return {
    command: process.execPath,
    args: [GATEWAY_BIN, 'stdio', '--config', configFile],
    cwd: process.cwd(),
    stderr: 'pipe',
  };
}
