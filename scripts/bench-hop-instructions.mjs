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
  // `pnpm <script> -- --flag` passes the `--` on; it separates nothing here.
  args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
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
    // One count per thread: the main thread's is stable from run to run, while the total also holds
    // V8's background compiler and GC threads, whose share swings by ±15% between runs of one build.
    '--separate-threads=yes',
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
  // The dump after zeroing is the newest part: one file per thread, `callgrind.out.<part>-<thread>`
  // (thread 01 is the main thread).
  const dumps = readdirSync(tmp)
    .map((name) => name.match(/^callgrind\.out\.(\d+)-(\d+)$/))
    .filter((match) => match !== null)
    .map((match) => ({ file: match[0], part: Number(match[1]), thread: Number(match[2]) }));
  const newestPart = Math.max(...dumps.map((dump) => dump.part));
  let total = 0;
  let main = 0;
  for (const dump of dumps.filter((entry) => entry.part === newestPart)) {
    const count = Number(readFileSync(join(tmp, dump.file), 'utf8').match(/^(?:summary|totals): (\d+)/m)?.[1] ?? 0);
    total += count;
    if (dump.thread === 1) main = count;
  }
  if (main === 0)
    throw new Error(`callgrind wrote no main-thread totals (${dumps.map((dump) => dump.file).join(', ')})`);
  const perCall = (count) => `${Math.round(count / CALLS / 1000)}k`;
  process.stdout.write(
    `${opts.era} agent, upstream era ${opts['upstream-era']}: ${perCall(main)} instructions per call on the main thread of the ${opts.raw ? 'raw proxy' : 'gateway'}, ${perCall(total)} in all threads (${CALLS} calls)\n`,
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
