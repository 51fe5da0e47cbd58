import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectHttpAgent, firstText } from './support/agents.js';
import { stdioFixture } from './support/gateway.js';
import { cleanupAll, tempDir } from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

// `portcullis sessions list` and `portcullis replay` driven as a reviewer would: a real SDK agent
// through `portcullis serve` (the fixture upstream `demo`, a policy that allows, denies, hides and
// redacts), recorded in Postgres and in PGlite; then the CLI's JSON and text output.

const POLICY = `
version: 1
default:
  action: allow
rules:
  - name: no-errors
    match: { tool: demo__test_error_handling }
    action: deny
    reason: error handling is switched off here
  - name: hide-images
    match: { tool: test_image_content }
    action: hide
redact:
  - name: mail
    detectors: [email]
`;

/** The same, plus one rule: test_simple_text is denied. */
const STRICTER = `${POLICY.replace(
  'redact:',
  `  - name: no-simple
    match: { tool: test_simple_text }
    action: deny
redact:`,
)}`;

const EMAIL = 'alice@example.com';

let releasePostgres: (() => void) | undefined;
const databases: FreshDatabase[] = [];
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(async () => {
  for (const db of databases) await db.drop().catch(() => undefined);
  releasePostgres?.();
});
afterEach(cleanupAll);

