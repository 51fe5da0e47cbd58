#!/usr/bin/env node
// Policy-evaluation benchmark (not a test): the cost of `evaluate()` for one call against a policy
// of 100 rules (globs on upstream/tool/groups/subject, a fifth of them with CEL conditions, some
// audit rules), compiled once. Each measured call is timed on its own; p50/p99 are nearest-rank.
//
//   pnpm --filter @portcullis/policy build && pnpm bench:policy [--calls 200000] [--warmup 20000] [--json FILE]
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  // `pnpm <script> -- --flag` passes the `--` on; it separates nothing here.
  args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
  options: {
    calls: { type: 'string', default: '200000' },
    warmup: { type: 'string', default: '20000' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write('usage: pnpm bench:policy [--calls N] [--warmup N] [--json FILE]\n');
  process.exit(0);
}

const policyModule = pathToFileURL(join(ROOT, 'packages/policy/dist/index.js')).href;
const { loadPolicy, evaluate } = await import(policyModule).catch((error) => {
  process.stderr.write(`cannot load ${policyModule}: build it first (pnpm --filter @portcullis/policy build)\n`);
  throw error;
});

/** Generated rules; with the two catch-all rules at the end the policy has 100. */
const RULES = 98;
const UPSTREAMS = ['fs', 'git', 'db', 'web', 'mail'];
const ACTIONS = ['allow', 'deny', 'hide', 'approve', 'confirm'];

/** A 100-rule policy in YAML, as an admin would write it. */
function policyText() {
  const lines = ['default:', '  action: deny', 'rules:'];
  for (let i = 0; i < RULES; i++) {
    const upstream = UPSTREAMS[i % UPSTREAMS.length];
    const action = ACTIONS[i % ACTIONS.length];
    lines.push(`  - name: rule-${i}`);
    if (i % 10 === 9) lines.push('    mode: audit');
    lines.push('    match:');
    lines.push(`      upstream: ${i % 7 === 0 ? `"${upstream[0]}*"` : upstream}`);
    lines.push(`      tool: ${i % 3 === 0 ? `"${upstream}__op_${i}_*"` : `op_${i}`}`);
    if (i % 4 === 0) lines.push(`      groups: [team-${i % 6}, "ops-*"]`);
    if (i % 11 === 0) lines.push(`      subject: "svc-${i}-*"`);
    if (i % 5 === 2) {
      lines.push(`    when: args.path.startsWith("/srv/${i}") || size(args.query) > ${1000 + i}`);
    }
    lines.push(`    action: ${action}`);
    if (action === 'deny') lines.push(`    reason: rule ${i} says no`);
    if (action === 'approve' || action === 'confirm') {
      if (action === 'confirm') lines.push('    confirm: {otherwise: approve}');
      lines.push('    approve: {reviewers: {groups: [sre]}, timeout: 10m}');
    }
  }
  // The catch-all rules the requests below end on.
  lines.push('  - name: allow-dev-reads', '    match: {tool: "read_*", groups: dev}', '    action: allow');
  lines.push('  - name: guard-writes', '    match: {tool: "write_*"}');
  lines.push('    when: args.path.startsWith("/etc") || size(args.query) > 1000', '    action: deny');
  return lines.join('\n');
}

const text = policyText();
const policy = loadPolicy(text, 'bench-policy.yaml', { version: 'bench' });
const identity = Object.freeze({
  subject: 'alice',
  groups: Object.freeze(['dev', 'team-2']),
  authMethod: 'api-key',
  claims: Object.freeze({}),
});
const now = new Date();

/** Requests that walk every rule: an allow at the end, a condition deny, a default deny, an early match. */
const REQUESTS = [
  {
    kind: 'tool',
    identity,
    upstream: 'fs',
    name: 'read_file',
    namespacedName: 'fs__read_file',
    args: { path: '/tmp/a' },
    now,
  },
  {
    kind: 'tool',
    identity,
    upstream: 'fs',
    name: 'write_file',
    namespacedName: 'fs__write_file',
    args: { path: '/etc/passwd', query: 'x' },
    now,
  },
  { kind: 'tool', identity, upstream: 'git', name: 'push', namespacedName: 'git__push', args: {}, now },
  {
    kind: 'tool',
    identity,
    upstream: 'db',
    name: 'op_7',
    namespacedName: 'db__op_7',
    args: { path: '/srv/7/x' },
    now,
  },
];

const calls = Number(opts.calls);
const warmup = Number(opts.warmup);
let sink = 0;
for (let i = 0; i < warmup; i++) sink += evaluate(policy, REQUESTS[i % REQUESTS.length]).trace.length;

const samples = new Float64Array(calls);
const started = process.hrtime.bigint();
for (let i = 0; i < calls; i++) {
  const request = REQUESTS[i % REQUESTS.length];
  const t0 = process.hrtime.bigint();
  const decision = evaluate(policy, request);
  const t1 = process.hrtime.bigint();
  sink += decision.trace.length;
  samples[i] = Number(t1 - t0) / 1000;
}
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
samples.sort();
const rank = (p) => samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)];

// The same timing around an empty call, to show the cost of the clock itself.
const empty = new Float64Array(20000);
for (let i = 0; i < empty.length; i++) {
  const t0 = process.hrtime.bigint();
  const t1 = process.hrtime.bigint();
  empty[i] = Number(t1 - t0) / 1000;
}
empty.sort();

const decisions = REQUESTS.map((request) => {
  const d = evaluate(policy, request);
  return `${request.namespacedName} → ${d.decision}${d.rule ? ` (${d.rule})` : ' (default)'}`;
});
const result = {
  rules: policy.rules.length,
  conditions: policy.rules.filter((r) => r.condition !== null).length,
  calls,
  p50Us: rank(50),
  p90Us: rank(90),
  p99Us: rank(99),
  meanUs: (wallMs * 1000) / calls,
  clockP50Us: empty[empty.length >> 1],
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  decisions,
};
process.stderr.write(`(sink ${sink})\n`);
process.stdout.write(
  [
    `policy: ${result.rules} rules (${result.conditions} with CEL conditions), ${calls} evaluations, ${result.node}, ${result.cpus} × ${result.cpu}`,
    '',
    '| p50 (µs) | p90 (µs) | p99 (µs) | mean incl. timer (µs) | timer alone p50 (µs) |',
    '| -------: | -------: | -------: | --------------------: | -------------------: |',
    `| ${result.p50Us.toFixed(2)} | ${result.p90Us.toFixed(2)} | ${result.p99Us.toFixed(2)} | ${result.meanUs.toFixed(2)} | ${result.clockP50Us.toFixed(2)} |`,
    '',
    ...decisions.map((d) => `- ${d}`),
    '',
  ].join('\n'),
);
if (opts.json) writeFileSync(opts.json, `${JSON.stringify(result, null, 2)}\n`);
