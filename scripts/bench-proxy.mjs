#!/usr/bin/env node
// Proxy-overhead benchmark (not a test): `tools/call fixture_echo` directly against the fixture
// upstream vs. through the Portcullis gateway, over Streamable HTTP and over stdio, plus the
// gateway's resident-memory cost per idle 2025-era Streamable HTTP session. Over HTTP a minimal
// Node.js proxy (scripts/bench-raw-proxy.mjs) is measured too, as the floor any Node.js proxy pays,
// and, where `socat` is installed, a TCP relay in C, as the cost of the extra hop alone.
//
//   pnpm build && pnpm bench:proxy [--calls 2000] [--warmup 300] [--sessions 200] [--no-modern]
//                                  [--json FILE] [--cpu-prof DIR]
//
// Loopback only. Every process it starts runs in its own process group and is killed on exit.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const GATEWAY_BIN = join(ROOT, 'apps/portcullis/dist/bin.js');
const GATEWAY_HOST = join(ROOT, 'scripts/bench-gateway-host.mjs');
const RAW_PROXY = join(ROOT, 'scripts/bench-raw-proxy.mjs');
const FIXTURE_BIN = join(ROOT, 'packages/fixture/dist/bin.js');
const MODERN_VERSION = '2026-07-28';
const ECHO_ARGS = { message: 'ping', n: 1 };
const START_TIMEOUT_MS = 15_000;
const TCP_RELAY = 'tcp relay (socat)';
const CELL_TIME_LIMIT_MS = 15_000;

