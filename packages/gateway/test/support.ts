import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { InMemoryTransport } from '@modelcontextprotocol/server';
import { type Config, parseConfig, upstreamSpecs } from '@portcullis/config';
import { type FixtureHttpServer, startFixtureHttp } from '@portcullis/fixture-server';
import { StaticUpstreamRegistry, UpstreamPool } from '@portcullis/upstream';
import { type Logger, pino } from 'pino';
import type { Gateway } from '../src/index.js';

export const silentLogger: Logger = pino({ level: 'silent' });

const FIXTURE_BIN = fileURLToPath(new URL('../../fixture/dist/bin.js', import.meta.url));

/** A config with one upstream `name`: the built fixture as a stdio child, shared or one per agent session. */
export function stdioFixtureConfig(
  name: string,
  isolation: 'shared' | 'per-session',
  gateway: Record<string, unknown> = {},
): Config {
  const upstream = {
    transport: 'stdio',
    command: process.execPath,
    args: [FIXTURE_BIN],
    isolation,
    healthCheckIntervalMs: 0,
    requestTimeoutMs: 10_000,
  };
  return parseConfig(JSON.stringify({ gateway, upstreams: { [name]: upstream } }), 'stdio-fixture-test.json');
}

/** Polls `check` every 10 ms until it holds; fails naming `what` after `ms`. */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function startFixture(name: string): Promise<FixtureHttpServer> {
  return startFixtureHttp({ host: '127.0.0.1', port: 0, name, watchedIntervalMs: 0 });
}

export interface UpstreamDef {
  readonly name: string;
  readonly url: string;
  readonly prefix?: false | string;
}

/** A config (validated by the real parser) whose upstreams are the given Streamable HTTP servers. */
export function configFor(upstreams: readonly UpstreamDef[], gateway: Record<string, unknown> = {}): Config {
  const doc = {
    gateway,
    upstreams: Object.fromEntries(
      upstreams.map((upstream) => [
        upstream.name,
        {
          transport: 'streamable-http',
          url: upstream.url,
          healthCheckIntervalMs: 0,
          requestTimeoutMs: 10_000,
          ...(upstream.prefix === undefined ? {} : { prefix: upstream.prefix }),
        },
      ]),
    ),
  };
  return parseConfig(JSON.stringify(doc), 'test-config.json');
}

/** A started pool over the config's upstreams, with every primary connected. */
export async function connectedPool(config: Config): Promise<UpstreamPool> {
  const pool = new UpstreamPool(new StaticUpstreamRegistry(upstreamSpecs(config)), { logger: silentLogger });
  pool.start();
  await Promise.all(pool.names().map((name) => pool.primary(name).ready()));
  return pool;
}

/** A 2025-era session of the gateway with a real SDK client connected to it in memory. */
export async function connectClient(gateway: Gateway): Promise<Client> {
  const session = gateway.createSession({ era: 'legacy', frontTransport: 'stdio' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await session.server.connect(serverSide);
  const client = new Client({ name: 'gateway-test-agent', version: '1.0.0' });
  await client.connect(clientSide);
  return client;
}

export function textOf(result: unknown): string {
  const content = typeof result === 'object' && result !== null && 'content' in result ? result.content : undefined;
  const block: unknown = Array.isArray(content) ? content[0] : undefined;
  if (typeof block === 'object' && block !== null && 'text' in block && typeof block.text === 'string')
    return block.text;
  throw new Error(`no text block in ${JSON.stringify(result)}`);
}
