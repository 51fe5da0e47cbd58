import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { openStore } from '@portcullis/store';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectHttpAgent, firstText, stdioAgentTransportV2 } from './support/agents.js';
import { stdioFixture } from './support/gateway.js';
import { cleanupAll, GATEWAY_BIN, ROOT, tempDir, waitFor } from './support/processes.js';
import {
  COUNTING_UPSTREAM,
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  type ServedGateway,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

// Real SDK agents through `portcullis serve`, recorded in a real Postgres (a database of this
// file's own) and in the embedded PGlite; then `portcullis audit verify` / `db status` on the result.

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

async function database(): Promise<FreshDatabase> {
  const db = await freshDatabase();
  databases.push(db);
  return db;
}

/** Runs a SQL query against whichever backend a gateway used (the gateway must be stopped for PGlite). */
type Query = <T extends Record<string, unknown>>(text: string) => Promise<T[]>;

async function pgliteQuery(dataDir: string): Promise<{ query: Query; close: () => Promise<void> }> {
  const store = await openStore({ dataDir, migrate: false, replaySpool: false });
  return {
    query: async <T extends Record<string, unknown>>(text: string) =>
      (await sql<T>`${sql.raw(text)}`.execute(store.db)).rows,
    close: () => store.close(),
  };
}

/** One recorded run: a 2025-era and a 2026-era agent, tool calls, a tool that logs, and a list. */
async function recordedRun(gateway: ServedGateway): Promise<{ legacyCalls: number; modernCalls: number }> {
  const legacy = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
  const modern = await connectHttpAgent('v2 Streamable HTTP (2026 era)', gateway.mcpUrl);
  await legacy.allToolNames();
  for (let n = 0; n < 5; n++) {
    const result = await legacy.callTool('demo__fixture_echo', { n, secretless: 'yes' });
    expect(firstText(result)).toContain(`"n":${n}`);
  }
  await legacy.callTool('demo__test_tool_with_logging', {});
  for (let n = 0; n < 3; n++) await modern.callTool('demo__fixture_echo', { n });
  await legacy.close();
  await modern.close();
  return { legacyCalls: 6, modernCalls: 3 };
}

async function checkRecorded(query: Query): Promise<void> {
  const sessions = await query<{ id: string; era: string; client_name: string; end_reason: string | null }>(
    'select id, era, client_name, end_reason, event_count from portcullis_sessions order by started_at',
  );
  const legacy = sessions.filter((s) => s.era === 'legacy');
  const modern = sessions.filter((s) => s.era === 'modern');
  expect(legacy).toHaveLength(1);
  expect(legacy[0]?.client_name).toBe('e2e-v2 Streamable HTTP (2025 era)');
  expect(legacy[0]?.end_reason).toBe('closed');
  // 2026-era sessions last one request each: three tool calls, plus whatever the client listed.
  expect(modern.length).toBeGreaterThanOrEqual(3);
  for (const session of modern) expect(session.end_reason).toBe('request-complete');

  const legacyId = legacy[0]?.id ?? '';
  const events = await query<{ seq: number; direction: string; kind: string; method: string | null }>(
    `select seq, direction, kind, method from portcullis_events where session_id = '${legacyId}' order by seq`,
  );
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const calls = events.filter((e) => e.method === 'tools/call');
  expect(calls.filter((e) => e.kind === 'request' && e.direction === 'from_agent')).toHaveLength(6);
  expect(calls.filter((e) => e.kind === 'response' && e.direction === 'to_agent')).toHaveLength(6);
  // The logging tool's messages, relayed to the agent during its call, are in the log too.
  const notifications = events.filter((e) => e.kind === 'notification');
  expect(notifications.some((e) => e.method === 'notifications/message')).toBe(true);

  const toolCalls = await query<{ namespaced_tool: string; tool: string; upstream: string; outcome: string }>(
    'select namespaced_tool, tool, upstream, outcome, forwarded, decision from portcullis_tool_calls',
  );
  expect(toolCalls).toHaveLength(9);
  for (const call of toolCalls) {
    expect(call.upstream).toBe('demo');
    expect(call.outcome).toBe('result');
  }
  expect(toolCalls.filter((c) => c.tool === 'fixture_echo')).toHaveLength(8);

  const upstreams = await query<{ name: string; target: string }>(
    'select name, transport, target from portcullis_upstreams',
  );
  expect(upstreams).toEqual([expect.objectContaining({ name: 'demo', transport: 'stdio', target: process.execPath })]);
}

async function expectVerifyOk(configFile: string): Promise<void> {
  const verify = await runCli(['audit', 'verify', '--config', configFile]);
  expect(verify.stderr).toBe('');
  expect(verify.code).toBe(0);
  expect(verify.stdout).toMatch(/^ok: \d+ session\(s\), \d+ event\(s\) verified/);
}

async function expectVerifyNames(configFile: string, sessionId: string, seq: number): Promise<void> {
  const verify = await runCli(['audit', 'verify', '--config', configFile]);
  expect(verify.code).toBe(3);
  expect(verify.stdout).toContain(`BROKEN session ${sessionId} at seq ${seq}: content does not match its hash`);
  const json = await runCli(['audit', 'verify', '--config', configFile, '--session', sessionId, '--output', 'json']);
  expect(json.code).toBe(3);
  const report = JSON.parse(json.stdout) as { ok: boolean; broken: Array<{ sessionId: string; seq: number }> };
  expect(report.ok).toBe(false);
  expect(report.broken).toEqual([expect.objectContaining({ sessionId, seq })]);
}

describe('the session log through portcullis serve', () => {
  it('records sessions, events, notifications and tool calls in Postgres; audit verify passes, then names an altered row', async () => {
    const db = await database();
    const configFile = sessionLogConfig({ demo: stdioFixture('demo') }, { url: db.url });
    const migrate = await runCli(['db', 'migrate', '--config', configFile, '--output', 'json']);
    expect(migrate.code).toBe(0);
    expect(JSON.parse(migrate.stdout)).toMatchObject({ applied: expect.arrayContaining(['0001_session_log']) });

    const gateway = await serve(configFile);
    await recordedRun(gateway);
    expect(await gateway.proc.stop()).toBe(0);

    await checkRecorded((text) => db.query(text));
    const status = await runCli(['db', 'status', '--config', configFile, '--output', 'json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ pending: [], counts: { toolCalls: 9 } });
    await expectVerifyOk(configFile);
    const unknown = await runCli(['audit', 'verify', '--config', configFile, '--session', 'no-such-session']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no session no-such-session');

    const [legacy] = await db.query<{ id: string }>("select id from portcullis_sessions where era = 'legacy'");
    const sessionId = legacy?.id ?? '';
    await db.query(
      `update portcullis_events set payload = jsonb_set(payload, '{params,arguments,n}', '42') where session_id = $1 and seq = (select min(seq) from portcullis_events where session_id = $1 and method = 'tools/call')`,
      [sessionId],
    );
    const [altered] = await db.query<{ seq: number }>(
      "select seq from portcullis_events where session_id = $1 and payload #>> '{params,arguments,n}' = '42'",
      [sessionId],
    );
    await expectVerifyNames(configFile, sessionId, altered?.seq ?? -1);
  }, 90_000);

  it('records the same into the embedded PGlite database beside the configuration', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const configFile = sessionLogConfig({ demo: stdioFixture('demo') }, { dataDir });
    const gateway = await serve(configFile);
    await recordedRun(gateway);
    expect(await gateway.proc.stop()).toBe(0);
    expect(existsSync(dataDir)).toBe(true);

    let lite = await pgliteQuery(dataDir);
    let sessionId = '';
    let seq = -1;
    try {
      await checkRecorded(lite.query);
      const [legacy] = await lite.query<{ id: string }>("select id from portcullis_sessions where era = 'legacy'");
      sessionId = legacy?.id ?? '';
    } finally {
      await lite.close();
    }
    await expectVerifyOk(configFile);

    lite = await pgliteQuery(dataDir);
    try {
      const [row] = await lite.query<{ seq: number }>(
        `select max(seq) as seq from portcullis_events where session_id = '${sessionId}' and kind = 'response'`,
      );
      seq = Number(row?.seq);
      await lite.query(
        `update portcullis_events set latency_ms = latency_ms + 1 where session_id = '${sessionId}' and seq = ${seq}`,
      );
    } finally {
      await lite.close();
    }
    await expectVerifyNames(configFile, sessionId, seq);
  }, 90_000);

  it('two gateway processes on one Postgres: distinct ids, consistent per-session sequences, verify clean', async () => {
    const db = await database();
    const configFile = sessionLogConfig({ demo: stdioFixture('demo', { isolation: 'shared' }) }, { url: db.url });
    const [one, two] = await Promise.all([serve(configFile), serve(configFile)]);
    const agents = await Promise.all(
      [one, two, one, two].map((gateway) => connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl)),
    );
    await Promise.all(
      agents.map(async (agent, a) => {
        await Promise.all(Array.from({ length: 15 }, (_, n) => agent.callTool('demo__fixture_echo', { agent: a, n })));
      }),
    );
    for (const agent of agents) await agent.close();
    expect(await one.proc.stop()).toBe(0);
    expect(await two.proc.stop()).toBe(0);

    const sessions = await db.query<{ id: string; gateway_instance: string; event_count: number }>(
      'select id, gateway_instance, event_count from portcullis_sessions',
    );
    expect(sessions).toHaveLength(4);
    expect(new Set(sessions.map((s) => s.gateway_instance)).size).toBe(2);
    const [ids] = await db.query<{ total: string; distinct_ids: string }>(
      'select count(*) as total, count(distinct id) as distinct_ids from portcullis_tool_calls',
    );
    expect(Number(ids?.total)).toBe(60);
    expect(ids?.distinct_ids).toBe(ids?.total);
    const chains = await db.query<{ session_id: string; n: string; min_seq: number; max_seq: number }>(
      'select session_id, count(*) as n, min(seq) as min_seq, max(seq) as max_seq from portcullis_events group by session_id',
    );
    expect(chains).toHaveLength(4);
    for (const chain of chains) {
      const session = sessions.find((s) => s.id === chain.session_id);
      expect(chain.min_seq).toBe(1);
      expect(chain.max_seq).toBe(Number(chain.n));
      expect(session?.event_count).toBe(Number(chain.n));
    }
    await expectVerifyOk(configFile);
  }, 90_000);

  it('portcullis stdio: the end of the agent connection records the session end and flushes', async () => {
    const db = await database();
    // A 2025-era upstream pushes sampling to the gateway, which relays it to the agent (a 2026-era one
    // would return input_required, which the SDK turns into a push inside a recorded tools/call round).
    const configFile = sessionLogConfig({ demo: stdioFixture('demo', { era: 'legacy' }) }, { url: db.url });
    // An agent that samples and has roots, so a relayed request and a notification from it are recorded too.
    const agent = new Client(
      { name: 'e2e-stdio', version: '1.0.0' },
      { capabilities: { sampling: {}, roots: { listChanged: true } } },
    );
    agent.setRequestHandler('sampling/createMessage', async () => ({
      role: 'assistant',
      model: 'e2e',
      content: { type: 'text', text: 'Paris' },
    }));
    agent.setRequestHandler('roots/list', async () => ({ roots: [] }));
    await agent.connect(
      stdioAgentTransportV2({
        command: process.execPath,
        args: [GATEWAY_BIN, 'stdio', '--config', configFile, '--as', 'alice', '--groups', 'ops'],
        cwd: ROOT,
        stderr: 'pipe',
      }),
    );
    for (let n = 0; n < 3; n++) await agent.callTool({ name: 'demo__fixture_echo', arguments: { n } });
    await agent.callTool({ name: 'demo__test_sampling', arguments: { prompt: 'What is the capital of France?' } });
    await agent.sendRootsListChanged();
    await agent.close();
    let sessions: Array<{
      identity_subject: string;
      identity_groups: string[];
      front_transport: string;
      end_reason: string | null;
      event_count: number | null;
    }> = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      sessions = await db.query(
        'select identity_subject, identity_groups, front_transport, end_reason, event_count from portcullis_sessions',
      );
      if (sessions[0]?.end_reason) break;
      await new Promise((done) => setTimeout(done, 100));
    }
    expect(sessions).toEqual([
      {
        identity_subject: 'alice',
        identity_groups: ['ops'],
        front_transport: 'stdio',
        end_reason: expect.any(String),
        // the handshake with notifications/initialized (3), 3 echo calls (6), the sampling call (2)
        // with its relayed request and answer (2), and notifications/roots/list_changed (1)
        event_count: 14,
      },
    ]);
    const events = await db.query<{ seq: number; direction: string; kind: string; method: string | null }>(
      'select seq, direction, kind, method from portcullis_events order by seq',
    );
    expect(events.slice(0, 3)).toEqual([
      { seq: 1, direction: 'from_agent', kind: 'request', method: 'initialize' },
      { seq: 2, direction: 'to_agent', kind: 'response', method: 'initialize' },
      { seq: 3, direction: 'from_agent', kind: 'notification', method: 'notifications/initialized' },
    ]);
    expect(events.map((event) => `${event.direction} ${event.kind} ${event.method}`)).toEqual(
      expect.arrayContaining([
        'to_agent request sampling/createMessage',
        'from_agent response sampling/createMessage',
        'from_agent notification notifications/roots/list_changed',
      ]),
    );
    await expectVerifyOk(configFile);
  }, 60_000);

  it('audit.retention: the pruning job removes whole old sessions while the gateway runs', async () => {
    const db = await database();
    const first = await serve(sessionLogConfig({ demo: stdioFixture('demo') }, { url: db.url }));
    const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', first.mcpUrl);
    await agent.callTool('demo__fixture_echo', { n: 1 });
    await agent.close();
    expect(await first.proc.stop()).toBe(0);
    const [before] = await db.query<{ n: string }>('select count(*) as n from portcullis_events');
    expect(Number(before?.n)).toBeGreaterThan(0);

    // A gateway keeping 1 s prunes within about a second of its start (then every second).
    const configFile = sessionLogConfig({ demo: stdioFixture('demo') }, { url: db.url }, { retention: '1s' });
    const second = await serve(configFile);
    const deadline = Date.now() + 15_000;
    let left = 1;
    while (left > 0 && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 250));
      const [row] = await db.query<{ n: string }>('select count(*) as n from portcullis_sessions');
      left = Number(row?.n);
    }
    expect(left).toBe(0);
    const [events] = await db.query<{ n: string }>('select count(*) as n from portcullis_events');
    const [calls] = await db.query<{ n: string }>('select count(*) as n from portcullis_tool_calls');
    expect([Number(events?.n), Number(calls?.n)]).toEqual([0, 0]);
    expect(await second.proc.stop()).toBe(0);
    await expectVerifyOk(configFile);
  }, 60_000);

  it('with a policy: denials are recorded unforwarded with their rule, redacted arguments never reach the log', async () => {
    const db = await database();
    const policy = join(tempDir(), 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'default: { action: allow }',
        'rules:',
        '  - name: no-etc',
        '    match: { tool: fixture_echo }',
        '    when: has(args.path) && args.path.startsWith("/etc")',
        '    action: deny',
        '    reason: not under /etc',
        'redact:',
        '  - name: mail',
        '    detectors: [email]',
        '    args: true',
        '',
      ].join('\n'),
    );
    const configFile = sessionLogConfig(
      { demo: stdioFixture('demo') },
      { url: db.url },
      {},
      { policy: { file: policy } },
    );
    const gateway = await serve(configFile);
    const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
    await agent.callTool('demo__fixture_echo', { note: 'write to alice@example.com' });
    const denied = await agent.callTool('demo__fixture_echo', { path: '/etc/passwd' }).catch((error: unknown) => error);
    expect(denied).toBeDefined();
    await agent.close();
    expect(await gateway.proc.stop()).toBe(0);

    const calls = await db.query<{
      arguments: Record<string, unknown>;
      decision: string;
      decision_rule: string | null;
      forwarded: boolean;
    }>('select arguments, decision, decision_rule, forwarded from portcullis_tool_calls order by requested_at');
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ decision: 'allow', forwarded: true });
    expect(JSON.stringify(calls[0]?.arguments)).not.toContain('alice@example.com');
    expect(calls[1]).toMatchObject({
      decision: 'deny',
      decision_rule: 'no-etc',
      forwarded: false,
      arguments: { path: '/etc/passwd' },
    });
    const events = await db.query<{ payload: unknown }>('select payload from portcullis_events');
    expect(JSON.stringify(events)).not.toContain('alice@example.com');
    await expectVerifyOk(configFile);
  }, 60_000);

  it('SIGKILL mid-run: every call that reached the upstream has its write-ahead record', async () => {
    const db = await database();
    const countFile = join(tempDir(), 'counted.txt');
    const configFile = sessionLogConfig(
      {
        count: {
          transport: 'stdio',
          command: process.execPath,
          args: [COUNTING_UPSTREAM, countFile],
          isolation: 'shared',
        },
      },
      { url: db.url },
    );
    const gateway = await serve(configFile);
    const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
    let next = 0;
    let answered = 0;
    let stopped = false;
    const abandon = new AbortController();
    const worker = async () => {
      while (!stopped) {
        const n = next++;
        try {
          await agent.callTool('count__count', { n }, { signal: abandon.signal });
          answered += 1;
        } catch {
          return; // the gateway is gone
        }
      }
    };
    const workers = Array.from({ length: 6 }, worker);
    await waitFor(() => answered >= 60, 30_000, '60 answered calls');
    gateway.proc.child.kill('SIGKILL');
    stopped = true;
    await gateway.proc.exited;
    abandon.abort();
    await Promise.allSettled(workers);
    // The upstream finishes what it had already read, then sees its stdin close.
    await new Promise((done) => setTimeout(done, 300));

    const reached = readFileSync(countFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map(Number);
    expect(reached.length).toBeGreaterThanOrEqual(60);
    const recorded = await db.query<{ n: string; forwarded: boolean }>(
      "select arguments->>'n' as n, forwarded from portcullis_tool_calls where namespaced_tool = 'count__count'",
    );
    const recordedN = new Set(recorded.map((row) => Number(row.n)));
    const missing = reached.filter((n) => !recordedN.has(n));
    expect(missing).toEqual([]);
    expect(recorded.every((row) => row.forwarded)).toBe(true);
    process.stderr.write(
      `SIGKILL: ${reached.length} calls reached the upstream, ${recorded.length} write-ahead records, ${answered} answered\n`,
    );
  }, 90_000);
});
