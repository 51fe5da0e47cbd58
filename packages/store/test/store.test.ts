import {
  anonymousIdentity,
  composePipeline,
  configuredIdentity,
  type Identity,
  JsonRpcError,
  type RequestContext,
  type RpcResult,
  type SessionInfo,
  type Stage,
} from '@portcullis/core';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalJson,
  createRecordStage,
  createSessionRecorder,
  RecordAnnotations,
  STORE_UNAVAILABLE_RPC_CODE,
  type Store,
  uuidv7,
} from '../src/index.js';
import { BACKEND_NAMES, type Backend, CuttableProxy, createBackend, queryOutside } from './support/backends.js';
import { holdPostgresShared } from './support/pg-lock.js';

// The Postgres server is shared with the suite that stops and restarts it: hold it up while this file runs.
let releasePostgres: (() => void) | undefined;
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(() => releasePostgres?.());

function sessionInfo(overrides: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id: uuidv7(),
    era: 'legacy',
    protocolVersion: '2025-11-25',
    frontTransport: 'streamable-http',
    clientInfo: { name: 'test-agent', version: '1.0.0' },
    remoteAddress: '127.0.0.1',
    ...overrides,
  };
}

let nextRequestId = 1;
function requestContext(
  session: SessionInfo,
  method: string,
  params: Record<string, unknown>,
  identity: Identity = configuredIdentity('alice', ['dev']),
): RequestContext {
  const name = typeof params.name === 'string' ? params.name : undefined;
  return {
    session,
    identity,
    method,
    params,
    requestId: nextRequestId++,
    target:
      name === undefined
        ? undefined
        : { upstream: 'demo', originalName: name.replace(/^demo__/, ''), namespacedName: name },
    signal: new AbortController().signal,
    agent: {
      capabilities: {},
      logLevel: undefined,
      notify: async () => {},
      request: async () => ({}),
    },
    receivedAt: Date.now(),
    beforeForward: [],
    annotations: new Map(),
  };
}

