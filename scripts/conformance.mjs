#!/usr/bin/env node
// Runs the official MCP server conformance suite (@modelcontextprotocol/conformance) against
// the Portcullis fixture and, once it exists, the gateway in front of the fixture.
//
//   node scripts/conformance.mjs [--target fixture|gateway|both] [--versions 2025-11-25,2026-07-28]
//                                [--suite-version 0.2.0-alpha.12] [--timeout 30000]
//
// The suite needs Node >= 22; the npm package `node@22` supplies that binary inside .conformance/.
// Exit codes: 0 every scored check passed; 1 some scored check failed; 2 harness failure
// (toolchain, build, a target that never came up, or a suite run without a summary).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(ROOT, '.conformance');
const DEFAULT_SUITE_VERSION = '0.2.0-alpha.12';
const DEFAULT_VERSIONS = ['2025-11-25', '2026-07-28'];
const FIXTURE_BIN = join(ROOT, 'packages/fixture/dist/bin.js');
const GATEWAY_BIN = join(ROOT, 'apps/portcullis/dist/bin.js');
const STARTUP_TIMEOUT_MS = 20_000;

class HarnessError extends Error {}

const children = new Set();
function killChildren() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}
process.on('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}

function log(message) {
  process.stdout.write(`[conformance] ${message}\n`);
}

function parseCli() {
  const { values } = parseArgs({
    // `pnpm conformance -- --flag` passes the `--` on; it separates nothing here.
    args: process.argv.slice(2).filter((arg, index) => index > 0 || arg !== '--'),
    options: {
      target: { type: 'string', default: 'fixture' },
      versions: { type: 'string', default: DEFAULT_VERSIONS.join(',') },
      'suite-version': { type: 'string', default: DEFAULT_SUITE_VERSION },
      timeout: { type: 'string', default: '30000' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node scripts/conformance.mjs [--target fixture|gateway|both] [--versions a,b] [--suite-version V] [--timeout MS]\n',
    );
    process.exit(0);
  }
  if (!['fixture', 'gateway', 'both'].includes(values.target))
    throw new HarnessError(`unknown --target ${values.target}`);
  const versions = values.versions
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  return {
    targets: values.target === 'both' ? ['fixture', 'gateway'] : [values.target],
    versions,
    suiteVersion: values['suite-version'],
    timeout: values.timeout,
  };
}

/** Installs node@22 and the suite into .conformance/ unless the pinned versions are already there. */
function ensureToolchain(suiteVersion) {
  const nodeBin = join(CACHE, 'node_modules/node/bin/node');
  const suitePkg = join(CACHE, 'node_modules/@modelcontextprotocol/conformance/package.json');
  const installed = existsSync(suitePkg) ? JSON.parse(readFileSync(suitePkg, 'utf8')).version : undefined;
  if (!existsSync(nodeBin) || installed !== suiteVersion) {
    log(`installing node@22 and @modelcontextprotocol/conformance@${suiteVersion} into .conformance/`);
    mkdirSync(CACHE, { recursive: true });
    const npm = spawnSync(
      'npm',
      [
        'install',
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--prefix',
        CACHE,
        'node@22',
        `@modelcontextprotocol/conformance@${suiteVersion}`,
      ],
      { stdio: 'inherit', cwd: ROOT },
    );
    if (npm.status !== 0) throw new HarnessError('npm install of the conformance toolchain failed');
  }
  const probe = spawnSync(nodeBin, ['--version'], { encoding: 'utf8' });
  const major = Number(/^v(\d+)/.exec(probe.stdout ?? '')?.[1]);
  if (probe.status !== 0 || !(major >= 22)) {
    throw new HarnessError(`${nodeBin} is not a working Node >= 22 (got ${probe.stdout?.trim() || probe.error})`);
  }
  const suitePackage = JSON.parse(readFileSync(suitePkg, 'utf8'));
  const binRel = typeof suitePackage.bin === 'string' ? suitePackage.bin : suitePackage.bin?.conformance;
  return {
    nodeBin,
    nodeVersion: probe.stdout.trim(),
    suiteBin: join(dirname(suitePkg), binRel),
    suiteVersion: suitePackage.version,
  };
}

function ensureFixtureBuilt() {
  if (existsSync(FIXTURE_BIN)) return;
  log('building @portcullis/fixture-server');
  const build = spawnSync('pnpm', ['--filter', '@portcullis/fixture-server', 'build'], { stdio: 'inherit', cwd: ROOT });
  if (build.status !== 0 || !existsSync(FIXTURE_BIN)) throw new HarnessError('fixture build failed');
}

/**
 * Spawns a server and resolves with the first `http://…/mcp` URL it prints on stdout or stderr
 * (the fixture prints `listening on http://127.0.0.1:PORT/mcp` on stderr).
 */
function startServer(label, command, args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new HarnessError(`${label} printed no listening URL within ${STARTUP_TIMEOUT_MS}ms:\n${output}`));
    }, STARTUP_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+\/mcp)\b/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ url: match[1], child, stop: () => stopChild(child) });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new HarnessError(`${label} exited early (code ${code}, signal ${signal}):\n${output}`));
    });
  });
}

