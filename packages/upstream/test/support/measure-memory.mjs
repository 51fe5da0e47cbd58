#!/usr/bin/env node --expose-gc
// Heap retained in the gateway process per idle upstream connection (run after building):
//
//   node --expose-gc packages/upstream/test/support/measure-memory.mjs [stdio|http] [count]
//
// Opens `count` connections (default 200 HTTP, 100 stdio) to `raw-server.mjs` in the 2025 era,
// waits until all are connected and idle, and prints the heap growth per connection.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createUpstreamConnection } from '../../dist/index.js';

const RAW = join(dirname(fileURLToPath(import.meta.url)), 'raw-server.mjs');
const kind = process.argv[2] ?? 'http';
const count = Number(process.argv[3] ?? (kind === 'stdio' ? 100 : 200));
const logger = pino({ level: 'silent' });
const common = { era: 'legacy', disabled: false, requestTimeoutMs: 10_000, healthCheckIntervalMs: 0 };

async function settle() {
  for (let round = 0; round < 4; round++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    global.gc();
  }
  return process.memoryUsage().heapUsed;
}

let server;
let spec;
if (kind === 'http') {
  server = spawn(process.execPath, [RAW, 'http'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) =>
    server.stdout.on('data', (chunk) => {
      const match = /LISTENING (\d+)/.exec(String(chunk));
      if (match) resolve(Number(match[1]));
    }),
  );
  spec = {
    ...common,
    name: 'raw',
    namePrefix: 'raw',
    transport: 'streamable-http',
    url: `http://127.0.0.1:${port}/mcp`,
    headers: {},
    isolation: 'per-session',
  };
} else {
  spec = {
    ...common,
    name: 'raw',
    namePrefix: 'raw',
    transport: 'stdio',
    command: process.execPath,
    args: [RAW, 'stdio'],
    env: {},
    isolation: 'per-session',
  };
}

// Warm up: load every module and JIT the paths once.
const warm = createUpstreamConnection(spec, { logger });
await warm.ready();
await warm.close();
const before = await settle();
const connections = [];
for (let index = 0; index < count; index++) {
  const connection = createUpstreamConnection(spec, { logger });
  connections.push(connection);
  await connection.ready();
}
const after = await settle();
const perConnection = (after - before) / count;
console.log(
  JSON.stringify({
    kind,
    count,
    heapBeforeMiB: +(before / 2 ** 20).toFixed(1),
    heapAfterMiB: +(after / 2 ** 20).toFixed(1),
    perConnectionKiB: +(perConnection / 1024).toFixed(1),
  }),
);
await Promise.all(connections.map((connection) => connection.close()));
server?.kill('SIGTERM');