async function count(store: Store, table: 'portcullis_events' | 'portcullis_tool_calls' | 'portcullis_sessions') {
  const row = await store.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const echo = async (ctx: RequestContext): Promise<RpcResult> => ({
  content: [{ type: 'text', text: JSON.stringify(ctx.params.arguments ?? {}) }],
});

describe.each(BACKEND_NAMES)('store on %s', (backendName) => {
  let backend: Backend;
  let store: Store;

  beforeAll(async () => {
    backend = await createBackend(backendName);
    store = await backend.open({ batch: { intervalMs: 20 } });
  });
  afterAll(async () => {
    await store?.close();
    await backend?.dispose();
  });

  it('group commit: concurrent write-ahead records share commits, and each resolves only once committed', async () => {
    const session = sessionInfo();
    const identity = configuredIdentity('group', []);
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, n) =>
        store.recordToolCall({
          sessionId: session.id,
          identity,
          tool: 'echo',
          namespacedTool: 'demo__echo',
          arguments: { n },
          decision: 'allow',
        }),
      ),
    );
    expect(new Set(ids).size).toBe(50);
    const rows = await store.db
      .selectFrom('portcullis_tool_calls')
      .select(['id'])
      .where('session_id', '=', session.id)
      .execute();
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
  });

  it('runs its migrations at open, idempotently, and reports their status', async () => {
    const again = await store.migrateToLatest();
    expect(again.applied).toEqual([]);
    const status = await store.status();
    // Every migration the package ships has run, in name order.
    const names = status.map((m) => m.name);
    expect(names[0]).toBe('0001_session_log');
    expect(names).toEqual([...names].sort());
    for (const migration of status) expect(migration.executedAt).toBeInstanceOf(Date);
    if (backend.name === 'postgres') {
      // A second process opening the same database migrates nothing and works.
      const other = await backend.open();
      expect((await other.migrateToLatest()).applied).toEqual([]);
      await other.close();
    }
  });

  it('commits the tool-call record before a beforeForward hook returns, then the outcome', async () => {
    const session = sessionInfo();
    const seenAtForward: unknown[] = [];
    const forward = async (ctx: RequestContext): Promise<RpcResult> => {
      const rows =
        backend.url !== undefined
          ? await queryOutside(backend.url, 'select * from portcullis_tool_calls where session_id = $1', [session.id])
          : await store.db
              .selectFrom('portcullis_tool_calls')
              .selectAll()
              .where('session_id', '=', session.id)
              .execute();
      seenAtForward.push(...rows);
      return echo(ctx);
    };
    const pipeline = composePipeline([createRecordStage(store)], forward);
    const ctx = requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { message: 'hi' } });
    const result = await pipeline(ctx);
    expect(result.content).toBeDefined();
    expect(seenAtForward).toHaveLength(1);
    expect(seenAtForward[0]).toMatchObject({
      identity_subject: 'alice',
      identity_groups: ['dev'],
      tool: 'echo',
      namespaced_tool: 'demo__echo',
      upstream: 'demo',
      arguments: { message: 'hi' },
      decision: 'allow',
      forwarded: true,
      outcome: null,
    });
    await store.flush();
    const call = await store.db
      .selectFrom('portcullis_tool_calls')
      .selectAll()
      .where('session_id', '=', session.id)
      .executeTakeFirstOrThrow();
    expect(call.outcome).toBe('result');
    expect(call.is_error).toBe(false);
    expect(call.result).toEqual(result);
    expect(call.duration_ms).toBeGreaterThanOrEqual(0);
    const events = await store.db
      .selectFrom('portcullis_events')
      .selectAll()
      .where('session_id', '=', session.id)
      .orderBy('seq')
      .execute();
    expect(events.map((e) => [e.seq, e.direction, e.kind, e.method])).toEqual([
      [1, 'from_agent', 'request', 'tools/call'],
      [2, 'to_agent', 'response', 'tools/call'],
    ]);
    expect(events[1]?.payload).toEqual({ jsonrpc: '2.0', id: ctx.requestId, result });
    expect(call.request_seq).toBe(1);
    const row = await store.db
      .selectFrom('portcullis_sessions')
      .selectAll()
      .where('id', '=', session.id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ identity_subject: 'alice', client_name: 'test-agent', era: 'legacy' });
  });

  it('records denials (never forwarded) with the decision stages’ annotations', async () => {
    const session = sessionInfo();
    const deny: Stage = {
      name: 'authorize',
      handle: async (ctx) => {
        ctx.annotations.set(RecordAnnotations.decision, { decision: 'deny', rule: 'no-shell' });
        throw new JsonRpcError(-32003, 'denied by policy');
      },
    };
    let forwarded = 0;
    const pipeline = composePipeline([createRecordStage(store), deny], async () => {
      forwarded += 1;
      return {};
    });
    await expect(
      pipeline(requestContext(session, 'tools/call', { name: 'demo__shell', arguments: { cmd: 'ls' } })),
    ).rejects.toThrow('denied by policy');
    expect(forwarded).toBe(0);
    await store.flush();
    const call = await store.db
      .selectFrom('portcullis_tool_calls')
      .selectAll()
      .where('session_id', '=', session.id)
      .executeTakeFirstOrThrow();
    expect(call).toMatchObject({
      forwarded: false,
      decision: 'deny',
      decision_rule: 'no-shell',
      outcome: 'rpc_error',
      error_code: -32003,
    });
    const response = await store.db
      .selectFrom('portcullis_events')
      .select('payload')
      .where('session_id', '=', session.id)
      .where('kind', '=', 'response')
      .executeTakeFirstOrThrow();
    expect(response.payload).toMatchObject({ error: { code: -32003, message: 'denied by policy' } });
  });

  it('records the arguments as redacted by transform, and the policy decision, in the request event and the write-ahead record', async () => {
    const session = sessionInfo();
    const authorize: Stage = {
      name: 'authorize',
      handle: async (ctx, next) => {
        ctx.annotations.set(RecordAnnotations.decision, { decision: 'allow', rule: 'dev-may-login', basis: 'rule' });
        return next();
      },
    };
    const transform: Stage = {
      name: 'transform',
      handle: async (ctx, next) => {
        ctx.annotations.set(RecordAnnotations.redactedArguments, {
          arguments: { user: 'bob', password: '[REDACTED:password]' },
          summary: { redacted: 1 },
        });
        const result = await next();
        ctx.annotations.set(RecordAnnotations.redaction, { redacted: 0 });
        return result;
      },
    };
    let forwardedArgs: unknown;
    const pipeline = composePipeline([createRecordStage(store), authorize, transform], async (ctx) => {
      forwardedArgs = ctx.params.arguments;
      return { content: [] };
    });
    await pipeline(
      requestContext(session, 'tools/call', { name: 'demo__login', arguments: { user: 'bob', password: 'hunter2' } }),
    );
    // The upstream gets what the agent sent; the log never sees the secret.
    expect(forwardedArgs).toEqual({ user: 'bob', password: 'hunter2' });
    await store.flush();
    const call = await store.db
      .selectFrom('portcullis_tool_calls')
      .selectAll()
      .where('session_id', '=', session.id)
      .executeTakeFirstOrThrow();
    expect(call).toMatchObject({
      arguments: { user: 'bob', password: '[REDACTED:password]' },
      decision: 'allow',
      decision_rule: 'dev-may-login',
      redaction: { arguments: { redacted: 1 }, result: { redacted: 0 } },
    });
    const events = await store.db
      .selectFrom('portcullis_events')
      .select(['payload'])
      .where('session_id', '=', session.id)
      .execute();
    expect(JSON.stringify(events)).not.toContain('hunter2');
  });

  it('flushes batches on size, on interval, and on close', async () => {
    // PGlite has one owner at a time: the other stores take turns with the suite's store.
    const exclusive = backend.name === 'pglite';
    if (exclusive) await store.close();
    const sizeStore = await backend.open({ migrate: false, batch: { maxEvents: 10, intervalMs: 60_000 } });
    const session = sessionInfo();
    await sizeStore.recordSessionStart(session, anonymousIdentity());
    for (let i = 0; i < 8; i++) {
      await sizeStore.recordEvent({
        sessionId: session.id,
        direction: 'from_agent',
        kind: 'notification',
        payload: { i },
      });
    }
    expect(sizeStore.queued).toBe(9);
    await sizeStore.recordEvent({
      sessionId: session.id,
      direction: 'from_agent',
      kind: 'notification',
      payload: { i: 8 },
    });
    await expect.poll(() => sizeStore.queued).toBe(0);
    await expect
      .poll(
        async () =>
          (
            await sizeStore.db
              .selectFrom('portcullis_events')
              .select('seq')
              .where('session_id', '=', session.id)
              .execute()
          ).length,
      )
      .toBe(9);
    if (exclusive) await sizeStore.close();

    // Interval: a short timer flushes a small batch without any explicit flush.
    const intervalStore = await backend.open({ migrate: false, batch: { maxEvents: 1_000, intervalMs: 30 } });
    const s2 = sessionInfo();
    await intervalStore.recordSessionStart(s2, anonymousIdentity());
    await intervalStore.recordEvent({ sessionId: s2.id, direction: 'to_agent', kind: 'notification', payload: {} });
    await expect
      .poll(
        async () =>
          (
            await intervalStore.db
              .selectFrom('portcullis_events')
              .select('seq')
              .where('session_id', '=', s2.id)
              .execute()
          ).length,
        { timeout: 2_000, interval: 20 },
      )
      .toBe(1);
    if (exclusive) await intervalStore.close();

    // Close: a long interval, and close() drains the queue.
    const closeStore = await backend.open({ migrate: false, batch: { maxEvents: 1_000, intervalMs: 60_000 } });
    const s3 = sessionInfo();
    await closeStore.recordSessionStart(s3, anonymousIdentity());
    for (let i = 0; i < 5; i++) {
      await closeStore.recordEvent({ sessionId: s3.id, direction: 'to_agent', kind: 'notification', payload: { i } });
    }
    expect(closeStore.queued).toBe(6);
    await closeStore.close();
    await sizeStore.close();
    await intervalStore.close();
    if (exclusive) store = await backend.open({ batch: { intervalMs: 20 } });
    expect(
      await store.db.selectFrom('portcullis_events').select('seq').where('session_id', '=', s3.id).execute(),
    ).toHaveLength(5);
  });

  it('chains every session’s events and names the first broken link after tampering', async () => {
    const recorder = createSessionRecorder(store);
    const a = sessionInfo();
    const b = sessionInfo();
    await recorder.start(a, anonymousIdentity());
    await recorder.start(b, anonymousIdentity());
    for (let i = 0; i < 20; i++) {
      await store.recordEvent({
        sessionId: i % 2 === 0 ? a.id : b.id,
        direction: 'from_agent',
        kind: 'request',
        method: 'tools/call',
        rpcId: i % 3 === 0 ? `s${i}` : i,
        payload: { z: 1, a: [i, { y: 'ü', x: null }], nul: 'a\u0000b', big: 1e21, frac: 0.1 + 0.2 },
      });
    }
    await recorder.end(a.id, 'closed');
    const clean = await store.verifyChains({ sessionId: a.id });
    expect(clean).toMatchObject({ ok: true, sessionsChecked: 1, eventsChecked: 10 });
    expect((await store.verifyChains()).ok).toBe(true);

    await sql`update portcullis_events set payload = jsonb_set(payload, '{z}', '2') where session_id = ${b.id} and seq = 4`.execute(
      store.db,
    );
    const report = await store.verifyChains();
    expect(report.ok).toBe(false);
    expect(report.broken).toEqual([{ sessionId: b.id, seq: 4, reason: 'content does not match its hash' }]);

    // A truncated tail of an ended session is detected through its recorded head.
    await sql`delete from portcullis_events where session_id = ${a.id} and seq = 10`.execute(store.db);
    const truncated = await store.verifyChains({ sessionId: a.id });
    expect(truncated.broken).toEqual([{ sessionId: a.id, seq: 10, reason: 'event missing (session ended at 10)' }]);
    // Repair for the later tests that verify everything.
    await sql`delete from portcullis_events where session_id in (${a.id}, ${b.id})`.execute(store.db);
    await sql`delete from portcullis_sessions where id in (${a.id}, ${b.id})`.execute(store.db);
  });

  it('canonical JSON ignores key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 1 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"e":1,"f":2}]},"b":1}',
    );
  });

  it('prunes whole sessions older than the retention and keeps the rest verifiable', async () => {
    const old = sessionInfo();
    const recent = sessionInfo();
    const day = 86_400_000;
    await store.recordSessionStart(old, anonymousIdentity(), Date.now() - 100 * day);
    await store.recordEvent({
      sessionId: old.id,
      direction: 'from_agent',
      kind: 'request',
      payload: {},
      at: Date.now() - 100 * day,
    });
    await store.recordToolCall({
      sessionId: old.id,
      identity: anonymousIdentity(),
      tool: 't',
      namespacedTool: 'x__t',
      arguments: {},
      decision: 'allow',
      at: Date.now() - 100 * day,
    });
    await store.recordSessionEnd(old.id, 'closed', Date.now() - 99 * day);
    await store.recordSessionStart(recent, anonymousIdentity());
    await store.recordEvent({ sessionId: recent.id, direction: 'from_agent', kind: 'request', payload: {} });
    await store.recordSessionEnd(recent.id, 'closed');
    const pruned = await store.pruneSessions({ olderThan: '90d' });
    expect(pruned).toEqual({ sessions: 1, events: 1, toolCalls: 1 });
    expect(
      await store.db.selectFrom('portcullis_sessions').select('id').where('id', 'in', [old.id, recent.id]).execute(),
    ).toEqual([{ id: recent.id }]);
    expect((await store.verifyChains()).ok).toBe(true);
  });

  it('records upstreams without credentials and admin actions', async () => {
    await store.upsertUpstreams([
      { name: 'remote', transport: 'streamable-http', url: 'https://user:secret@example.test/mcp?token=abc#x' },
      { name: 'local', transport: 'stdio', command: 'node' },
    ]);
    const rows = await store.db.selectFrom('portcullis_upstreams').selectAll().orderBy('name').execute();
    expect(rows.map((r) => [r.name, r.target])).toEqual([
      ['local', 'node'],
      ['remote', 'https://example.test/mcp'],
    ]);
    const id = await store.recordAdminAction({ actor: 'ops', action: 'db.migrate', details: { applied: [] } });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('store on postgres: several gateway processes and an unreachable server', () => {
  let backend: Backend;
  let proxy: CuttableProxy;

  beforeAll(async () => {
    backend = await createBackend('postgres');
    const url = backend.url as string;
    (await backend.open()).close();
    proxy = CuttableProxy.forUrl(url);
    await proxy.start();
  });
  afterAll(async () => {
    await proxy?.cut();
    await backend?.dispose();
  });

  it('two processes (two pools) writing different sessions concurrently never collide', async () => {
    const [one, two] = await Promise.all([backend.open(), backend.open()]);
    const write = async (store: Store) => {
      const sessions = Array.from({ length: 10 }, () => sessionInfo());
      await Promise.all(
        sessions.map(async (session) => {
          const pipeline = composePipeline([createRecordStage(store)], echo);
          for (let i = 0; i < 20; i++) {
            await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { i } }));
          }
        }),
      );
      await store.flush();
      return sessions;
    };
    await Promise.all([write(one), write(two)]);
    expect(await count(one, 'portcullis_sessions')).toBeGreaterThanOrEqual(20);
    const calls = await one.db.selectFrom('portcullis_tool_calls').select(['id', 'outcome']).execute();
    expect(calls.length).toBe(400);
    expect(new Set(calls.map((c) => c.id)).size).toBe(400);
    expect(calls.every((c) => c.outcome === 'result')).toBe(true);
    expect(await count(one, 'portcullis_events')).toBe(800);
    const report = await two.verifyChains();
    expect(report).toMatchObject({ ok: true, eventsChecked: 800 });
    await Promise.all([one.close(), two.close()]);
  });

  it('closed mode refuses tool calls while the server is unreachable, and records everything after recovery', async () => {
    const store = await backend.open({
      url: proxy.url(backend.url as string),
      probeIntervalMs: 100,
      connectTimeoutMs: 500,
    });
    const session = sessionInfo();
    let forwarded = 0;
    const pipeline = composePipeline([createRecordStage(store)], async (ctx) => {
      forwarded += 1;
      return echo(ctx);
    });
    await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 1 } }));
    expect(forwarded).toBe(1);

    await proxy.cut();
    const refused = pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 2 } }));
    await expect(refused).rejects.toMatchObject({ code: STORE_UNAVAILABLE_RPC_CODE });
    await expect(refused).rejects.toThrow(/session log is unavailable/);
    expect(forwarded).toBe(1);
    expect(store.health).toBe('down');
    // Still down: refused at once, nothing forwarded; other methods go through.
    await expect(
      pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 3 } })),
    ).rejects.toMatchObject({
      code: STORE_UNAVAILABLE_RPC_CODE,
    });
    await pipeline(requestContext(session, 'tools/list', {}));
    expect(forwarded).toBe(2);

    await proxy.restore();
    await expect.poll(() => store.health, { timeout: 5_000, interval: 50 }).toBe('up');
    await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 4 } }));
    expect(forwarded).toBe(3);
    await store.flush();

    const calls = await store.db
      .selectFrom('portcullis_tool_calls')
      .select(['arguments', 'forwarded', 'outcome', 'error_code'])
      .where('session_id', '=', session.id)
      .orderBy('requested_at')
      .execute();
    expect(calls.map((c) => [c.arguments, c.forwarded, c.outcome, c.error_code])).toEqual([
      [{ n: 1 }, true, 'result', null],
      [{ n: 2 }, false, 'rpc_error', STORE_UNAVAILABLE_RPC_CODE],
      [{ n: 3 }, false, 'rpc_error', STORE_UNAVAILABLE_RPC_CODE],
      [{ n: 4 }, true, 'result', null],
    ]);
    const events = await store.db
      .selectFrom('portcullis_events')
      .select('seq')
      .where('session_id', '=', session.id)
      .execute();
    expect(events).toHaveLength(10);
    expect((await store.verifyChains({ sessionId: session.id })).ok).toBe(true);
    await store.close();
  });

  it('open mode lets calls through while the server is unreachable, spools, and replays every event', async () => {
    const store = await backend.open({
      url: proxy.url(backend.url as string),
      onStoreFailure: 'open',
      probeIntervalMs: 100,
      connectTimeoutMs: 500,
    });
    const session = sessionInfo();
    let forwarded = 0;
    const pipeline = composePipeline([createRecordStage(store)], async (ctx) => {
      forwarded += 1;
      return echo(ctx);
    });
    await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 0 } }));
    await proxy.cut();
    for (let n = 1; n <= 20; n++) {
      await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n } }));
    }
    expect(forwarded).toBe(21);
    expect(store.health).toBe('down');
    await store.flush();
    expect(store.spool.pending).toBeGreaterThan(0);

    await proxy.restore();
    await expect.poll(() => store.health, { timeout: 5_000, interval: 50 }).toBe('up');
    await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n: 21 } }));
    await store.flush();

    const calls = await store.db
      .selectFrom('portcullis_tool_calls')
      .select(['arguments', 'forwarded', 'outcome'])
      .where('session_id', '=', session.id)
      .execute();
    expect(calls).toHaveLength(22);
    expect(calls.every((c) => c.forwarded && c.outcome === 'result')).toBe(true);
    expect(new Set(calls.map((c) => (c.arguments as { n: number }).n)).size).toBe(22);
    const events = await store.db
      .selectFrom('portcullis_events')
      .select('seq')
      .where('session_id', '=', session.id)
      .execute();
    expect(events).toHaveLength(44);
    expect((await store.verifyChains({ sessionId: session.id })).ok).toBe(true);
    await store.close();
  });

  it('a shutdown while the server is unreachable leaves the spool, and the next start replays it', async () => {
    const spoolDir = `${backend.url?.replace(/\W/g, '_')}`;
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), `portcullis-spool-${spoolDir.slice(-8)}`));
    const first = await backend.open({
      url: proxy.url(backend.url as string),
      onStoreFailure: 'open',
      spoolDir: dir,
      probeIntervalMs: 60_000,
      connectTimeoutMs: 500,
    });
    const session = sessionInfo();
    await first.recordSessionStart(session, anonymousIdentity());
    await first.flush();
    await proxy.cut();
    const pipeline = composePipeline([createRecordStage(first)], echo);
    for (let n = 0; n < 5; n++) {
      await pipeline(requestContext(session, 'tools/call', { name: 'demo__echo', arguments: { n } }));
    }
    await first.close();
    await proxy.restore();
    const second = await backend.open({ spoolDir: dir });
    expect(
      await second.db.selectFrom('portcullis_tool_calls').select('id').where('session_id', '=', session.id).execute(),
    ).toHaveLength(5);
    expect(
      await second.db.selectFrom('portcullis_events').select('seq').where('session_id', '=', session.id).execute(),
    ).toHaveLength(10);
    await second.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