function stopChild(child) {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child);
      resolvePromise();
      return;
    }
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      children.delete(child);
      resolvePromise();
    });
    child.kill('SIGTERM');
  });
}

/**
 * The gateway config used for the `gateway` target: one Streamable HTTP upstream (the fixture),
 * unprefixed. The schema is packages/config/src/schema.ts; keep this in step with it.
 */
function gatewayConfigYaml(fixtureUrl) {
  return [
    '# Generated by scripts/conformance.mjs: the gateway in front of the conformance fixture.',
    'server:',
    '  host: 127.0.0.1',
    '  port: 0',
    'auth:',
    '  anonymous: true',
    'upstreams:',
    '  fixture:',
    '    transport: streamable-http',
    `    url: ${fixtureUrl}`,
    '    # The suite calls the fixture names (test_simple_text, ...) verbatim.',
    '    prefix: false',
    '',
  ].join('\n');
}

// SGR colour codes the suite prints around its results.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** Reads the suite's `=== SUMMARY ===` block: per-scenario counts and which scenarios are unscored. */
function parseSummary(stdout) {
  const text = stdout.replace(ANSI, '');
  const start = text.lastIndexOf('=== SUMMARY ===');
  if (start < 0) return undefined;
  const summary = text.slice(start);
  const scenarios = [];
  for (const match of summary.matchAll(/^([✓✗])\s+(\S+):\s+(\d+) passed, (\d+) failed/gmu)) {
    scenarios.push({ name: match[2], passed: Number(match[3]), failed: Number(match[4]), scored: true });
  }
  const unscoredAt = summary.search(/^Not scored for /m);
  if (unscoredAt >= 0) {
    for (const match of summary.slice(unscoredAt).matchAll(/^\s+[✓✗]\s+(\S+)\s+\(([^)]+)\)/gmu)) {
      const scenario = scenarios.find((s) => s.name === match[1]);
      if (scenario) {
        scenario.scored = false;
        scenario.unscoredReason = match[2];
      }
    }
  }
  const sum = (list, key) => list.reduce((total, s) => total + s[key], 0);
  const scored = scenarios.filter((s) => s.scored);
  const unscored = scenarios.filter((s) => !s.scored);
  return {
    scenarios,
    scored: { scenarios: scored.length, passed: sum(scored, 'passed'), failed: sum(scored, 'failed') },
    unscored: { scenarios: unscored.length, passed: sum(unscored, 'passed'), failed: sum(unscored, 'failed') },
  };
}

function runSuite(toolchain, url, version, outputDir, timeout) {
  return new Promise((resolvePromise) => {
    rmSync(outputDir, { recursive: true, force: true });
    mkdirSync(outputDir, { recursive: true });
    const args = [
      toolchain.suiteBin,
      'server',
      '--url',
      url,
      '--requirements',
      version,
      '--timeout',
      timeout,
      '-o',
      outputDir,
    ];
    const child = spawn(toolchain.nodeBin, args, { cwd: CACHE, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) => {
      children.delete(child);
      writeFileSync(join(outputDir, 'suite.log'), `${stdout}\n--- stderr ---\n${stderr}`);
      resolvePromise({ exitCode: code, stdout, stderr });
    });
  });
}

function failingChecks(outputDir, scenarioNames) {
  const failures = [];
  for (const name of scenarioNames) {
    const dir = readdirSync(outputDir).find((d) => d.startsWith(`server-${name}-`));
    if (!dir) continue;
    const file = join(outputDir, dir, 'checks.json');
    if (!existsSync(file)) continue;
    for (const check of JSON.parse(readFileSync(file, 'utf8'))) {
      if (check.status === 'FAILURE') failures.push({ scenario: name, id: check.id, message: check.errorMessage });
    }
  }
  return failures;
}

