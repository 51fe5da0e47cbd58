import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { firstText } from './support/agents.js';
import { stdioFixture } from './support/gateway.js';
import {
  childPids,
  cleanupAll,
  GATEWAY_BIN,
  isAlive,
  onCleanup,
  type Spawned,
  spawnProcess,
  waitFor,
} from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  type ServedGateway,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

// `portcullis replay ID --follow` against a live session: a real gateway records on Postgres while
// followers (separate processes) read the same store; a real SDK agent makes calls, then leaves.

let releasePostgres: (() => void) | undefined;
const databases: FreshDatabase[] = [];
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(async () => {
  await cleanupAll();
  for (const db of databases) await db.drop().catch(() => undefined);
  releasePostgres?.();
});
afterEach(cleanupAll);

interface Follower {
  readonly proc: Spawned;
  stdout(): string;
}

function follow(configFile: string, sessionId: string, ...args: string[]): Follower {
  const proc = spawnProcess(process.execPath, [
    GATEWAY_BIN,
    'replay',
    sessionId,
    '--config',
    configFile,
    '--follow',
    '--interval',
    '100',
    ...args,
  ]);
  let stdout = '';
  proc.child.stdout?.setEncoding('utf8');
  proc.child.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
  });
  return { proc, stdout: () => stdout };
}

interface JsonlEvent {
  seq: number;
  direction: string;
  kind: string;
  method: string | null;
  payload: { params?: { arguments?: { marker?: string } } };
  hash: string;
}

function jsonl(text: string): JsonlEvent[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as JsonlEvent);
}

function stillRunning(proc: Spawned): Promise<boolean> {
  return Promise.race([
    proc.exited.then(() => false),
    new Promise<boolean>((done) => setTimeout(() => done(true), 300)),
  ]);
}

