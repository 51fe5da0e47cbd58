#!/usr/bin/env node
// Session-log store benchmark (not a test): events/s sustained into Postgres and into PGlite
// through the batched writer, and the latency a `tools/call` pays for its write-ahead record.
//
//   pnpm --filter @portcullis/store build && pnpm bench:store [--events 100000] [--sessions 50]
//        [--calls 2000] [--url postgres://postgres@127.0.0.1:5432/test] [--no-pglite] [--no-postgres]
//
// Postgres: a fresh database is created beside --url (default PORTCULLIS_TEST_DATABASE_URL or the
// local `test` database) and dropped afterwards. PGlite: a temporary data directory, removed after.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const STORE_DIR = join(ROOT, 'packages/store');
const { openStore, uuidv7 } = await import(pathToFileURL(join(STORE_DIR, 'dist/index.js')).href);
const pg = createRequire(join(STORE_DIR, 'package.json'))('pg');

const { values: opts } = parseArgs({
  // `pnpm <script> -- --flag` passes the `--` on; it separates nothing here.
  args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
  options: {
    events: { type: 'string', default: '100000' },
    sessions: { type: 'string', default: '50' },
    calls: { type: 'string', default: '2000' },
    url: {
      type: 'string',
      default: process.env.PORTCULLIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    },
    'no-pglite': { type: 'boolean', default: false },
    'no-postgres': { type: 'boolean', default: false },
  },
  strict: true,
});
const EVENTS = Number(opts.events);
const SESSIONS = Number(opts.sessions);
const CALLS = Number(opts.calls);

const identity = { subject: 'bench', groups: ['bench'], authMethod: 'config', claims: {} };
const session = () => ({
  id: uuidv7(),
  era: 'legacy',
  protocolVersion: '2025-11-25',
  frontTransport: 'streamable-http',
  clientInfo: { name: 'bench', version: '1' },
  remoteAddress: '127.0.0.1',
});
// A typical small tool call and its result, as the agent sent and received them.
const requestPayload = (i) => ({
  jsonrpc: '2.0',
  id: i,
  method: 'tools/call',
  params: { name: 'demo__echo', arguments: { message: 'ping', n: i } },
});
const responsePayload = (i) => ({
  jsonrpc: '2.0',
  id: i,
  result: { content: [{ type: 'text', text: `{"message":"ping","n":${i}}` }], isError: false },
});

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function measure(label, open) {
  const store = await open();
  try {
    // Events/s: SESSIONS sessions interleaved, request/response pairs, awaited one by one (the
    // writer applies backpressure only when its queue is full), then flushed.
    const sessions = Array.from({ length: SESSIONS }, session);
    for (const s of sessions) await store.recordSessionStart(s, identity);
    await store.flush();
    // Warm-up.
    for (let i = 0; i < 2_000; i++) {
      await store.recordEvent({
        sessionId: sessions[i % SESSIONS].id,
        direction: 'from_agent',
        kind: 'request',
        method: 'tools/call',
        rpcId: i,
        payload: requestPayload(i),
      });
    }
    await store.flush();
    const t0 = performance.now();
    for (let i = 0; i < EVENTS; i++) {
      const response = i % 2 === 1;
      await store.recordEvent({
        sessionId: sessions[i % SESSIONS].id,
        direction: response ? 'to_agent' : 'from_agent',
        kind: response ? 'response' : 'request',
        method: 'tools/call',
        rpcId: i,
        upstream: 'demo',
        payload: response ? responsePayload(i) : requestPayload(i),
        latencyMs: response ? 0.5 : undefined,
      });
    }
    await store.flush();
    const seconds = (performance.now() - t0) / 1000;
    const eventsPerSecond = EVENTS / seconds;

    // Write-ahead latency: sequential recordToolCall, each awaited until committed.
    const s = sessions[0];
    for (let i = 0; i < 200; i++) {
      await store.recordToolCall({
        sessionId: s.id,
        identity,
        upstream: 'demo',
        tool: 'echo',
        namespacedTool: 'demo__echo',
        arguments: { message: 'ping', n: i },
        decision: 'allow',
      });
    }
    const latencies = [];
    for (let i = 0; i < CALLS; i++) {
      const start = performance.now();
      await store.recordToolCall({
        sessionId: s.id,
        rpcId: i,
        identity,
        upstream: 'demo',
        tool: 'echo',
        namespacedTool: 'demo__echo',
        arguments: { message: 'ping', n: i },
        decision: 'allow',
      });
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    // Concurrent write-ahead: 16 callers at once (tool calls of concurrent agents), each awaiting
    // its own commit; group commit lets the waiting ones share one.
    const concurrent = [];
    const tc = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async (_, caller) => {
        for (let i = 0; i < CALLS / 16; i++) {
          const start = performance.now();
          await store.recordToolCall({
            sessionId: sessions[caller % SESSIONS].id,
            identity,
            upstream: 'demo',
            tool: 'echo',
            namespacedTool: 'demo__echo',
            arguments: { message: 'ping', n: i },
            decision: 'allow',
          });
          concurrent.push(performance.now() - start);
        }
      }),
    );
    const concurrentPerSecond = concurrent.length / ((performance.now() - tc) / 1000);
    concurrent.sort((a, b) => a - b);
    const verify = await store.verifyChains();
    return {
      backend: label,
      events: EVENTS,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(eventsPerSecond),
      writeAheadP50Ms: Number(percentile(latencies, 50).toFixed(3)),
      writeAheadP99Ms: Number(percentile(latencies, 99).toFixed(3)),
      concurrent16PerSecond: Math.round(concurrentPerSecond),
      concurrent16P50Ms: Number(percentile(concurrent, 50).toFixed(3)),
      chainsVerified: verify.ok ? verify.eventsChecked : `BROKEN ${JSON.stringify(verify.broken[0])}`,
    };
  } finally {
    await store.close();
  }
}

const results = [];
const scratch = mkdtempSync(join(tmpdir(), 'portcullis-bench-store-'));
try {
  if (!opts['no-postgres']) {
    const database = `portcullis_bench_${Date.now()}_${randomBytes(3).toString('hex')}`;
    const admin = new pg.Client({ connectionString: opts.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${database}"`);
    await admin.end();
    const url = new URL(opts.url);
    url.pathname = `/${database}`;
    try {
      results.push(
        await measure('postgres', () => openStore({ url: url.toString(), spoolDir: join(scratch, 'spool-pg') })),
      );
    } finally {
      const drop = new pg.Client({ connectionString: opts.url });
      await drop.connect();
      await drop.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await drop.end();
    }
  }
  if (!opts['no-pglite']) {
    results.push(
      await measure('pglite', () =>
        openStore({ dataDir: join(scratch, 'data'), spoolDir: join(scratch, 'spool-lite') }),
      ),
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

process.stdout.write(
  `node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model ?? '?'}), ${EVENTS} events over ${SESSIONS} sessions, ${CALLS} write-ahead records\n`,
);
console.table(results);
