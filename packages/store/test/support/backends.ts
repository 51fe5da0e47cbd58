import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openStore, type Store, type StoreOptions } from '../../src/index.js';

/**
 * Where the Postgres tests run: `PORTCULLIS_TEST_DATABASE_URL` (CI: a fresh database), else the
 * local server's `test` database. Each suite creates its own database beside it and drops it after.
 */
export const ADMIN_URL = process.env.PORTCULLIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface Backend {
  readonly name: 'pglite' | 'postgres';
  /** Options that point a store at this suite's fresh storage. */
  options(): StoreOptions;
  /** The Postgres URL (postgres backend only). */
  readonly url: string | undefined;
  /** A store on the suite's storage with a private spool directory. */
  open(extra?: Partial<StoreOptions>): Promise<Store>;
  dispose(): Promise<void>;
}

export const BACKEND_NAMES = ['pglite', 'postgres'] as const;

export async function createBackend(name: 'pglite' | 'postgres'): Promise<Backend> {
  const scratch = mkdtempSync(join(tmpdir(), 'portcullis-store-'));
  let spoolCount = 0;
  const freshSpool = () => join(scratch, `spool-${++spoolCount}`);
  if (name === 'pglite') {
    const dataDir = join(scratch, 'data');
    return {
      name,
      url: undefined,
      options: () => ({ dataDir }),
      open: (extra = {}) => openStore({ dataDir, spoolDir: freshSpool(), ...extra }),
      dispose: async () => rmSync(scratch, { recursive: true, force: true }),
    };
  }
  const database = `portcullis_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(ADMIN_URL, database);
  return {
    name,
    url,
    options: () => ({ url }),
    open: (extra = {}) => openStore({ url, spoolDir: freshSpool(), ...extra }),
    dispose: async () => {
      const client = new pg.Client({ connectionString: ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Runs a query on a separate connection (proves a row is committed, not just visible to the writer). */
export async function queryOutside<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A loopback TCP proxy to the real Postgres that a test can cut (refuse and drop every
 * connection) and restore, so the shared server stays up for everyone else.
 */
export class CuttableProxy {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  static forUrl(url: string): CuttableProxy {
    const parsed = new URL(url);
    return new CuttableProxy(parsed.hostname, Number(parsed.port || 5432));
  }

  async start(port = 0): Promise<void> {
    const server = createServer((client) => {
      const upstream = new Socket();
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(this.targetPort, this.targetHost, () => {
        client.pipe(upstream);
        upstream.pipe(client);
      });
    });
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolveListen());
    });
    this.#server = server;
    const address = server.address();
    if (address !== null && typeof address === 'object') this.port = address.port;
  }

  /** Proxied URL (same credentials and database). */
  url(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((done) => server.close(() => done()));
  }

  async restore(): Promise<void> {
    await this.start(this.port);
  }
}