const { values: opts } = parseArgs({
  // `pnpm <script> -- --flag` passes the `--` on; it separates nothing here.
  args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
  options: {
    calls: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '300' },
    sessions: { type: 'string', default: '200' },
    'no-modern': { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write(
    'usage: node scripts/bench-proxy.mjs [--calls N] [--warmup N] [--sessions N] [--no-modern] [--only http|stdio|memory] [--json FILE] [--cpu-prof DIR]\n',
  );
  process.exit(0);
}
const CALLS = positiveInt(opts.calls, 'calls');
const WARMUP = positiveInt(opts.warmup, 'warmup');
const SESSIONS = positiveInt(opts.sessions, 'sessions');
const CONCURRENCIES = [1, 32];
const ERAS = opts['no-modern'] ? ['2025'] : ['2025', '2026'];

function positiveInt(value, name) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive integer\n`);
    process.exit(2);
  }
  return n;
}

for (const bin of [GATEWAY_BIN, FIXTURE_BIN]) {
  if (!existsSync(bin)) {
    process.stderr.write(`missing ${bin}: run \`pnpm build\` first\n`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every child is a process-group leader (own `detached` group, or `setsid`
// for the stdio children the SDK transport spawns), so killing -pgid also takes its descendants.

const groups = new Set();

function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopGroup(pgid) {
  killGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(25);
  if (groupAlive(pgid)) killGroup(pgid, 'SIGKILL');
  groups.delete(pgid);
}

process.on('exit', () => {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    process.stderr.write(`\nbench-proxy: ${signal}, stopping children\n`);
    process.exit(130);
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** Spawns `node <args>` in its own process group and resolves with the URL it prints on stderr. */
function startHttpProcess(label, args, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  groups.add(child.pid);
  return new Promise((done, fail) => {
    let text = '';
    const timer = setTimeout(
      () => fail(new Error(`${label} did not start within ${START_TIMEOUT_MS} ms:\n${text}`)),
      START_TIMEOUT_MS,
    );
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      if (text.length < 64_000) text += chunk;
      const match = text.match(/listening on (http:\/\/\S+\/mcp)/);
      if (match) {
        clearTimeout(timer);
        done({ pid: child.pid, url: match[1], stop: () => stopGroup(child.pid), heap: () => readHeap(child) });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`${label} exited early (${code ?? signal}):\n${text}`));
    });
  });
}

function clientOptions(era) {
  return era === '2026' ? { versionNegotiation: { mode: { pin: MODERN_VERSION } } } : {};
}

async function connectHttp(url, era) {
  const client = new Client({ name: 'bench-proxy', version: '1.0.0' }, clientOptions(era));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return { client, close: () => client.close() };
}

/** The client spawns `setsid node <args>`: setsid execs in place, so the child pid leads its own group. */
async function connectStdio(args, era) {
  const transport = new StdioClientTransport({
    command: 'setsid',
    args: [process.execPath, ...args],
    cwd: ROOT,
    stderr: 'ignore',
  });
  const client = new Client({ name: 'bench-proxy', version: '1.0.0' }, clientOptions(era));
  await client.connect(transport);
  const pid = transport.pid;
  if (pid) groups.add(pid);
  return {
    client,
    close: async () => {
      await client.close().catch(() => {});
      if (pid) await stopGroup(pid);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Measurement

async function echo(client) {
  const result = await client.callTool({ name: 'fixture_echo', arguments: ECHO_ARGS });
  if (result.isError || result.structuredContent?.message !== 'ping') {
    throw new Error(`unexpected fixture_echo result: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

/** `total` calls with `inFlight` concurrent workers; bounded by CELL_TIME_LIMIT_MS. */
async function drive(client, total, inFlight, record) {
  let issued = 0;
  const deadline = performance.now() + CELL_TIME_LIMIT_MS;
  const worker = async () => {
    while (issued < total && performance.now() < deadline) {
      issued++;
      const start = performance.now();
      await echo(client);
      record?.(performance.now() - start);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return performance.now() - started;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

async function measure(client, inFlight) {
  await drive(client, WARMUP, inFlight);
  const latencies = [];
  const elapsed = await drive(client, CALLS, inFlight, (ms) => latencies.push(ms));
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    callsPerSecond: latencies.length / (elapsed / 1000),
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const tmp = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
const rows = [];

function writeConfig(name, upstream) {
  const file = join(tmp, `${name}.json`);
  const config = {
    server: { host: '127.0.0.1', port: 0 },
    logging: { level: 'warn' },
    auth: { anonymous: true },
    database: { dataDir: 'memory://' },
    upstreams: { fixture: { ...upstream, prefix: false } },
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function cells(transport, path, connect) {
  for (const era of ERAS) {
    const connection = await connect(era);
    try {
      await echo(connection.client);
      for (const inFlight of CONCURRENCIES) {
        const result = await measure(connection.client, inFlight);
        rows.push({ transport, era, path, inFlight, ...result });
        process.stderr.write(
          `  ${transport} ${era} ${path} x${inFlight}: p50 ${fmt(result.p50)} ms, p99 ${fmt(result.p99)} ms, ${Math.round(result.callsPerSecond)} calls/s\n`,
        );
      }
    } finally {
      await connection.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A TCP relay in C (socat, when installed) in front of the fixture: the cost of one more hop
// through the kernel and the scheduler alone, without any HTTP or JSON work in the relay.

function socatAvailable() {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

async function startTcpRelay(targetUrl) {
  const target = new URL(targetUrl);
  const port = await freePort();
  const child = spawn(
    'socat',
    [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${target.port},nodelay`],
    { detached: true, stdio: 'ignore' },
  );
  groups.add(child.pid);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const connected = await new Promise((done) => {
      const probe = createConnection({ host: '127.0.0.1', port }, () => {
        probe.end();
        done(true);
      });
      probe.once('error', () => done(false));
    });
    if (connected) break;
    if (Date.now() > deadline) throw new Error(`socat did not listen on ${port} within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  return { pid: child.pid, url: `http://127.0.0.1:${port}${target.pathname}`, stop: () => stopGroup(child.pid) };
}

// CPU time of a whole process group (every process and thread in it), from /proc; undefined
// where there is no /proc. Clock ticks are converted with the system's CLK_TCK.
const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function groupCpuMs(pgid) {
  if (!existsSync('/proc/self/stat')) return undefined;
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while listing
    }
    // Fields after the parenthesised command: state ppid pgrp … utime(11) stime(12)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

const INTERLEAVED_ROUNDS = 6;
const INTERLEAVED_BLOCK = 400;
/** Unrecorded calls before each block, so that a path is measured warm (as in the cells above), not straight after idling. */
const INTERLEAVED_REWARM = 200;
const interleavedRows = [];

/**
 * The 1-in-flight p50 of each path measured in alternating blocks of calls (the order rotating
 * every round), so that a change in machine load affects every path alike: on a shared machine
 * the sequential cells above drift apart by more than the hop costs. Each block is preceded by
 * unrecorded calls on the same path: a proxy idles while the other paths run, and its first calls
 * after that pay for cold caches that a proxy in steady use does not (the fixture, serving every
 * path, never idles).
 */
async function interleaved(era, urls, groupsByPath) {
  const paths = Object.keys(urls);
  const connections = {};
  const latencies = {};
  // CPU spent during the recorded blocks: by the process(es) in the path (none for direct) and by the fixture.
  const proxyCpu = {};
  const fixtureCpu = {};
  try {
    for (const path of paths) {
      connections[path] = await connectHttp(urls[path], era);
      latencies[path] = [];
      proxyCpu[path] = 0;
      fixtureCpu[path] = 0;
      await drive(connections[path].client, WARMUP, 1);
    }
    for (let round = 0; round < INTERLEAVED_ROUNDS; round++) {
      for (let i = 0; i < paths.length; i++) {
        const path = paths[(round + i) % paths.length];
        await drive(connections[path].client, INTERLEAVED_REWARM, 1);
        const proxyBefore = groupsByPath.proxy[path] === undefined ? 0 : groupCpuMs(groupsByPath.proxy[path]);
        const fixtureBefore = groupCpuMs(groupsByPath.fixture);
        await drive(connections[path].client, INTERLEAVED_BLOCK, 1, (ms) => latencies[path].push(ms));
        if (groupsByPath.proxy[path] !== undefined)
          proxyCpu[path] += groupCpuMs(groupsByPath.proxy[path]) - proxyBefore;
        fixtureCpu[path] += groupCpuMs(groupsByPath.fixture) - fixtureBefore;
      }
    }
  } finally {
    await Promise.allSettled(Object.values(connections).map((connection) => connection.close()));
  }
  const p50 = {};
  for (const path of paths)
    p50[path] = percentile(
      [...latencies[path]].sort((a, b) => a - b),
      50,
    );
  for (const path of paths) {
    interleavedRows.push({
      era,
      path,
      calls: latencies[path].length,
      p50: p50[path],
      overhead: p50[path] - p50.direct,
      proxyCpuMsPerCall: groupsByPath.proxy[path] === undefined ? undefined : proxyCpu[path] / latencies[path].length,
      fixtureCpuMsPerCall: fixtureCpu[path] / latencies[path].length,
    });
  }
  process.stderr.write(
    `  http ${era} interleaved p50: ${paths.map((path) => `${path} ${fmt(p50[path])} ms`).join(', ')}\n`,
  );
}

async function httpScenario() {
  process.stderr.write('HTTP: fixture over Streamable HTTP, gateway over Streamable HTTP\n');
  const fixture = await startHttpProcess('fixture', [FIXTURE_BIN, '--http', '--port', '0', '--name', 'bench']);
  try {
    const config = writeConfig('http', { transport: 'streamable-http', url: fixture.url });
    const profFlags = opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts['cpu-prof'])}`] : [];
    const gateway = await startHttpProcess(
      'gateway',
      [GATEWAY_HOST, '--pass-through', 'serve', '--config', config, '--port', '0'],
      profFlags,
    );
    // Reference: the least any Node.js proxy does per call (not a gateway; see bench-raw-proxy.mjs).
    const raw = await startHttpProcess('raw proxy', [RAW_PROXY, fixture.url]);
    // Reference: the hop itself (kernel, scheduler), relayed by a C program that parses nothing.
    const relay = socatAvailable() ? await startTcpRelay(fixture.url) : undefined;
    if (!relay) process.stderr.write('  socat not installed: no TCP relay row\n');
    try {
      await cells('http', 'direct', (era) => connectHttp(fixture.url, era));
      await cells('http', 'gateway', (era) => connectHttp(gateway.url, era));
      await cells('http', 'raw proxy', (era) => connectHttp(raw.url, era));
      const urls = { direct: fixture.url, gateway: gateway.url, 'raw proxy': raw.url };
      const proxy = { gateway: gateway.pid, 'raw proxy': raw.pid };
      if (relay) {
        urls[TCP_RELAY] = relay.url;
        proxy[TCP_RELAY] = relay.pid;
      }
      for (const era of ERAS) await interleaved(era, urls, { proxy, fixture: fixture.pid });
    } finally {
      await Promise.allSettled([gateway.stop(), raw.stop(), relay?.stop()]);
    }
    // The `portcullis` program as shipped: the same hop plus the session log (in-memory PGlite here).
    const program = await startHttpProcess('portcullis', [GATEWAY_BIN, 'serve', '--config', config, '--port', '0']);
    try {
      await cells('http', 'gateway+log', (era) => connectHttp(program.url, era));
    } finally {
      await program.stop();
    }
  } finally {
    await fixture.stop();
  }
}

async function stdioScenario() {
  process.stderr.write('stdio: client spawns the fixture vs. `portcullis stdio` with the fixture as stdio upstream\n');
  const config = writeConfig('stdio', {
    transport: 'stdio',
    command: process.execPath,
    args: [FIXTURE_BIN, '--name', 'bench'],
  });
  await cells('stdio', 'direct', (era) => connectStdio([FIXTURE_BIN, '--name', 'bench'], era));
  await cells('stdio', 'gateway', (era) =>
    connectStdio([GATEWAY_HOST, '--pass-through', 'stdio', '--config', config], era),
  );
}

function readStatus(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? Number.NaN);
  return { vmRssKb: kb('VmRSS'), rssAnonKb: kb('RssAnon') };
}

/** Asks a gateway started through bench-gateway-host.mjs for its heap after a full GC. */
function readHeap(child) {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('no heap report within 10 s')), 10_000);
    const onData = (chunk) => {
      const match = String(chunk).match(/^heap (\d+)$/m);
      if (!match) return;
      clearTimeout(timer);
      child.stderr.off('data', onData);
      done(Number(match[1]));
    };
    child.stderr.on('data', onData);
    process.kill(child.pid, 'SIGUSR2');
  });
}

async function settledStatus(pid) {
  await sleep(1500);
  return readStatus(pid);
}

async function memoryScenario() {
  process.stderr.write(`memory: ${SESSIONS} idle 2025-era Streamable HTTP sessions against the gateway\n`);
  const fixture = await startHttpProcess('fixture', [FIXTURE_BIN, '--http', '--port', '0', '--name', 'bench']);
  const sessions = [];
  try {
    const config = writeConfig('memory', { transport: 'streamable-http', url: fixture.url });
    const gateway = await startHttpProcess(
      'gateway',
      [GATEWAY_HOST, '--pass-through', 'serve', '--config', config, '--port', '0'],
      ['--expose-gc'],
    );
    try {
      // Warm the gateway (upstream connection, JIT, lazily built catalog) with a few sessions first.
      const warm = [];
      for (let i = 0; i < 10; i++) warm.push(await connectHttp(gateway.url, '2025'));
      await Promise.all(warm.map((s) => echo(s.client)));
      await Promise.all(warm.map((s) => s.close()));
      const before = await settledStatus(gateway.pid);
      const heapBefore = await gateway.heap();
      const steps = [];
      const stepSize = Math.max(1, Math.ceil(SESSIONS / 4));
      while (sessions.length < SESSIONS) {
        const batch = Math.min(stepSize, SESSIONS - sessions.length);
        for (let i = 0; i < batch; i++) sessions.push(await connectHttp(gateway.url, '2025'));
        steps.push({ sessions: sessions.length, ...(await settledStatus(gateway.pid)) });
      }
      const heapAfter = await gateway.heap();
      const after = steps.at(-1);
      const perSession = (key) => ((after[key] - before[key]) * 1024) / SESSIONS;
      const slope = (key) => {
        // least-squares slope over (0, before) and every step, in bytes per session
        const points = [{ sessions: 0, [key]: before[key] }, ...steps];
        const mx = points.reduce((s, p) => s + p.sessions, 0) / points.length;
        const my = points.reduce((s, p) => s + p[key], 0) / points.length;
        const num = points.reduce((s, p) => s + (p.sessions - mx) * (p[key] - my), 0);
        const den = points.reduce((s, p) => s + (p.sessions - mx) ** 2, 0);
        return (num / den) * 1024;
      };
      return {
        sessions: SESSIONS,
        before,
        steps,
        vmRssBytesPerSession: perSession('vmRssKb'),
        rssAnonBytesPerSession: perSession('rssAnonKb'),
        vmRssSlopeBytesPerSession: slope('vmRssKb'),
        heapBytesPerSession: (heapAfter - heapBefore) / SESSIONS,
      };
    } finally {
      await Promise.allSettled(sessions.map((s) => s.close()));
      await gateway.stop();
    }
  } finally {
    await fixture.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function fmt(ms) {
  return ms.toFixed(ms < 10 ? 3 : 1);
}

function cpu(ms) {
  return ms === undefined || Number.isNaN(ms) ? '' : ms.toFixed(3);
}

function overhead(row) {
  if (row.path === 'direct') return '';
  const direct = rows.find(
    (r) => r.transport === row.transport && r.era === row.era && r.inFlight === row.inFlight && r.path === 'direct',
  );
  if (!direct) return '';
  const delta = row.p50 - direct.p50;
  return `${delta >= 0 ? '+' : ''}${fmt(delta)}`;
}

function report(memory, machine) {
  const lines = [
    `Machine: ${machine.cpus} CPU(s) (${machine.cpuModel}), Node ${machine.node}, load average at start ${machine.loadAverageAtStart.join(' / ')}; ${CALLS} measured calls per cell after ${WARMUP} warm-up calls`,
    '',
    '| transport | era | path | in flight | calls | p50 (ms) | p99 (ms) | calls/s | gateway p50 overhead (ms) |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.transport} | ${row.era} | ${row.path} | ${row.inFlight} | ${row.calls} | ${fmt(row.p50)} | ${fmt(row.p99)} | ${Math.round(row.callsPerSecond)} | ${overhead(row)} |`,
    );
  }
  if (interleavedRows.length > 0) {
    lines.push(
      '',
      `HTTP, 1 in flight, paths interleaved (${INTERLEAVED_ROUNDS} rounds of ${INTERLEAVED_BLOCK} calls per path after ${INTERLEAVED_REWARM} unrecorded ones, the order rotating):`,
      '',
      '| era | path | calls | p50 (ms) | p50 overhead over direct (ms) | CPU per call in the path (ms) | fixture CPU per call (ms) |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...interleavedRows.map(
        (row) =>
          `| ${row.era} | ${row.path} | ${row.calls} | ${fmt(row.p50)} | ${row.path === 'direct' ? '' : `${row.overhead >= 0 ? '+' : ''}${fmt(row.overhead)}`} | ${cpu(row.proxyCpuMsPerCall)} | ${cpu(row.fixtureCpuMsPerCall)} |`,
      ),
      '',
      `CPU per call: user + system time of every process and thread in the path (the gateway, the raw proxy, socat and its per-connection children) and of the fixture during the recorded blocks, from /proc, counted in clock ticks of ${1000 / CLOCK_TICKS_PER_SECOND} ms over ${INTERLEAVED_ROUNDS * INTERLEAVED_BLOCK} calls.`,
    );
  }
  if (memory) {
    const kb = (bytes) => (bytes / 1024).toFixed(1);
    lines.push(
      '',
      `Idle 2025-era Streamable HTTP sessions against the gateway: ${memory.sessions} (RSS read from /proc/<pid>/status after a 1.5 s settle; heap read in the gateway after two full collections)`,
      '',
      '| sessions | VmRSS (KB) | RssAnon (KB) |',
      '|---:|---:|---:|',
      `| 0 | ${memory.before.vmRssKb} | ${memory.before.rssAnonKb} |`,
      ...memory.steps.map((s) => `| ${s.sessions} | ${s.vmRssKb} | ${s.rssAnonKb} |`),
      '',
      `Per idle session: heap ${kb(memory.heapBytesPerSession)} KB after a full GC; VmRSS ${kb(memory.vmRssBytesPerSession)} KB, RssAnon ${kb(memory.rssAnonBytesPerSession)} KB (end-to-end delta); VmRSS slope ${kb(memory.vmRssSlopeBytesPerSession)} KB (least squares over the steps)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main() {
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    loadAverageAtStart: loadavg().map((n) => Number(n.toFixed(2))),
  };
  const started = Date.now();
  const runs = (scenario) => opts.only === undefined || opts.only === scenario;
  if (runs('http')) await httpScenario();
  if (runs('stdio')) await stdioScenario();
  const memory = runs('memory') ? await memoryScenario() : undefined;
  process.stdout.write(report(memory, machine));
  process.stderr.write(`done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  if (opts.json) {
    writeFileSync(
      opts.json,
      `${JSON.stringify({ machine, calls: CALLS, warmup: WARMUP, echoArguments: ECHO_ARGS, rows, interleaved: interleavedRows, memory }, null, 2)}\n`,
    );
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench-proxy failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await Promise.allSettled([...groups].map((pgid) => stopGroup(pgid)));
  rmSync(tmp, { recursive: true, force: true });
}
