import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import type { Logger } from 'pino';

export interface ProcessGroupStdioOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** Merged over the SDK's safe default environment (PATH, HOME, USER, SHELL, TERM, LOGNAME, ...). */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
  /** Receives the child's stderr, line by line. */
  readonly logger: Logger;
  /** Time between SIGTERM and SIGKILL to the process group. */
  readonly killGraceMs?: number;
}

const DEFAULT_KILL_GRACE_MS = 2_000;
const MAX_STDERR_LINE = 8_192;

/**
 * Process groups still alive, killed with SIGKILL if the gateway exits without closing them: a
 * child in its own group no longer dies with our terminal or our process.
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

/** Signals every process in the group; a group that is already gone is not an error. */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** The environment a stdio upstream starts with: the SDK's safe defaults, then the spec's own entries. */
export function upstreamEnvironment(specEnv: Readonly<Record<string, string>>): Record<string, string> {
  return { ...getDefaultEnvironment(), ...specEnv };
}

/**
 * A stdio client transport whose child leads its own process group (`detached: true`), so that
 * closing it — or the child dying on its own — terminates everything the child started
 * (`npx` → node, `sh -c` → sleeper): SIGTERM to the whole group, then SIGKILL once the child has
 * exited or the grace period has passed.
 *
 * It exposes `pid` and `stderr` so that the SDK classifies it as a stdio transport: a
 * `server/discover` probe that times out then means "legacy server" instead of "outage". The
 * probe runs in place on this child (the SDK only spawns a probe sibling for its own transport);
 * a child that exits on the probe (2025 servers that stop on any pre-`initialize` request) is
 * handled by the connection, which records a legacy verdict and respawns with `initialize`.
 */
export class ProcessGroupStdioTransport implements Transport {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: ((message: JSONRPCMessage) => void) | undefined;

  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly readBuffer = new ReadBuffer();
  private stderrRemainder = '';
  private closeNotified = false;
  private exited: Promise<void> | undefined;
  private sentCount = 0;

  constructor(private readonly options: ProcessGroupStdioOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get stderr(): Readable | null {
    return this.child?.stderr ?? null;
  }

  /** Messages written to the child so far. */
  get sent(): number {
    return this.sentCount;
  }

  /** Whether the child has exited (on its own or killed). */
  get hasExited(): boolean {
    const child = this.child;
    return child !== undefined && (child.exitCode !== null || child.signalCode !== null);
  }

  start(): Promise<void> {
    if (this.child) throw new Error('ProcessGroupStdioTransport already started');
    installExitHook();
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.command, [...this.options.args], {
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: upstreamEnvironment(this.options.env),
        cwd: this.options.cwd,
        windowsHide: true,
      });
      this.child = child;
      this.exited = new Promise((resolveExit) => child.once('exit', () => resolveExit()));

      child.once('spawn', () => {
        if (child.pid !== undefined) liveGroups.add(child.pid);
        resolve();
      });
      child.once('error', (error) => {
        // Before 'spawn' this is a launch failure (ENOENT, EACCES); afterwards a runtime fault.
        reject(error);
        this.onerror?.(error);
        this.notifyClosed();
      });
      child.once('exit', (code, signal) => {
        this.options.logger.debug({ pid: child.pid, code, signal }, 'upstream process exited');
        // The leader is gone; anything it left behind in its group must not outlive it.
        if (child.pid !== undefined) this.reapGroup(child.pid);
        this.notifyClosed();
      });

      child.stdout.on('data', (chunk: Buffer) => {
        try {
          this.readBuffer.append(chunk);
        } catch (error) {
          // An over-long line: the buffer was cleared; report and keep reading.
          this.onerror?.(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        this.drainReadBuffer();
      });
      child.stdout.on('error', (error) => this.onerror?.(error));
      child.stdin.on('error', (error) => this.onerror?.(error));
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text: string) => this.logStderr(text));
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable)
      return Promise.reject(new Error('upstream process is not running'));
    this.sentCount += 1;
    return new Promise((resolve, reject) => {
      const flushed = stdin.write(serializeMessage(message), (error) => {
        if (error) reject(error);
      });
      if (flushed) resolve();
      else stdin.once('drain', () => resolve());
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined) {
      this.notifyClosed();
      return;
    }
    const pgid = child.pid;
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      signalGroup(pgid, 'SIGTERM');
      const grace = this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, grace)))]);
      clearTimeout(timer);
    }
    // Whatever is left of the group (the leader past its grace, or helpers it left behind) is killed.
    signalGroup(pgid, 'SIGKILL');
    liveGroups.delete(pgid);
    this.readBuffer.clear();
    this.notifyClosed();
  }

  /** After the leader exited on its own: SIGTERM the rest of the group now, SIGKILL after the grace period. */
  private reapGroup(pgid: number): void {
    if (!liveGroups.has(pgid)) return;
    signalGroup(pgid, 'SIGTERM');
    const timer = setTimeout(() => {
      signalGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
    }, this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    timer.unref();
  }

  private drainReadBuffer(): void {
    for (;;) {
      let message: JSONRPCMessage | null;
      try {
        message = this.readBuffer.readMessage();
      } catch (error) {
        this.onerror?.(error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      if (message === null) return;
      this.onmessage?.(message);
    }
  }

  private logStderr(text: string): void {
    const lines = (this.stderrRemainder + text).split('\n');
    this.stderrRemainder = (lines.pop() ?? '').slice(-MAX_STDERR_LINE);
    for (const line of lines) {
      if (line.trim() !== '') this.options.logger.info({ stream: 'stderr' }, line.slice(0, MAX_STDERR_LINE));
    }
  }

  private notifyClosed(): void {
    if (this.closeNotified) return;
    this.closeNotified = true;
    if (this.stderrRemainder.trim() !== '') this.options.logger.info({ stream: 'stderr' }, this.stderrRemainder);
    this.stderrRemainder = '';
    this.onclose?.();
  }
}