function writePolicy(text: string): string {
  const file = join(tempDir(), 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

function gatewayConfigWith(database: Record<string, unknown>): string {
  return sessionLogConfig(
    {
      demo: stdioFixture('demo'),
      // The sandbox is another fixture process; the gateway serves it too (as `sandbox__…`).
      sandbox: stdioFixture('sandbox-fixture', { sandbox: true }),
    },
    database,
    {},
    { policy: { file: writePolicy(POLICY) } },
  );
}

/** One 2025-era agent: two echoes (one with an e-mail, redacted), a plain call, a denied call, a hidden one. */
async function recordSession(configFile: string): Promise<void> {
  const gateway = await serve(configFile);
  const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
  expect(firstText(await agent.callTool('demo__fixture_echo', { n: 1 }))).toContain('"n":1');
  const redacted = firstText(await agent.callTool('demo__fixture_echo', { contact: EMAIL }));
  expect(redacted).not.toContain(EMAIL);
  await agent.callTool('demo__test_simple_text', {});
  const denied = await agent.callTool('demo__test_error_handling', {});
  expect(denied.isError).toBe(true);
  await expect(agent.callTool('demo__test_image_content', {})).rejects.toThrow();
  await agent.close();
  expect(await gateway.proc.stop()).toBe(0);
}

interface ListedSession {
  id: string;
  identity: string;
  era: string;
  toolCalls: number;
  denied: number;
  replayOf: string | null;
}

async function list(configFile: string, ...filters: string[]): Promise<ListedSession[]> {
  const run = await runCli(['sessions', 'list', '--config', configFile, '--output', 'json', ...filters]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return (JSON.parse(run.stdout) as { sessions: ListedSession[] }).sessions;
}

async function theSession(configFile: string): Promise<string> {
  const sessions = await list(configFile, '--identity', 'anonymous', '--tool', 'demo__fixture_echo');
  expect(sessions).toHaveLength(1);
  expect(sessions[0]).toMatchObject({ identity: 'anonymous', era: 'legacy', toolCalls: 5, replayOf: null });
  return sessions[0]?.id ?? '';
}

async function checkListFilters(configFile: string, sessionId: string): Promise<void> {
  const ids = async (...filters: string[]) => (await list(configFile, ...filters)).map((s) => s.id);
  expect(await ids('--decision', 'deny')).toEqual([sessionId]);
  expect(await ids('--decision', 'hide')).toEqual([sessionId]);
  expect(await ids('--decision', 'approve')).toEqual([]);
  expect(await ids('--upstream', 'demo', '--since', '1h')).toEqual([sessionId]);
  expect(await ids('--upstream', 'sandbox')).toEqual([]);
  expect(await ids('--tool', 'test_simple_text')).toEqual([sessionId]);
  expect(await ids('--identity', 'nobody')).toEqual([]);
  const text = await runCli(['sessions', 'list', '--config', configFile]);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/^SESSION\s+STARTED\s+STATE\s+IDENTITY/);
  expect(text.stdout).toContain(sessionId);
  const bad = await runCli(['sessions', 'list', '--config', configFile, '--decision', 'maybe']);
  expect(bad.code).not.toBe(0);
}

async function checkTimeline(configFile: string, sessionId: string): Promise<void> {
  const run = await runCli(['replay', sessionId, '--config', configFile]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  // Piped: plain text, no ANSI escapes.
  expect(run.stdout).not.toContain('\u001b[');
  expect(run.stdout).toContain(`session   ${sessionId}`);
  expect(run.stdout).toContain('identity  anonymous');
  expect(run.stdout).toMatch(
    /\+\d+\.\d{3}s\s+#\d+\s+→ request\s+tools\/call\s+demo__fixture_echo\s+@demo\s+\{"n":1\}\s+allow/,
  );
  expect(run.stdout).toContain('deny (no-errors) not forwarded');
  expect(run.stdout).toContain('hide (hide-images) not forwarded');
  expect(run.stdout).toMatch(/← response\s+tools\/call\s+demo__fixture_echo .*redacted: email×\d/);
  expect(run.stdout).toMatch(/\(\d+\.\d ms\)/);
  expect(run.stdout).toContain('5 tool call(s), 2 denied or hidden');
}

interface JsonlEvent {
  sessionId: string;
  seq: number;
  hash: string;
  prevHash: string;
  method: string | null;
  payload: unknown;
}

async function exportJsonl(configFile: string, sessionId: string): Promise<JsonlEvent[]> {
  const run = await runCli(['replay', sessionId, '--config', configFile, '--format', 'jsonl']);
  expect(run.code).toBe(0);
  const events = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as JsonlEvent);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  for (const [i, event] of events.entries()) {
    expect(event.sessionId).toBe(sessionId);
    if (i > 0) expect(event.prevHash).toBe(events[i - 1]?.hash);
  }
  return events;
}

async function checkMarkdown(configFile: string, sessionId: string): Promise<void> {
  const run = await runCli(['replay', sessionId, '--config', configFile, '--format', 'md']);
  expect(run.code).toBe(0);
  expect(run.stdout).toContain(`# Session ${sessionId}`);
  expect(run.stdout).toContain('| identity | anonymous (anonymous) |');
  expect(run.stdout).toContain('| transport | streamable-http |');
  expect(run.stdout).toContain('## Tool calls (5)');
  expect(run.stdout).toContain('| `demo__test_error_handling` | `{}` | deny (not forwarded) | no-errors |');
  expect(run.stdout).toContain('## Timeline');
}

interface WhatIf {
  evaluated: number;
  changed: Array<{ seq: number; target: string; old: { decision: string }; new: { decision: string; rule: string } }>;
}

async function checkWhatIf(configFile: string, sessionId: string): Promise<void> {
  const same = await runCli([
    'replay',
    sessionId,
    '--config',
    configFile,
    '--policy',
    writePolicy(POLICY),
    '--output',
    'json',
  ]);
  expect(same.code).toBe(0);
  expect(JSON.parse(same.stdout)).toMatchObject({ evaluated: 5, changed: [] });

  const stricter = writePolicy(STRICTER);
  const json = await runCli(['replay', sessionId, '--config', configFile, '--policy', stricter, '--output', 'json']);
  expect(json.stderr).toBe('');
  expect(json.code).toBe(4);
  const report = JSON.parse(json.stdout) as WhatIf;
  expect(report.evaluated).toBe(5);
  expect(report.changed).toEqual([
    expect.objectContaining({
      target: 'demo__test_simple_text',
      old: { decision: 'allow', rule: null },
      new: expect.objectContaining({ decision: 'deny', rule: 'no-simple' }),
    }),
  ]);
  const text = await runCli(['replay', sessionId, '--config', configFile, '--policy', stricter]);
  expect(text.code).toBe(4);
  expect(text.stdout).toMatch(/#\d+\s+tools\/call\s+demo__test_simple_text\s+allow → deny \(no-simple\)/);
  expect(text.stdout).toContain('1 of 5 recorded call(s) would be decided differently');

  const invalid = await runCli(['replay', sessionId, '--config', configFile, '--policy', writePolicy('version: 7\n')]);
  expect(invalid.code).toBe(2);
}

interface Executed {
  replaySession: string;
  differs: number;
  same: number;
  calls: Array<{ tool: string; status: string; changes: Array<{ path: string; kind: string; after?: unknown }> }>;
}

async function checkExecute(configFile: string, sessionId: string): Promise<string> {
  const refused = await runCli([
    'replay',
    sessionId,
    '--config',
    configFile,
    '--execute',
    '--upstream',
    'demo',
    '--yes',
  ]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('upstream "demo" is not marked as a sandbox');
  const unknownUpstream = await runCli([
    'replay',
    sessionId,
    '--config',
    configFile,
    '--execute',
    '--upstream',
    'nope',
    '--yes',
  ]);
  expect(unknownUpstream.code).toBe(2);
  expect(unknownUpstream.stderr).toContain('no upstream "nope"');
  const unconfirmed = await runCli(['replay', sessionId, '--config', configFile, '--execute', '--upstream', 'sandbox']);
  expect(unconfirmed.code).toBe(2);
  expect(unconfirmed.stderr).toContain('--yes');

  const run = await runCli([
    'replay',
    sessionId,
    '--config',
    configFile,
    '--execute',
    '--upstream',
    'sandbox',
    '--yes',
    '--output',
    'json',
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(4);
  const report = JSON.parse(run.stdout) as Executed;
  // Forwarded calls only: the denied and the hidden one never ran.
  expect(report.calls.map((c) => [c.tool, c.status])).toEqual([
    ['demo__fixture_echo', 'same'],
    ['demo__fixture_echo', 'differs'],
    ['demo__test_simple_text', 'same'],
  ]);
  // The recorded result is what the agent got (redacted); the sandbox answers with the e-mail.
  expect(report.calls[1]?.changes).toContainEqual(
    expect.objectContaining({ path: '$.structuredContent.contact', kind: 'changed', after: EMAIL }),
  );

  const replayed = await list(configFile, '--identity', `replay:${process.env.USER ?? ''}`);
  const linked = (await list(configFile)).find((s) => s.id === report.replaySession);
  expect(linked).toMatchObject({ replayOf: sessionId, toolCalls: 3 });
  expect(replayed.length === 0 || replayed.some((s) => s.id === report.replaySession)).toBe(true);

  const text = await runCli([
    'replay',
    sessionId,
    '--config',
    configFile,
    '--execute',
    '--upstream',
    'sandbox',
    '--yes',
  ]);
  expect(text.code).toBe(4);
  expect(text.stdout).not.toContain('\u001b[');
  expect(text.stdout).toContain('DIFFERS');
  expect(text.stdout).toContain(`~ $.structuredContent.contact:`);
  expect(text.stdout).toContain('3 call(s) re-run against sandbox: 2 same, 1 differ');
  return report.replaySession;
}

async function checkUnknown(configFile: string): Promise<void> {
  for (const args of [[], ['--format', 'jsonl'], ['--policy', writePolicy(POLICY)]]) {
    const run = await runCli(['replay', 'no-such-session', '--config', configFile, ...args]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('no session no-such-session in the session log');
    expect(run.stdout).toBe('');
  }
}

describe('sessions and replay', () => {
  it('Postgres: list filters, timeline, jsonl (hashes as stored), md, what-if, execute against a sandbox, unknown ids', async () => {
    const db = await freshDatabase();
    databases.push(db);
    const configFile = gatewayConfigWith({ url: db.url });
    await recordSession(configFile);
    const sessionId = await theSession(configFile);
    await checkListFilters(configFile, sessionId);
    await checkTimeline(configFile, sessionId);

    const exported = await exportJsonl(configFile, sessionId);
    const stored = await db.query<{ seq: number; hash: string; prev_hash: string; payload: unknown }>(
      'select seq, hash, prev_hash, payload from portcullis_events where session_id = $1 order by seq',
      [sessionId],
    );
    expect(exported.map((e) => [e.seq, e.hash, e.prevHash])).toEqual(stored.map((r) => [r.seq, r.hash, r.prev_hash]));
    expect(exported.map((e) => e.payload)).toEqual(stored.map((r) => r.payload));

    await checkMarkdown(configFile, sessionId);
    await checkWhatIf(configFile, sessionId);
    const replayId = await checkExecute(configFile, sessionId);
    const [row] = await db.query<{ replay_of: string }>('select replay_of from portcullis_sessions where id = $1', [
      replayId,
    ]);
    expect(row?.replay_of).toBe(sessionId);
    const replayEvents = await exportJsonl(configFile, replayId);
    expect(replayEvents.filter((e) => e.method === 'tools/call')).toHaveLength(6);
    const verify = await runCli(['audit', 'verify', '--config', configFile]);
    expect(verify.code).toBe(0);
    await checkUnknown(configFile);
  }, 180_000);

  it('PGlite: the same session read from the embedded database; follow of an ended session ends', async () => {
    const dir = tempDir();
    const configFile = gatewayConfigWith({ dataDir: join(dir, 'data') });
    await recordSession(configFile);
    const sessionId = await theSession(configFile);
    await checkTimeline(configFile, sessionId);
    await exportJsonl(configFile, sessionId);
    await checkWhatIf(configFile, sessionId);
    await checkExecute(configFile, sessionId);
    const followed = await runCli(['replay', sessionId, '--config', configFile, '--follow', '--interval', '100']);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain('session ended (closed)');
    await checkUnknown(configFile);
  }, 180_000);
});