async function runTarget(target, options, toolchain) {
  const result = { status: 'ok', versions: {} };
  const started = [];
  try {
    ensureFixtureBuilt();
    const fixture = await startServer('fixture', process.execPath, [FIXTURE_BIN, '--http', '--port', '0']);
    started.push(fixture);
    let url = fixture.url;
    if (target === 'gateway') {
      if (!existsSync(GATEWAY_BIN)) {
        log(`gateway bin ${GATEWAY_BIN} is missing (build apps/portcullis first); skipping the gateway target`);
        return { status: 'skipped', reason: 'gateway bin missing', versions: {} };
      }
      const configPath = join(CACHE, 'gateway.yaml');
      writeFileSync(configPath, gatewayConfigYaml(fixture.url));
      const gateway = await startServer('gateway', process.execPath, [GATEWAY_BIN, 'serve', '--config', configPath]);
      started.push(gateway);
      url = gateway.url;
    }
    result.url = url;
    for (const version of options.versions) {
      log(`${target}: running the ${version} requirement set against ${url}`);
      const outputDir = join(CACHE, 'results', `${target}-${version}`);
      const run = await runSuite(toolchain, url, version, outputDir, options.timeout);
      const summary = parseSummary(run.stdout);
      if (!summary) {
        result.status = 'harness-error';
        result.versions[version] = {
          suiteExitCode: run.exitCode,
          error: `no summary in suite output (see ${outputDir}/suite.log)`,
        };
        log(`${target} ${version}: suite produced no summary (exit ${run.exitCode}); see ${outputDir}/suite.log`);
        continue;
      }
      const failedScenarios = summary.scenarios.filter((s) => s.failed > 0).map((s) => s.name);
      result.versions[version] = {
        suiteExitCode: run.exitCode,
        outputDir,
        scored: summary.scored,
        unscored: summary.unscored,
        failures: failingChecks(outputDir, failedScenarios),
        scenarios: summary.scenarios,
      };
    }
  } catch (error) {
    if (!(error instanceof HarnessError)) throw error;
    result.status = 'harness-error';
    result.error = error.message;
    log(`${target}: ${error.message}`);
  } finally {
    for (const server of started.reverse()) await server.stop();
  }
  return result;
}

function printSummary(results) {
  log('summary (scored = required by the requirement set; unscored = extensions/pending, reported only)');
  for (const [target, result] of Object.entries(results.targets)) {
    if (result.status === 'skipped') {
      log(`  ${target}: skipped (${result.reason})`);
      continue;
    }
    if (result.error) log(`  ${target}: harness error: ${result.error.split('\n')[0]}`);
    for (const [version, run] of Object.entries(result.versions)) {
      if (!run.scored) {
        log(`  ${target} ${version}: ${run.error}`);
        continue;
      }
      const s = run.scored;
      const u = run.unscored;
      log(
        `  ${target} ${version}: scored ${s.passed} passed, ${s.failed} failed (${s.scenarios} scenarios); unscored ${u.passed} passed, ${u.failed} failed (${u.scenarios} scenarios)`,
      );
      for (const failure of run.failures.filter((f) => run.scenarios.find((s2) => s2.name === f.scenario)?.scored)) {
        log(`    FAIL ${failure.scenario} / ${failure.id}: ${failure.message ?? ''}`);
      }
    }
  }
}

async function main() {
  let options;
  try {
    options = parseCli();
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const results = { generatedAt: new Date().toISOString(), targets: {} };
  let toolchain;
  try {
    toolchain = ensureToolchain(options.suiteVersion);
  } catch (error) {
    if (!(error instanceof HarnessError)) throw error;
    log(error.message);
    return 2;
  }
  results.suite = {
    package: '@modelcontextprotocol/conformance',
    version: toolchain.suiteVersion,
    node: toolchain.nodeVersion,
  };
  results.versions = options.versions;
  for (const target of options.targets) results.targets[target] = await runTarget(target, options, toolchain);
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(join(CACHE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  printSummary(results);
  log(`results written to ${join(CACHE, 'results.json')}`);

  const runs = Object.values(results.targets).flatMap((t) => Object.values(t.versions));
  if (Object.values(results.targets).some((t) => t.status === 'harness-error')) return 2;
  if (runs.some((run) => run.scored && run.scored.failed > 0)) return 1;
  return 0;
}

main().then(
  (code) => {
    killChildren();
    process.exit(code);
  },
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    killChildren();
    process.exit(2);
  },
);