/** The one session in the store, once its row is written; it must still be open. */
async function theOpenSession(configFile: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const listed = await runCli(['sessions', 'list', '--config', configFile, '--output', 'json']);
    expect(listed.code, listed.stderr).toBe(0);
    const sessions = (JSON.parse(listed.stdout) as { sessions: { id: string; endedAt: string | null }[] }).sessions;
    if (sessions.length > 0 || Date.now() > deadline) {
      expect(sessions).toHaveLength(1);
      expect(sessions[0]?.endedAt).toBeNull();
      return sessions[0]?.id ?? '';
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}

function exitWithin(proc: Spawned, ms: number): Promise<number | string> {
  return Promise.race([proc.exited, new Promise<string>((done) => setTimeout(() => done('still running'), ms))]);
}

/** A gateway recording on a fresh Postgres database, and a real SDK agent (2025 era) connected to it. */
async function liveAgent(): Promise<{
  db: FreshDatabase;
  configFile: string;
  gateway: ServedGateway;
  transport: StreamableHTTPClientTransport;
  agent: Client;
}> {
  const db = await freshDatabase();
  databases.push(db);
  const configFile = sessionLogConfig({ demo: stdioFixture('demo') }, { url: db.url });
  const gateway = await serve(configFile);
  const transport = new StreamableHTTPClientTransport(new URL(gateway.mcpUrl));
  const agent = new Client({ name: 'follow-e2e', version: '1.0.0' });
  await agent.connect(transport);
  onCleanup(() => agent.close());
  return { db, configFile, gateway, transport, agent };
}

describe('replay --follow (Postgres, beside a live gateway)', () => {
  it('prints each new call within seconds while the session is open, ends when it ends; Ctrl-C stops an open follow', async () => {
    const { db, configFile, gateway, transport, agent } = await liveAgent();
    const echo = async (marker: string) =>
      firstText(await agent.callTool({ name: 'demo__fixture_echo', arguments: { marker } }));
    expect(await echo('before-follow')).toContain('before-follow');

    const sessionId = await theOpenSession(configFile);

    const asJsonl = follow(configFile, sessionId, '--format', 'jsonl');
    const asText = follow(configFile, sessionId);
    const interrupted = follow(configFile, sessionId);
    // What was recorded before the followers started is printed first.
    await waitFor(() => asJsonl.stdout().includes('before-follow'), 15_000, 'the earlier call in the jsonl follower');
    await waitFor(() => asText.stdout().includes('before-follow'), 15_000, 'the earlier call in the text follower');
    await waitFor(() => interrupted.stdout().includes('before-follow'), 15_000, 'the third follower');

    for (const marker of ['live-1', 'live-2']) {
      const calledAt = Date.now();
      expect(await echo(marker)).toContain(marker);
      await waitFor(
        () =>
          jsonl(asJsonl.stdout()).some(
            (event) => event.direction === 'to_agent' && JSON.stringify(event.payload).includes(marker),
          ),
        5_000,
        `the response of ${marker} in the jsonl follower`,
      );
      await waitFor(() => asText.stdout().includes(marker), 5_000, `${marker} in the text follower`);
      expect(Date.now() - calledAt).toBeLessThan(5_000);
      // The session is still open: the followers keep tailing.
      expect(await stillRunning(asJsonl.proc)).toBe(true);
      expect(await stillRunning(asText.proc)).toBe(true);
    }

    // Ctrl-C while the session is open stops that follower cleanly.
    interrupted.proc.child.kill('SIGINT');
    expect(await interrupted.proc.exited).toBe(0);
    expect(interrupted.stdout()).toContain('stopped following (session still open)');

    // The agent leaves (DELETE of its session): the end is recorded and both followers finish on their own.
    await transport.terminateSession();
    await agent.close();
    expect(await exitWithin(asJsonl.proc, 10_000)).toBe(0);
    expect(await exitWithin(asText.proc, 10_000)).toBe(0);
    expect(asText.stdout()).toMatch(/session ended \(closed\)\n$/);

    // The follower printed exactly the recorded session: every event once, in order, hashes as stored.
    const complete = await runCli(['replay', sessionId, '--config', configFile, '--format', 'jsonl']);
    expect(complete.code).toBe(0);
    expect(asJsonl.stdout()).toBe(complete.stdout);
    const events = jsonl(asJsonl.stdout());
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
    const [row] = await db.query<{ event_count: number; end_reason: string }>(
      'select event_count, end_reason from portcullis_sessions where id = $1',
      [sessionId],
    );
    expect(row).toEqual({ event_count: events.length, end_reason: 'closed' });
    expect(asJsonl.proc.stderr()).toBe('');
    expect(asText.proc.stderr()).toBe('');

    const verify = await runCli(['audit', 'verify', '--config', configFile, '--session', sessionId]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(await gateway.proc.stop()).toBe(0);
  }, 60_000);

  it('a session whose gateway died stays followed; pruning it ends the follow (exit 3)', async () => {
    const { configFile, gateway, agent } = await liveAgent();
    await agent.callTool({ name: 'demo__fixture_echo', arguments: { marker: 'last-words' } });
    const sessionId = await theOpenSession(configFile);

    // The gateway is killed: its session's end is never recorded.
    const upstreams = childPids(gateway.proc.pid);
    gateway.proc.child.kill('SIGKILL');
    await gateway.proc.exited;
    for (const pid of upstreams) {
      try {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // Exited on its own when its gateway went.
      }
    }
    await agent.close().catch(() => undefined);

    const follower = follow(configFile, sessionId);
    await waitFor(() => follower.stdout().includes('last-words'), 15_000, 'the recorded call in the follower');
    expect(await stillRunning(follower.proc)).toBe(true);

    // Pruning it (never ended: it counts from its last event) ends the follow.
    await new Promise((done) => setTimeout(done, 1_100));
    const pruned = await runCli(['sessions', 'prune', '--config', configFile, '--older-than', '1s', '--yes']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain('deleted 1 session(s)');
    expect(await exitWithin(follower.proc, 10_000)).toBe(3);
    expect(follower.stdout()).toContain('session removed from the session log (pruned)');
    expect(follower.proc.stderr()).toContain(`session ${sessionId} was removed from the session log while followed`);
  }, 60_000);
});
