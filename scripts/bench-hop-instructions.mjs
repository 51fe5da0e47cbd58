#!/usr/bin/env node
// Instructions the gateway process executes per `tools/call` (not a test): the pass-through gateway
// runs under valgrind's callgrind between the v2 SDK client and the fixture over Streamable HTTP;
// counters are zeroed after the warm-up and dumped after N calls. The warm-up must outlast V8's
// optimising compiler: after 200 calls its background compilation still doubled the count. Unlike latency, the count does not
// depend on what else the machine is doing, so it compares builds on a busy machine.
//
//   pnpm build && node scripts/bench-hop-instructions.mjs [--calls 300] [--warmup 2000]
//        [--era 2025|2026] [--upstream-era auto|legacy|modern] [--root DIR] [--keep] [--raw]
//
// `--raw` measures scripts/bench-raw-proxy.mjs instead of the gateway: the least any Node.js proxy
// does per call, for reference.
// `--root` measures another checkout's build (e.g. a worktree of an older commit) with this script;
// `--keep` leaves the callgrind output for `callgrind_annotate`.
// Needs valgrind (`callgrind_control` on the PATH). Loopback only; children run in their own process
// groups and are killed on exit.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const { values: opts } = parseArgs({
  options: {
    calls: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '2000' },
    era: { type: 'string', default: '2025' },
    'upstream-era': { type: 'string', default: 'auto' },
    root: { type: 'string' },
    keep: { type: 'boolean', default: false },
    raw: { type: 'boolean', default: false },
  },
  strict: true,
});
const ROOT = resolve(opts.root ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const CALLS = Number(opts.calls);
const WARMUP = Number(opts.warmup);
if (!['2025', '2026'].includes(opts.era) || !['auto', 'legacy', 'modern'].includes(opts['upstream-era'])) {
  process.stderr.write('--era is 2025 or 2026; --upstream-era is auto, legacy or modern\n');
  process.exit(2);
}

const groups = new Set();
process.on('exit', () => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Spawns `command args` in its own process group; resolves with the MCP URL it prints on stderr. */
function start(command, args) {
  const child = spawn(command, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  groups.add(child.pid);
  return new Promise((done, fail) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error(`${args.join(' ')} did not start:\n${text.slice(-2000)}`)), 120_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      if (text.length < 64_000) text += chunk;
      const match = text.match(/listening on (http:\/\/\S+\/mcp)/);
      if (match) {
        clearTimeout(timer);
        done({ pid: child.pid, url: match[1] });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${args.join(' ')} exited (${code}):\n${text.slice(-2000)}`));
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'portcullis-instructions-'));
try {
  const fixture = await start(process.execPath, [
    join(ROOT, 'packages/fixture/dist/bin.js'),
    '--http',
    '--port',
    '0',
    '--name',
    'bench',
  ]);
  const config = join(tmp, 'gateway.json');
  const upstream = { transport: 'streamable-http', url: fixture.url, prefix: false, era: opts['upstream-era'] };
  writeFileSync(
    config,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      logging: { level: 'warn' },
      auth: { anonymous: true },
      upstreams: { fixture: upstream },
    }),
  );
  const proxied = opts.raw
    ? [join(dirname(fileURLToPath(import.meta.url)), 'bench-raw-proxy.mjs'), fixture.url]
    : [join(ROOT, 'scripts/bench-gateway-host.mjs'), '--pass-through', 'serve', '--config', config, '--port', '0'];
  const gateway = await start('valgrind', [
    '--tool=callgrind',
    `--callgrind-out-file=${join(tmp, 'callgrind.out')}`,
    process.execPath,
    ...proxied,
  ]);
  const client = new Client(
    { name: 'bench-hop-instructions', version: '1.0.0' },
    opts.era === '2026' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url)));
  const call = async () => {
    const result = await client.callTool({ name: 'fixture_echo', arguments: { message: 'ping', n: 1 } });
    if (result.structuredContent?.message !== 'ping') throw new Error(`unexpected result ${JSON.stringify(result)}`);
  };
  for (let i = 0; i < WARMUP; i++) await call();
  execFileSync('callgrind_control', ['--zero', String(gateway.pid)], { stdio: 'ignore' });
  for (let i = 0; i < CALLS; i++) await call();
  execFileSync('callgrind_control', ['--dump', String(gateway.pid)], { stdio: 'ignore' });
  // The dump after zeroing is the newest part file.
  const parts = readdirSync(tmp)
    .filter((name) => name.startsWith('callgrind.out'))
    .sort();
  const newest = readFileSync(join(tmp, parts.at(-1)), 'utf8');
  const total = Number(newest.match(/^(?:summary|totals): (\d+)/m)?.[1]);
  if (!Number.isFinite(total) || total === 0) throw new Error('callgrind wrote no totals');
  process.stdout.write(
    `${opts.era} agent, upstream era ${opts['upstream-era']}: ${Math.round(total / CALLS / 1000)}k instructions per call in the ${opts.raw ? 'raw proxy' : 'gateway'} (${CALLS} calls)\n`,
  );
  await client.close().catch(() => {});
} catch (error) {
  process.stderr.write(`bench-hop-instructions failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
} finally {
  if (opts.keep) process.stderr.write(`callgrind output kept in ${tmp}\n`);
  else rmSync(tmp, { recursive: true, force: true });
  process.exit();
}
