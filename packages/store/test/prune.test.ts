import { anonymousIdentity, type SessionInfo } from '@portcullis/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PruneReport, type Store, uuidv7 } from '../src/index.js';
import { BACKEND_NAMES, type Backend, createBackend } from './support/backends.js';
import { holdPostgresShared } from './support/pg-lock.js';

// Batched pruning as `portcullis sessions prune` and the gateway's retention use it: what is
// counted, what goes (whole sessions, batch by batch), what stays, and that the rest still verifies.

let releasePostgres: (() => void) | undefined;
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(() => releasePostgres?.());

const DAY = 86_400_000;

function sessionInfo(): SessionInfo {
  return {
    id: uuidv7(),
    era: 'legacy',
    protocolVersion: '2025-11-25',
    frontTransport: 'streamable-http',
    clientInfo: { name: 'prune-test', version: '1.0.0' },
    remoteAddress: '127.0.0.1',
  };
}

/** A session started `startDaysAgo` with `events` events (the last `lastEventDaysAgo`), one tool call, maybe ended. */
async function record(
  store: Store,
  shape: { startDaysAgo: number; events: number; lastEventDaysAgo?: number; endDaysAgo?: number },
): Promise<string> {
  const session = sessionInfo();
  const started = Date.now() - shape.startDaysAgo * DAY;
  await store.recordSessionStart(session, anonymousIdentity(), started);
  for (let n = 1; n <= shape.events; n += 1) {
    const at =
      n === shape.events && shape.lastEventDaysAgo !== undefined
        ? Date.now() - shape.lastEventDaysAgo * DAY
        : started + n;
    await store.recordEvent({ sessionId: session.id, direction: 'from_agent', kind: 'request', payload: { n }, at });
  }
  await store.recordToolCall({
    sessionId: session.id,
    identity: anonymousIdentity(),
    tool: 't',
    namespacedTool: 'x__t',
    arguments: {},
    decision: 'allow',
    at: started,
  });
  if (shape.endDaysAgo !== undefined)
    await store.recordSessionEnd(session.id, 'closed', Date.now() - shape.endDaysAgo * DAY);
  return session.id;
}

async function sessionIds(store: Store, ids: readonly string[]): Promise<string[]> {
  const rows = await store.db
    .selectFrom('portcullis_sessions')
    .select('id')
    .where('id', 'in', [...ids])
    .execute();
  return rows.map((row) => row.id).sort();
}

describe.each(BACKEND_NAMES)('pruning on %s', (backendName) => {
  let backend: Backend;

  beforeAll(async () => {
    backend = await createBackend(backendName);
  });
  afterAll(async () => {
    await backend?.dispose();
  });

  it('plans, then deletes whole sessions in batches with progress; live-looking and open sessions stay; the rest verifies', async () => {
    // Written by one process (a gateway), pruned by another (the CLI).
    const writer = await backend.open({ batch: { intervalMs: 5 } });
    const old = [];
    for (let i = 0; i < 5; i += 1) old.push(await record(writer, { startDaysAgo: 100, events: 3, endDaysAgo: 99 }));
    const recent = await record(writer, { startDaysAgo: 1, events: 2, endDaysAgo: 0 });
    const oldButActive = await record(writer, { startDaysAgo: 100, events: 2, lastEventDaysAgo: 0 });
    const abandoned = await record(writer, { startDaysAgo: 100, events: 2 });
    const endedRecentlyAfterLongRun = await record(writer, { startDaysAgo: 100, events: 1, endDaysAgo: 2 });
    await writer.close();

    const pruner = await backend.open({ batch: { intervalMs: 5 } });
    try {
      const openHere = sessionInfo();
      await pruner.recordSessionStart(openHere, anonymousIdentity(), Date.now() - 100 * DAY);
      const everyone = [...old, recent, oldButActive, abandoned, endedRecentlyAfterLongRun, openHere.id];

      const plan = await pruner.planPrune({ olderThan: '30d' });
      expect({ sessions: plan.sessions, events: plan.events, toolCalls: plan.toolCalls }).toEqual({
        sessions: 6,
        events: 5 * 3 + 2,
        toolCalls: 6,
      });
      expect(Math.abs(plan.cutoff.getTime() - (Date.now() - 30 * DAY))).toBeLessThan(60_000);
      // Planning deletes nothing.
      expect(await sessionIds(pruner, everyone)).toHaveLength(everyone.length);

      // Aborted after its first batch: that batch stays deleted, nothing more.
      const interrupt = new AbortController();
      const first = await pruner.pruneSessions({
        olderThan: plan.cutoff,
        batchSize: 2,
        signal: interrupt.signal,
        onProgress: () => interrupt.abort(),
      });
      expect(first.sessions).toBe(2);
      expect((await pruner.planPrune({ olderThan: plan.cutoff })).sessions).toBe(4);

      const progress: PruneReport[] = [];
      const report = await pruner.pruneSessions({
        olderThan: plan.cutoff,
        batchSize: 2,
        onProgress: (sofar) => progress.push(sofar),
      });
      expect({
        sessions: first.sessions + report.sessions,
        events: first.events + report.events,
        toolCalls: first.toolCalls + report.toolCalls,
      }).toEqual({ sessions: 6, events: 17, toolCalls: 6 });
      // Batches of 2 sessions, one progress call each; totals only grow.
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(progress.at(-1)).toEqual(report);
      for (let i = 1; i < progress.length; i += 1) {
        expect(progress[i]?.sessions).toBeGreaterThanOrEqual(progress[i - 1]?.sessions ?? 0);
      }
      expect(await sessionIds(pruner, everyone)).toEqual(
        [recent, oldButActive, endedRecentlyAfterLongRun, openHere.id].sort(),
      );
      const orphans = await pruner.db
        .selectFrom('portcullis_events')
        .select('session_id')
        .where('session_id', 'in', [...old, abandoned])
        .execute();
      expect(orphans).toEqual([]);
      expect((await pruner.planPrune({ olderThan: plan.cutoff })).sessions).toBe(0);
      const verified = await pruner.verifyChains();
      expect(verified.broken).toEqual([]);
      expect(verified.ok).toBe(true);

      await expect(pruner.pruneSessions({ olderThan: '30d', batchSize: 0 })).rejects.toThrow(/batch size/);
    } finally {
      await pruner.close();
    }
  }, 60_000);
});
