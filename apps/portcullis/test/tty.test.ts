import { type ChildProcess, spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectHttpAgent } from './support/agents.js';
import { stdioFixture } from './support/gateway.js';
import { childPids, cleanupAll, GATEWAY_BIN, isAlive, onCleanup, ROOT, writeConfig } from './support/processes.js';
import {
  type FreshDatabase,
  freshDatabase,
  holdPostgresShared,
  runCli,
  serve,
  sessionLogConfig,
} from './support/session-log.js';

// The CLI's terminal-only paths driven as a person at a terminal would: the built `portcullis`
// runs under a pseudo-terminal (util-linux `script`), so its stdin, stdout and stderr are TTYs;
// prompts are answered by typing into the terminal. One Postgres store: sessions recorded by a
// real gateway and SDK agents, then `replay` (colour, --execute), `apply` and `sessions prune`.

let releasePostgres: (() => void) | undefined;
let db: FreshDatabase | undefined;
let configFile = '';
let mainSession = '';
let shortSessions: string[] = [];

const ESC = '\u001b[';
const BAR = /\[#{4,}[#.]*\] (\d+)\/(\d+)/g;

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

interface PtyRun {
  /** Everything the terminal showed so far (stdout and stderr interleaved, `\r\n` line ends). */
  screen(): string;
  /** Types into the terminal. */
  type(text: string): void;
  /** Resolves once the screen matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The command's exit code (`script -e`). */
  readonly exited: Promise<number>;
}

/** Runs `portcullis ARGS` on a fresh pseudo-terminal; killed by PID at cleanup if still running. */
function portcullisInPty(args: string[], env: Record<string, string> = {}): PtyRun {
  const command = [process.execPath, GATEWAY_BIN, ...args].map(shellQuote).join(' ');
  const { NO_COLOR: _noColor, ...inherited } = process.env;
  const child: ChildProcess = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...inherited, TERM: 'xterm-256color', COLUMNS: '120', LINES: '40', ...env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('failed to spawn script');
  let screen = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    screen += chunk;
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    screen += chunk;
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  onCleanup(async () => {
    if (!isAlive(pid)) return;
    // The shell `script` started and the command under it, then `script` itself.
    const shells = childPids(pid);
    for (const target of [...shells.flatMap((shell) => childPids(shell)), ...shells, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await exited;
  });
  const waitFor = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const started = Date.now();
      const poll = (): void => {
        const match = screen.match(pattern);
        if (match !== null) resolve(match);
        else if (Date.now() - started > timeoutMs)
          reject(new Error(`timed out waiting for ${pattern}; the terminal shows:\n${screen}`));
        else setTimeout(poll, 25);
      };
      poll();
    });
  return { screen: () => screen, type: (text) => child.stdin?.write(text), waitFor, exited };
}

const CTRL_C = '\u0003';

/** Runs `portcullis ARGS` on a terminal, answers the first `[y/N]` prompt, and waits for the exit. */
async function answered(
  args: string[],
  prompt: RegExp,
  answer: 'y' | 'n' | typeof CTRL_C,
): Promise<{ code: number; screen: string }> {
  const pty = portcullisInPty(args);
  await pty.waitFor(prompt);
  pty.type(answer === CTRL_C ? answer : `${answer}\r`);
  const code = await pty.exited;
  return { code, screen: pty.screen() };
}

/** Every progress-bar frame drawn: [done, total]. */
function barFrames(screen: string): Array<[number, number]> {
  return [...screen.matchAll(BAR)].map((match) => [Number(match[1]), Number(match[2])]);
}

async function sessionIds(): Promise<string[]> {
  const run = await runCli(['sessions', 'list', '--config', configFile, '--output', 'json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { sessions: { id: string }[] }).sessions.map((session) => session.id);
}

beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
  db = await freshDatabase();
  configFile = sessionLogConfig(
    { demo: stdioFixture('demo'), sandbox: stdioFixture('sandbox-fixture', { sandbox: true }) },
    { url: db.url },
  );
  const gateway = await serve(configFile);
  const agent = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
  await agent.callTool('demo__fixture_echo', { n: 1 });
  await agent.callTool('demo__test_simple_text', {});
  await agent.close();
  for (const n of [2, 3]) {
    const short = await connectHttpAgent('v2 Streamable HTTP (2025 era)', gateway.mcpUrl);
    await short.callTool('demo__fixture_echo', { n });
    await short.close();
  }
  await gateway.proc.stop();
  const rows = await db.query<{ id: string }>(
    `select s.id from portcullis_sessions s
     join portcullis_tool_calls t on t.session_id = s.id
     group by s.id order by count(*) desc, s.id`,
  );
  expect(rows).toHaveLength(3);
  mainSession = rows[0]?.id ?? '';
  shortSessions = rows.slice(1).map((row) => row.id);
}, 120_000);

// One cleanup at the end: the store, configuration and recorded sessions are shared by the tests.
afterAll(async () => {
  await cleanupAll();
  await db?.drop().catch(() => undefined);
  releasePostgres?.();
});

describe('the portcullis CLI on a terminal', () => {
  it('replay SESSION is coloured on a terminal, plain when piped or with NO_COLOR', async () => {
    const onTerminal = portcullisInPty(['replay', mainSession, '--config', configFile]);
    expect(await onTerminal.exited).toBe(0);
    expect(onTerminal.screen()).toContain(ESC);
    expect(onTerminal.screen()).toContain(mainSession);
    expect(onTerminal.screen()).toMatch(/tools\/call.*demo__fixture_echo/);

    const noColour = portcullisInPty(['replay', mainSession, '--config', configFile], { NO_COLOR: '1' });
    expect(await noColour.exited).toBe(0);
    expect(noColour.screen()).toContain(mainSession);
    expect(noColour.screen()).not.toContain(ESC);

    const piped = await runCli(['replay', mainSession, '--config', configFile]);
    expect(piped.code).toBe(0);
    expect(piped.stdout).toContain(mainSession);
    expect(piped.stdout).not.toContain(ESC);
  }, 30_000);

  it('replay --execute asks on a terminal: "n" runs nothing, "y" re-runs with a progress bar', async () => {
    const args = ['replay', mainSession, '--config', configFile, '--execute', '--upstream', 'sandbox'];
    const prompt =
      /Re-run (\d+) recorded tool call\(s\) of session \S+ against upstream "sandbox" \(sandbox\)\? \[y\/N\]/;
    const before = await sessionIds();

    const declined = await answered(args, prompt, 'n');
    expect(declined.code).toBe(2);
    expect(declined.screen).toContain('not confirmed; nothing was run');
    expect(barFrames(declined.screen)).toEqual([]);
    expect(await sessionIds()).toEqual(before);

    const accepted = await answered(args, prompt, 'y');
    expect(accepted.code, accepted.screen).toBe(0);
    const calls = Number(accepted.screen.match(prompt)?.[1]);
    expect(calls).toBe(2);
    expect(barFrames(accepted.screen).at(-1)).toEqual([calls, calls]);
    expect(accepted.screen).toContain(`${calls} call(s) re-run against sandbox: ${calls} same, 0 differ`);
    const replayId = accepted.screen.match(/recorded as session (\S+) \(replay of /)?.[1] ?? '';
    expect(await sessionIds()).toEqual(expect.arrayContaining([...before, replayId]));
  }, 30_000);

  it('apply -f FILE on a terminal shows the diff and asks: "n" changes nothing, "y" applies with a progress bar', async () => {
    const desired = writeConfig(
      {
        database: { url: db?.url },
        upstreams: {
          demo: stdioFixture('demo'),
          sandbox: stdioFixture('sandbox-fixture', { sandbox: true }),
          extra1: stdioFixture('extra1'),
          extra2: stdioFixture('extra2'),
        },
      },
      'desired.yaml',
    );
    const args = ['apply', '-f', desired, '-c', configFile];
    const prompt = /Apply 2 change\(s\)\? \[y\/N\]/;
    const managed = async () =>
      (await db?.query<{ name: string }>('select name from portcullis_managed_upstreams order by name'))?.map(
        (row) => row.name,
      );

    const declined = await answered(args, prompt, 'n');
    expect(declined.code).toBe(2);
    expect(declined.screen).toContain('+ extra1');
    expect(declined.screen).toContain('+ extra2');
    expect(declined.screen).toContain('2 to add, 0 to change, 0 to remove, 2 unchanged');
    expect(declined.screen).toContain('nothing was changed');
    expect(barFrames(declined.screen)).toEqual([]);
    expect(await managed()).toEqual([]);

    const accepted = await answered(args, prompt, 'y');
    expect(accepted.code, accepted.screen).toBe(0);
    expect(accepted.screen).toMatch(/\[#{4,}/);
    expect(barFrames(accepted.screen).at(-1)).toEqual([2, 2]);
    expect(accepted.screen).toContain('applied');
    expect(await managed()).toEqual(['extra1', 'extra2']);
  }, 30_000);

  it('sessions prune on a terminal asks: "n" or Ctrl-C deletes nothing, "y" deletes with a progress bar; the rest verifies', async () => {
    // Two of the recorded sessions are made 40 days old (their row's times only: the event chain is untouched).
    await db?.query(
      `update portcullis_sessions
       set started_at = started_at - interval '40 days', ended_at = ended_at - interval '40 days'
       where id = any($1)`,
      [shortSessions],
    );
    const remaining = (await sessionIds()).filter((id) => !shortSessions.includes(id));
    const args = ['sessions', 'prune', '--older-than', '30d', '--config', configFile];
    const prompt = /Delete 2 session\(s\) and their events and tool calls\? \[y\/N\]/;

    const dryRun = await runCli([...args, '--dry-run', '--output', 'json']);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    const planned = JSON.parse(dryRun.stdout) as { sessions: number; events: number; toolCalls: number };
    expect(planned).toMatchObject({ sessions: 2, toolCalls: 2, dryRun: true, deleted: false });
    expect(planned.events).toBeGreaterThanOrEqual(2 * 4);
    // Off a terminal without --yes: refused.
    const piped = await runCli(args);
    expect(piped.code).toBe(2);
    expect(piped.stderr).toContain('pass --yes');

    const declined = await answered(args, prompt, 'n');
    expect(declined.code).toBe(2);
    expect(declined.screen).toContain(`2 session(s), ${planned.events} event(s), 2 tool call(s) ended before`);
    expect(declined.screen).toContain('not confirmed; nothing was deleted');
    expect(barFrames(declined.screen)).toEqual([]);
    expect(await sessionIds()).toEqual(expect.arrayContaining(shortSessions));
    // Ctrl-C at the prompt is a no as well.
    const interrupted = await answered(args, prompt, CTRL_C);
    expect(interrupted.code).toBe(2);
    expect(interrupted.screen).toContain('not confirmed; nothing was deleted');
    expect(await sessionIds()).toEqual(expect.arrayContaining(shortSessions));

    const accepted = await answered(args, prompt, 'y');
    expect(accepted.code, accepted.screen).toBe(0);
    expect(accepted.screen).toMatch(/\[#{4,}/);
    expect(barFrames(accepted.screen).at(-1)).toEqual([2, 2]);
    expect(accepted.screen).toContain(`deleted 2 session(s), ${planned.events} event(s), 2 tool call(s)`);
    expect((await sessionIds()).sort()).toEqual([...remaining].sort());
    const leftovers = await db?.query('select 1 from portcullis_events where session_id = any($1)', [shortSessions]);
    expect(leftovers).toEqual([]);

    const [audit] =
      (await db?.query<{ actor: string; details: { deleted: { sessions: number } } }>(
        `select actor, details from portcullis_admin_audit where action = 'sessions.prune'`,
      )) ?? [];
    expect(audit?.actor).toBe(userInfo().username);
    expect(audit?.details.deleted.sessions).toBe(2);

    const verify = await runCli(['audit', 'verify', '--config', configFile]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toContain(`ok: ${remaining.length} session(s)`);
    const nothingLeft = await runCli([...args, '--yes']);
    expect(nothingLeft.code).toBe(0);
    expect(nothingLeft.stdout).toContain('nothing to prune');
  }, 30_000);
});
