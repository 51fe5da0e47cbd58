#!/usr/bin/env node
// Redaction benchmark (not a test): throughput of text through the default detector set on one
// core, and the time redaction adds to a 4 KB tools/call result.
//
//   pnpm --filter @portcullis/redact build && pnpm bench:redact [--mb 16] [--iterations 5000] [--json FILE]
//
// Single process, no I/O. The corpus is generated with a fixed seed: log lines, prose, JSON rows,
// numbers, dates, versions and ids, with a sensitive value (e-mail, phone, card, token …) on about
// one line in twenty.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { Redactor, TimeBudget } = await import(pathToFileURL(join(ROOT, 'packages/redact/dist/index.js')).href);

const { values: opts } = parseArgs({
  // `pnpm <script> -- --flag` passes the `--` on; it separates nothing here.
  args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
  options: {
    mb: { type: 'string', default: '16' },
    iterations: { type: 'string', default: '5000' },
    json: { type: 'string' },
  },
  strict: true,
});

// Deterministic pseudo-random numbers (mulberry32).
let seed = 0x5eed;
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const digits = (n) => Array.from({ length: n }, () => Math.floor(random() * 10)).join('');

const WORDS =
  'the request was processed by upstream service and returned a result with status code after retry for user account order invoice shipment payment ticket customer support team review pending approved'.split(
    ' ',
  );
const token = (prefix, n) =>
  prefix + Array.from({ length: n }, () => pick('abcdefghijkmnopqrstuvwxyzABCDEFGH0123456789'.split(''))).join('');
const SENSITIVE = [
  () => `${pick(['alice', 'bob', 'carol.smith', 'd.jones'])}@${pick(['example.com', 'mail.example.org'])}`,
  () => `+1 415 555 ${digits(4)}`,
  () => '4111 1111 1111 1111',
  () => '536-22-4567',
  () => 'DE89370400440532013000',
  () => token('ghp_', 36),
  () => `password=${token('', 12)}`,
  () => token('AKIA', 16).toUpperCase().replace(/[018]/g, 'Q'),
];

function line() {
  const kind = random();
  let text;
  if (kind < 0.35) {
    text = `2026-11-21T12:${digits(2)}:${digits(2)}.${digits(3)}Z INFO [worker-${digits(2)}] ${Array.from({ length: 8 }, () => pick(WORDS)).join(' ')} id=${digits(8)} took ${digits(3)}ms v1.${digits(1)}.${digits(2)}`;
  } else if (kind < 0.7) {
    text = `${Array.from({ length: 14 }, () => pick(WORDS)).join(' ')}.`;
  } else {
    text = JSON.stringify({
      id: Number(digits(6)),
      order: `ORD-${digits(8)}`,
      amount: Number(`${digits(3)}.${digits(2)}`),
      status: pick(['open', 'paid', 'shipped']),
      created: `2026-0${1 + Math.floor(random() * 9)}-1${digits(1)}`,
      note: Array.from({ length: 5 }, () => pick(WORDS)).join(' '),
    });
  }
  if (random() < 0.05) text += ` ${pick(SENSITIVE)()}`;
  return text;
}

function corpus(bytes) {
  const lines = [];
  let size = 0;
  while (size < bytes) {
    const l = line();
    lines.push(l);
    size += l.length + 1;
  }
  return lines.join('\n');
}

const redactor = new Redactor({
  rules: [{ name: 'default', detectors: 'default' }],
  hashKey: 'bench-key-0123456789abcdef',
});
const subject = { upstream: 'bench', kind: 'tool', name: 'bench' };

// --- Throughput -----------------------------------------------------------------------------
const mb = Number(opts.mb);
const text = corpus(mb * 1024 * 1024);
const result = { content: [{ type: 'text', text }] };
await redactor.redactResult('tools/call', { content: [{ type: 'text', text: text.slice(0, 1 << 20) }] }, subject); // warm-up
const runs = [];
let redactedCount = 0;
let maxBlockMs = 0;
for (let i = 0; i < 3; i++) {
  // Event-loop blocking: the longest gap between timer ticks while redacting.
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxBlockMs = Math.max(maxBlockMs, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  const out = await redactor.redactResult('tools/call', result, subject, { budget: new TimeBudget(8) });
  const elapsed = performance.now() - started;
  clearInterval(timer);
  runs.push(elapsed);
  redactedCount = out.summary.total;
}
const bestMs = Math.min(...runs);
const mbPerS = text.length / (1024 * 1024) / (bestMs / 1000);

// --- 4 KB result latency --------------------------------------------------------------------
function result4k() {
  let t = '';
  while (t.length < 4096) t += `${line()}\n`;
  return {
    content: [{ type: 'text', text: t.slice(0, 4096) }],
  };
}
const small = Array.from({ length: 64 }, result4k);
const iterations = Number(opts.iterations);
for (let i = 0; i < 2000; i++) await redactor.redactResult('tools/call', small[i % small.length], subject);
const samples = [];
for (let i = 0; i < iterations; i++) {
  const input = small[i % small.length];
  const started = performance.now();
  await redactor.redactResult('tools/call', input, subject);
  samples.push(performance.now() - started);
}
samples.sort((a, b) => a - b);
const pct = (p) => samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)];

const figures = {
  node: process.version,
  cpu: cpus()[0]?.model,
  loadavg: loadavg().map((x) => Number(x.toFixed(2))),
  corpusMB: Number((text.length / (1024 * 1024)).toFixed(2)),
  redacted: redactedCount,
  throughputMBps: Number(mbPerS.toFixed(1)),
  runsMs: runs.map((x) => Number(x.toFixed(1))),
  maxEventLoopBlockMs: Number(maxBlockMs.toFixed(1)),
  p50Ms4k: Number(pct(50).toFixed(4)),
  p99Ms4k: Number(pct(99).toFixed(4)),
  iterations,
};
process.stdout.write(
  [
    '| measure | value |',
    '| --- | ---: |',
    `| corpus (MB of text, default detectors) | ${figures.corpusMB} |`,
    `| values redacted in the corpus | ${figures.redacted} |`,
    `| throughput, best of 3 (MB/s, one core) | ${figures.throughputMBps} |`,
    `| longest event-loop block during a run (ms) | ${figures.maxEventLoopBlockMs} |`,
    `| 4 KB tools/call result: p50 (ms) | ${figures.p50Ms4k} |`,
    `| 4 KB tools/call result: p99 (ms) | ${figures.p99Ms4k} |`,
    '',
  ].join('\n'),
);
process.stderr.write(`${JSON.stringify(figures)}\n`);
if (opts.json) writeFileSync(opts.json, `${JSON.stringify(figures, null, 2)}\n`);
